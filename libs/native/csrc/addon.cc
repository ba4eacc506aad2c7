// One addon, syscalls only. Each area registers its own functions.
#include <napi.h>

namespace weft {
void InitNetns(Napi::Env env, Napi::Object exports);
void InitBpf(Napi::Env env, Napi::Object exports);
void InitFs(Napi::Env env, Napi::Object exports);
}  // namespace weft

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  weft::InitNetns(env, exports);
  weft::InitBpf(env, exports);
  weft::InitFs(env, exports);
  return exports;
}

NODE_API_MODULE(weft_native, Init)
