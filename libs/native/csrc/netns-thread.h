// Runs work on a fresh OS thread that has entered a network namespace, then lets the thread die.
// Namespace membership is per thread: doing this on a throwaway thread means neither the main
// thread nor libuv's pool can ever be left in the wrong namespace.
#pragma once
#include <errno.h>
#include <pthread.h>
#include <sched.h>

#include <functional>

namespace weft {

// Returns 0 when `work` ran (its own result travels through captures), or the errno of setns /
// pthread_create. `netnsFd` < 0 runs the work on the new thread without switching namespace.
inline int RunInNetnsThread(int netnsFd, const std::function<void()>& work) {
  struct Ctx {
    int fd;
    const std::function<void()>* work;
    int err;
  } ctx{netnsFd, &work, 0};
  pthread_t th;
  int rc = pthread_create(
      &th, nullptr,
      [](void* p) -> void* {
        auto* c = static_cast<Ctx*>(p);
        // unshare(CLONE_FS) would be needed for mount namespaces; for CLONE_NEWNET setns suffices.
        if (c->fd >= 0 && setns(c->fd, CLONE_NEWNET) != 0) {
          c->err = errno;
          return nullptr;
        }
        (*c->work)();
        return nullptr;
      },
      &ctx);
  if (rc != 0) return rc;
  pthread_join(th, nullptr);
  return ctx.err;
}

}  // namespace weft
