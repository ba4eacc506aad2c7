// File-system syscalls Node does not expose: flock(2).
// weft-host-local serializes with the reference host-local plugin through an flock on
// <dataDir>/<network>/lock, so it must take the very same kind of lock (not fcntl/POSIX locks,
// which do not exclude flock holders).
#include <errno.h>
#include <napi.h>
#include <sys/file.h>

#include "errors.h"

namespace weft {
namespace {

bool ReadFdAndOp(const Napi::CallbackInfo& info, int* fd, int* op) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "flock(fd: number, operation: number)").ThrowAsJavaScriptException();
    return false;
  }
  *fd = info[0].As<Napi::Number>().Int32Value();
  *op = info[1].As<Napi::Number>().Int32Value();
  return true;
}

int FlockRetryingEintr(int fd, int op) {
  int rc;
  do {
    rc = flock(fd, op);
  } while (rc < 0 && errno == EINTR);
  return rc < 0 ? errno : 0;
}

// flock(fd, op): synchronous. With LOCK_NB a held lock throws EWOULDBLOCK (code "EAGAIN").
Napi::Value Flock(const Napi::CallbackInfo& info) {
  int fd, op;
  if (!ReadFdAndOp(info, &fd, &op)) return info.Env().Undefined();
  int err = FlockRetryingEintr(fd, op);
  if (err != 0) ThrowErrno(info.Env(), err, "flock");
  return info.Env().Undefined();
}

// A blocking flock on the libuv thread pool, so waiting for the lock never stalls the event loop.
class FlockWorker : public Napi::AsyncWorker {
 public:
  FlockWorker(Napi::Env env, int fd, int op)
      : Napi::AsyncWorker(env), fd_(fd), op_(op), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { err_ = FlockRetryingEintr(fd_, op_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0)
      deferred_.Reject(ErrnoError(env, err_, "flock").Value());
    else
      deferred_.Resolve(env.Undefined());
  }

 private:
  int fd_;
  int op_;
  int err_ = 0;
  Napi::Promise::Deferred deferred_;
};

Napi::Value FlockAsync(const Napi::CallbackInfo& info) {
  int fd, op;
  if (!ReadFdAndOp(info, &fd, &op)) return info.Env().Undefined();
  auto* worker = new FlockWorker(info.Env(), fd, op);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace

void InitFs(Napi::Env env, Napi::Object exports) {
  exports.Set("flock", Napi::Function::New(env, Flock, "flock"));
  exports.Set("flockAsync", Napi::Function::New(env, FlockAsync, "flockAsync"));
  Napi::Object ops = Napi::Object::New(env);
  ops.Set("LOCK_SH", Napi::Number::New(env, LOCK_SH));
  ops.Set("LOCK_EX", Napi::Number::New(env, LOCK_EX));
  ops.Set("LOCK_NB", Napi::Number::New(env, LOCK_NB));
  ops.Set("LOCK_UN", Napi::Number::New(env, LOCK_UN));
  exports.Set("flockOps", ops);
}

}  // namespace weft
