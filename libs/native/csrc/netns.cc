// Network namespace syscalls. Namespace membership is per thread, so everything that must happen
// inside a namespace runs on a throwaway thread (netns-thread.h) — except runInNetnsSync, which
// switches the calling (main) thread for the length of one synchronous JS call and always
// switches back.
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <napi.h>

#include "errors.h"
#include "netns-thread.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

namespace weft {
namespace {

constexpr const char* kThreadNetns = "/proc/thread-self/ns/net";

// Arguments are checked here so that a bad call throws a TypeError instead of crashing.
bool ArgInt(const Napi::CallbackInfo& info, size_t i, const char* what, int* out) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    Napi::TypeError::New(info.Env(), std::string(what) + " must be a number").ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::Number>().Int32Value();
  return true;
}

bool ArgString(const Napi::CallbackInfo& info, size_t i, const char* what, std::string* out) {
  if (info.Length() <= i || !info[i].IsString()) {
    Napi::TypeError::New(info.Env(), std::string(what) + " must be a string").ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::String>().Utf8Value();
  if (out->find('\0') != std::string::npos) {
    Napi::TypeError::New(info.Env(), std::string(what) + " must not contain NUL").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

// 0 when fd is a network namespace, else an errno (EINVAL when it is some other file).
int CheckIsNetns(int fd) {
  struct statfs sfs;
  if (fstatfs(fd, &sfs) != 0) return errno;
  if (static_cast<unsigned long>(sfs.f_type) != NSFS_MAGIC) return EINVAL;
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type < 0) return errno == ENOTTY ? EINVAL : errno;
  return type == CLONE_NEWNET ? 0 : EINVAL;
}

void ThrowNotNetns(Napi::Env env, const std::string& path) {
  Napi::Error e = ErrnoError(env, EINVAL, "open", path);
  e.Set("message", Napi::String::New(env, "EINVAL: not a network namespace, open '" + path + "'"));
  e.ThrowAsJavaScriptException();
}

// sysctl paths are relative to /proc/sys; refuse anything that could escape it.
bool ValidSysctlPath(const std::string& rel) {
  if (rel.empty() || rel[0] == '/' || rel.size() > 256) return false;
  size_t start = 0;
  while (start <= rel.size()) {
    size_t end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    std::string seg = rel.substr(start, end - start);
    if (seg.empty() || seg == "." || seg == "..") return false;
    start = end + 1;
  }
  return true;
}

// openNetns(path): fd (O_CLOEXEC) of a network namespace file.
Napi::Value OpenNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!ArgString(info, 0, "path", &path)) return env.Undefined();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ThrowErrno(env, errno, "open", path);
    return env.Undefined();
  }
  int err = CheckIsNetns(fd);
  if (err != 0) {
    close(fd);
    if (err == EINVAL)
      ThrowNotNetns(env, path);
    else
      ThrowErrno(env, err, "fstatfs", path);
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

Napi::Value CloseNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgInt(info, 0, "fd", &fd)) return env.Undefined();
  if (close(fd) != 0 && errno != EINTR) ThrowErrno(env, errno, "close");
  return env.Undefined();
}

// runInNetnsSync(fd, fn): switches this thread into the namespace, calls fn() synchronously and
// switches back before returning (or propagating fn's exception).
Napi::Value RunInNetnsSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgInt(info, 0, "fd", &fd)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "fn must be a function").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int err = CheckIsNetns(fd);
  if (err != 0) {
    ThrowErrno(env, err, "setns");
    return env.Undefined();
  }
  int original = open(kThreadNetns, O_RDONLY | O_CLOEXEC);
  if (original < 0) {
    ThrowErrno(env, errno, "open", kThreadNetns);
    return env.Undefined();
  }
  if (setns(fd, CLONE_NEWNET) != 0) {
    err = errno;
    close(original);
    ThrowErrno(env, err, "setns");
    return env.Undefined();
  }
  Napi::Value result = info[1].As<Napi::Function>().Call({});
  if (setns(original, CLONE_NEWNET) != 0) {
    // Carrying on in the wrong namespace would silently misconfigure the host; stop instead.
    char msg[128];
    snprintf(msg, sizeof msg, "cannot return the main thread to its network namespace: %s", strerror(errno));
    Napi::Error::Fatal("weft_native.runInNetnsSync", msg);
  }
  close(original);
  if (result.IsEmpty()) return env.Undefined();  // fn threw: the exception is pending
  return result;
}

// socketIn(fd, domain, type, protocol): a socket created inside the namespace (O_CLOEXEC).
Napi::Value SocketIn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd, domain, type, protocol;
  if (!ArgInt(info, 0, "fd", &fd) || !ArgInt(info, 1, "domain", &domain) || !ArgInt(info, 2, "type", &type) ||
      !ArgInt(info, 3, "protocol", &protocol))
    return env.Undefined();
  int sock = -1, sockErr = 0;
  int err = RunInNetnsThread(fd, [&] {
    sock = socket(domain, type | SOCK_CLOEXEC, protocol);
    if (sock < 0) sockErr = errno;
  });
  if (err != 0) {
    ThrowErrno(env, err, "setns");
    return env.Undefined();
  }
  if (sock < 0) {
    ThrowErrno(env, sockErr, "socket");
    return env.Undefined();
  }
  return Napi::Number::New(env, sock);
}

// writeSysctlIn(fd, relPath, value): writes /proc/sys/<relPath> as seen from inside the namespace.
Napi::Value WriteSysctlIn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  std::string rel, value;
  if (!ArgInt(info, 0, "fd", &fd) || !ArgString(info, 1, "key", &rel) || !ArgString(info, 2, "value", &value))
    return env.Undefined();
  std::string path = "/proc/sys/" + rel;
  if (!ValidSysctlPath(rel)) {
    ThrowErrno(env, EINVAL, "open", path);
    return env.Undefined();
  }
  int ioErr = 0;
  const char* failed = "open";
  int err = RunInNetnsThread(fd, [&] {
    int f = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (f < 0) {
      ioErr = errno;
      return;
    }
    ssize_t n = write(f, value.data(), value.size());
    if (n < 0) {
      ioErr = errno;
      failed = "write";
    } else if (static_cast<size_t>(n) != value.size()) {
      ioErr = EIO;
      failed = "write";
    }
    close(f);
  });
  if (err != 0) {
    ThrowErrno(env, err, "setns", path);
  } else if (ioErr != 0) {
    ThrowErrno(env, ioErr, failed, path);
  }
  return env.Undefined();
}

// readSysctlIn(fd, relPath): the raw contents of /proc/sys/<relPath> inside the namespace.
Napi::Value ReadSysctlIn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  std::string rel;
  if (!ArgInt(info, 0, "fd", &fd) || !ArgString(info, 1, "key", &rel)) return env.Undefined();
  std::string path = "/proc/sys/" + rel;
  if (!ValidSysctlPath(rel)) {
    ThrowErrno(env, EINVAL, "open", path);
    return env.Undefined();
  }
  std::string out;
  int ioErr = 0;
  const char* failed = "open";
  int err = RunInNetnsThread(fd, [&] {
    int f = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f < 0) {
      ioErr = errno;
      return;
    }
    char buf[4096];
    for (;;) {
      ssize_t n = read(f, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        ioErr = errno;
        failed = "read";
        break;
      }
      if (n == 0 || out.size() > (1 << 20)) break;
      out.append(buf, static_cast<size_t>(n));
    }
    close(f);
  });
  if (err != 0) {
    ThrowErrno(env, err, "setns", path);
    return env.Undefined();
  }
  if (ioErr != 0) {
    ThrowErrno(env, ioErr, failed, path);
    return env.Undefined();
  }
  return Napi::String::New(env, out);
}

// Like `ip netns add`: the directory holding namespace files becomes a shared mount point, so
// namespaces mounted later propagate into mount namespaces created from this one (containers).
int MakeSharedMountDir(const std::string& dir) {
  if (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) == 0) return 0;
  if (errno != EINVAL) return errno;
  // Not a mount point yet: bind it onto itself first.
  if (mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) != 0) return errno;
  if (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) != 0) return errno;
  return 0;
}

// createNetns(bindPath): a new network namespace kept alive by a bind mount at bindPath (the file
// is created; it must not exist). The parent directory must exist; it is made a shared mount.
Napi::Value CreateNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!ArgString(info, 0, "bindPath", &path)) return env.Undefined();
  size_t slash = path.rfind('/');
  if (path.empty() || path[0] != '/' || slash == std::string::npos || slash + 1 == path.size()) {
    ThrowErrno(env, EINVAL, "open", path);
    return env.Undefined();
  }
  std::string dir = slash == 0 ? "/" : path.substr(0, slash);
  int err = MakeSharedMountDir(dir);
  if (err != 0) {
    ThrowErrno(env, err, "mount", dir);
    return env.Undefined();
  }
  int f = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (f < 0) {
    ThrowErrno(env, errno, "open", path);
    return env.Undefined();
  }
  close(f);
  const char* failed = "unshare";
  int opErr = 0;
  // A fresh thread unshares and mounts its own namespace; when it exits, only the mount remains.
  err = RunInNetnsThread(-1, [&] {
    if (unshare(CLONE_NEWNET) != 0) {
      opErr = errno;
      return;
    }
    if (mount(kThreadNetns, path.c_str(), "none", MS_BIND, nullptr) != 0) {
      opErr = errno;
      failed = "mount";
    }
  });
  if (err != 0 || opErr != 0) {
    unlink(path.c_str());
    ThrowErrno(env, err != 0 ? err : opErr, err != 0 ? "pthread_create" : failed, path);
  }
  return env.Undefined();
}

// deleteNetns(bindPath): detaches the bind mount and removes the file. A file that is not mounted
// is still removed; a missing file throws ENOENT.
Napi::Value DeleteNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!ArgString(info, 0, "bindPath", &path)) return env.Undefined();
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
    ThrowErrno(env, errno, "umount2", path);
    return env.Undefined();
  }
  if (unlink(path.c_str()) != 0) ThrowErrno(env, errno, "unlink", path);
  return env.Undefined();
}

// currentNetnsInode(): inode of the calling thread's network namespace.
Napi::Value CurrentNetnsInode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct stat st;
  if (stat(kThreadNetns, &st) != 0) {
    ThrowErrno(env, errno, "stat", kThreadNetns);
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(st.st_ino));
}

// ifNameToIndexIn(fd, name): ifindex of a link inside the namespace.
Napi::Value IfNameToIndexIn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  std::string name;
  if (!ArgInt(info, 0, "fd", &fd) || !ArgString(info, 1, "name", &name)) return env.Undefined();
  unsigned index = 0;
  int lookupErr = 0;
  int err = RunInNetnsThread(fd, [&] {
    index = if_nametoindex(name.c_str());
    if (index == 0) lookupErr = errno;
  });
  if (err != 0) {
    ThrowErrno(env, err, "setns");
    return env.Undefined();
  }
  if (index == 0) {
    ThrowErrno(env, lookupErr != 0 ? lookupErr : ENODEV, "if_nametoindex", name);
    return env.Undefined();
  }
  return Napi::Number::New(env, index);
}

}  // namespace

void InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("openNetns", Napi::Function::New(env, OpenNetns, "openNetns"));
  exports.Set("closeNetns", Napi::Function::New(env, CloseNetns, "closeNetns"));
  exports.Set("runInNetnsSync", Napi::Function::New(env, RunInNetnsSync, "runInNetnsSync"));
  exports.Set("socketIn", Napi::Function::New(env, SocketIn, "socketIn"));
  exports.Set("writeSysctlIn", Napi::Function::New(env, WriteSysctlIn, "writeSysctlIn"));
  exports.Set("readSysctlIn", Napi::Function::New(env, ReadSysctlIn, "readSysctlIn"));
  exports.Set("createNetns", Napi::Function::New(env, CreateNetns, "createNetns"));
  exports.Set("deleteNetns", Napi::Function::New(env, DeleteNetns, "deleteNetns"));
  exports.Set("currentNetnsInode", Napi::Function::New(env, CurrentNetnsInode, "currentNetnsInode"));
  exports.Set("ifNameToIndexIn", Napi::Function::New(env, IfNameToIndexIn, "ifNameToIndexIn"));
}

}  // namespace weft
