// tcx attachment (BPF links on a device's ingress/egress, kernel >= 6.6); see tcx.cc.
#pragma once
#include <napi.h>

namespace weft {
void InitTcx(Napi::Env env, Napi::Object exports);
}  // namespace weft
