// Errors thrown by the addon look like Node's own system errors:
// an Error with errno (negative, like libuv), code ("ENOENT"), syscall and optional path.
#pragma once
#include <napi.h>
#include <string>

namespace weft {
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& path = "");
void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& path = "");
const char* ErrnoName(int err);
}  // namespace weft
