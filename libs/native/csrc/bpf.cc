#include <napi.h>
namespace weft {
void InitBpf(Napi::Env env, Napi::Object exports) {}
}  // namespace weft
