#include <napi.h>
namespace weft {
void InitFs(Napi::Env env, Napi::Object exports) {}
}  // namespace weft
