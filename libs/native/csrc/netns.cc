#include <napi.h>
namespace weft {
void InitNetns(Napi::Env env, Napi::Object exports) {}
}  // namespace weft
