// The interface a tc/tcx call acts on, as both attach mechanisms take it from JS:
// (target { ifindex | ifname, netnsFd? }, direction 'ingress' | 'egress', ...).
#pragma once
#include <napi.h>
#include <string>

namespace weft {

struct IfTarget {
  int netns_fd = -1;
  int ifindex = 0;
  std::string ifname;
  bool ingress = true;
};

// Reads info[0] (the target) and info[1] (the direction); throws a TypeError and returns false
// when either is malformed.
inline bool ParseIfTarget(const Napi::CallbackInfo& info, IfTarget* t) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) {
    Napi::TypeError::New(env, "target must be { ifindex | ifname, netnsFd? }").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Object o = info[0].As<Napi::Object>();
  if (o.Get("netnsFd").IsNumber()) t->netns_fd = o.Get("netnsFd").As<Napi::Number>().Int32Value();
  if (o.Get("ifindex").IsNumber()) t->ifindex = o.Get("ifindex").As<Napi::Number>().Int32Value();
  if (o.Get("ifname").IsString()) t->ifname = o.Get("ifname").As<Napi::String>();
  if (t->ifindex <= 0 && t->ifname.empty()) {
    Napi::TypeError::New(env, "target needs ifindex or ifname").ThrowAsJavaScriptException();
    return false;
  }
  std::string dir = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  if (dir != "ingress" && dir != "egress") {
    Napi::TypeError::New(env, "direction must be 'ingress' or 'egress'").ThrowAsJavaScriptException();
    return false;
  }
  t->ingress = dir == "ingress";
  return true;
}

}  // namespace weft
