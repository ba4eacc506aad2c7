// Process syscalls Node does not expose: execve(2).
// weft-agent re-executes itself once at start with allocator settings in its environment
// (glibc reads MALLOC_ARENA_MAX only when a process starts).
#include <errno.h>
#include <fcntl.h>
#include <napi.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "errors.h"

namespace weft {
namespace {

bool ReadStrings(const Napi::Value& value, std::vector<std::string>* out) {
  if (!value.IsArray()) return false;
  Napi::Array array = value.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value item = array.Get(i);
    if (!item.IsString()) return false;
    out->push_back(item.As<Napi::String>().Utf8Value());
  }
  return true;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Node marks the standard streams close-on-exec and non-blocking; the new program gets them as a
// Node that exits leaves them: inherited and blocking. Returns what to restore if execve fails.
struct StdioFlags {
  int fd[3];
  int status[3];
};

StdioFlags HandOverStdio() {
  StdioFlags saved;
  for (int i = 0; i <= 2; i++) {
    saved.fd[i] = fcntl(i, F_GETFD);
    saved.status[i] = fcntl(i, F_GETFL);
    if (saved.fd[i] >= 0) fcntl(i, F_SETFD, saved.fd[i] & ~FD_CLOEXEC);
    if (saved.status[i] >= 0) fcntl(i, F_SETFL, saved.status[i] & ~O_NONBLOCK);
  }
  return saved;
}

void RestoreStdio(const StdioFlags& saved) {
  for (int i = 0; i <= 2; i++) {
    if (saved.fd[i] >= 0) fcntl(i, F_SETFD, saved.fd[i]);
    if (saved.status[i] >= 0) fcntl(i, F_SETFL, saved.status[i]);
  }
}

// execve(path, argv, envp): returns only on failure, by throwing.
Napi::Value Execve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<std::string> argv, envp;
  if (info.Length() < 3 || !info[0].IsString() || !ReadStrings(info[1], &argv) ||
      !ReadStrings(info[2], &envp) || argv.empty()) {
    Napi::TypeError::New(env, "execve(path: string, argv: string[] (non-empty), env: string[])")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::vector<char*> argvp = Pointers(argv);
  std::vector<char*> envpp = Pointers(envp);
  StdioFlags saved = HandOverStdio();
  execve(path.c_str(), argvp.data(), envpp.data());
  int err = errno;
  RestoreStdio(saved);
  ThrowErrno(env, err, "execve", path);
  return env.Undefined();
}

}  // namespace

void InitProcess(Napi::Env env, Napi::Object exports) {
  exports.Set("execve", Napi::Function::New(env, Execve, "execve"));
}

}  // namespace weft
