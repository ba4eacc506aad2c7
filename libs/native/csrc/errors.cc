#include "errors.h"

#include <errno.h>
#include <string.h>

namespace weft {

const char* ErrnoName(int err) {
  switch (err) {
#define E(x) \
  case x:    \
    return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(EBADF) E(EAGAIN) E(ENOMEM)
    E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV) E(ENOTDIR) E(EISDIR) E(EINVAL)
    E(ENFILE) E(EMFILE) E(ENOSPC) E(EROFS) E(ERANGE) E(ENAMETOOLONG) E(ENOSYS) E(ENOTEMPTY)
    E(ELOOP) E(ENODATA) E(ENOTSUP) E(EPROTONOSUPPORT) E(EAFNOSUPPORT) E(EADDRINUSE)
    E(EADDRNOTAVAIL) E(ENETDOWN) E(ENETUNREACH) E(ENOBUFS) E(ETIMEDOUT) E(ECONNREFUSED)
    E(EOVERFLOW) E(ENOTSOCK) E(ENOMSG) E(EPROTO) E(ENOLINK) E(EMSGSIZE)
#undef E
    default:
      return "UNKNOWN";
  }
}

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& path) {
  if (err < 0) err = -err;
  std::string msg = std::string(ErrnoName(err)) + ": " + strerror(err) + ", " + syscall;
  if (!path.empty()) msg += " '" + path + "'";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("syscall", Napi::String::New(env, syscall));
  if (!path.empty()) e.Set("path", Napi::String::New(env, path));
  return e;
}

void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& path) {
  ErrnoError(env, err, syscall, path).ThrowAsJavaScriptException();
}

}  // namespace weft
