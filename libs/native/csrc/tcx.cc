// tcx (kernel >= 6.6): BPF programs attached to a device's ingress/egress through BPF links
// (bpf(BPF_LINK_CREATE) with BPF_TCX_INGRESS/BPF_TCX_EGRESS), no qdisc involved. That is what lets
// qdisc-based plugins (the reference `bandwidth` adds an `ingress` qdisc, which cannot coexist with
// clsact) run on the same device. A link lives as long as an fd or a bpffs pin refers to it, so
// every link made here is pinned; detaching is BPF_LINK_DETACH + unpin.
//
// Debian bookworm's libbpf (1.1) and UAPI headers (6.1) predate tcx: the attr layouts and constants
// we need are defined here (from the 6.6 UAPI) and the calls are raw bpf(2) syscalls. The kernel's
// answer decides: on a kernel without tcx, BPF_LINK_CREATE with these attach types fails EINVAL.
#include <bpf/bpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <napi.h>
#include <net/if.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "errors.h"
#include "if-target.h"
#include "netns-thread.h"
#include "tcx.h"

namespace weft {
namespace {

// --- from include/uapi/linux/bpf.h (6.6+) ---
constexpr uint32_t kBpfTcxIngress = 46;  // enum bpf_attach_type BPF_TCX_INGRESS
constexpr uint32_t kBpfTcxEgress = 47;   // BPF_TCX_EGRESS
constexpr uint32_t kBpfLinkTypeTcx = 11;  // enum bpf_link_type BPF_LINK_TYPE_TCX
constexpr uint32_t kBpfFBefore = 1U << 3;  // BPF_F_BEFORE: with no relative object, "first"
#ifndef ENOTSUPP
#define ENOTSUPP 524  // kernel-internal "not supported", leaks out of some bpf paths
#endif

// union bpf_attr, the link_create member as of 6.6.
struct LinkCreateAttr {
  uint32_t prog_fd;
  uint32_t target_ifindex;
  uint32_t attach_type;
  uint32_t flags;
  uint32_t relative_fd;  // tcx.relative_fd / relative_id
  uint32_t pad;
  uint64_t expected_revision;
};
static_assert(offsetof(LinkCreateAttr, expected_revision) == 24, "link_create.tcx layout");

// union bpf_attr, the query member (BPF_PROG_QUERY) as of 6.6.
struct ProgQueryAttr {
  uint32_t target_ifindex;
  uint32_t attach_type;
  uint32_t query_flags;
  uint32_t attach_flags;
  uint64_t prog_ids;
  uint32_t count;
  uint32_t pad;
  uint64_t prog_attach_flags;
  uint64_t link_ids;
  uint64_t link_attach_flags;
  uint64_t revision;
};
static_assert(offsetof(ProgQueryAttr, revision) == 56, "query layout");

// struct bpf_link_info with its tcx member (type, id, prog_id, then the 8-aligned union).
struct LinkInfo {
  uint32_t type;
  uint32_t id;
  uint32_t prog_id;
  uint32_t pad;
  uint32_t tcx_ifindex;  // 0 once the device is gone (the link is defunct)
  uint32_t tcx_attach_type;
  uint8_t rest[40];  // the union's larger members; must stay zero on input
};
static_assert(offsetof(LinkInfo, tcx_ifindex) == 16, "bpf_link_info.tcx layout");

int SysBpf(int cmd, void* attr, size_t size) {
  return static_cast<int>(syscall(__NR_bpf, cmd, attr, size));
}

bool Unsupported(int err) { return err == EINVAL || err == ENOTSUPP || err == EOPNOTSUPP || err == ENOSYS; }

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

// A bpf_obj_get'ed fd is a link iff its anon inode says so (pins can also be programs or maps).
bool IsLinkFd(int fd) {
  char proc[64], target[64] = {};
  snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(proc, target, sizeof(target) - 1);
  return n > 0 && strcmp(target, "anon_inode:bpf-link") == 0;
}

int GetLinkInfo(int fd, LinkInfo* li) {
  memset(li, 0, sizeof(*li));
  uint32_t len = sizeof(*li);
  return bpf_obj_get_info_by_fd(fd, li, &len) == 0 ? 0 : errno;
}

const char* DirectionName(uint32_t attach_type) {
  return attach_type == kBpfTcxIngress ? "ingress" : attach_type == kBpfTcxEgress ? "egress" : "unknown";
}

// Opens a pinned tcx link. 0 and *fd set; ENOENT when nothing is pinned there; EINVAL when the pin
// is not a tcx link (a program or a map: never ours to touch).
int OpenPinnedLink(const std::string& path, Fd* fd, LinkInfo* li) {
  int f = bpf_obj_get(path.c_str());
  if (f < 0) return errno;
  fd->fd = f;
  if (!IsLinkFd(f)) return EINVAL;
  int err = GetLinkInfo(f, li);
  if (err) return err;
  return li->type == kBpfLinkTypeTcx ? 0 : EINVAL;
}

// Programs on a device's tcx hook, in the calling thread's namespace. ENOENT (no tcx entry on the
// device yet) is an empty list.
int QueryHook(int ifindex, uint32_t attach_type, std::vector<uint32_t>* progs, std::vector<uint32_t>* links,
              uint64_t* revision) {
  // 64 is the kernel's per-hook maximum (BPF_MPROG_MAX).
  progs->assign(64, 0);
  links->assign(64, 0);
  ProgQueryAttr a = {};
  a.target_ifindex = static_cast<uint32_t>(ifindex);
  a.attach_type = attach_type;
  a.prog_ids = reinterpret_cast<uintptr_t>(progs->data());
  a.link_ids = reinterpret_cast<uintptr_t>(links->data());
  a.count = 64;
  if (SysBpf(BPF_PROG_QUERY, &a, sizeof(a)) != 0) {
    int err = errno;
    progs->clear();
    links->clear();
    *revision = 0;
    return err == ENOENT ? 0 : err;
  }
  progs->resize(a.count);
  links->resize(a.count);
  *revision = a.revision;
  return 0;
}

struct Target : IfTarget {
  uint32_t attach_type = kBpfTcxIngress;
};

bool ParseTarget(const Napi::CallbackInfo& info, Target* t) {
  if (!ParseIfTarget(info, t)) return false;
  t->attach_type = t->ingress ? kBpfTcxIngress : kBpfTcxEgress;
  return true;
}

bool ArgPath(const Napi::CallbackInfo& info, size_t i, std::string* out) {
  if (!info[i].IsString() || info[i].As<Napi::String>().Utf8Value().empty()) {
    Napi::TypeError::New(info.Env(), "pinPath must be a non-empty string").ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::String>().Utf8Value();
  if (out->find('\0') != std::string::npos) {
    Napi::TypeError::New(info.Env(), "pinPath must not contain NUL").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

// Runs work(ifindex) in the target's namespace (a throwaway thread when netnsFd is given). Returns
// 0 or an errno with *call naming the failing step.
template <typename Fn>
int InTarget(const Target& t, const char** call, int* ifindex_out, Fn work) {
  int result = 0;
  auto run = [&]() {
    int ifindex = t.ifindex;
    if (ifindex <= 0) {
      ifindex = static_cast<int>(if_nametoindex(t.ifname.c_str()));
      if (!ifindex) {
        result = errno;
        *call = "if_nametoindex";
        return;
      }
    }
    *ifindex_out = ifindex;
    result = work(ifindex);
  };
  if (t.netns_fd < 0) {
    run();
    return result;
  }
  int err = RunInNetnsThread(t.netns_fd, run);
  if (err) {
    *call = "setns";
    return err;
  }
  return result;
}

// --- probe ---

int g_tcx_supported = -1;  // cached: -1 unknown, 0 no, 1 yes

// A minimal SCHED_CLS program ("return TC_ACT_UNSPEC") offered to BPF_LINK_CREATE on ifindex 0.
// A kernel with tcx gets past the attach-type check and fails to find the device (ENODEV); one
// without tcx refuses the attach type (EINVAL). Nothing is ever attached.
Napi::Value TcxSupported(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (g_tcx_supported >= 0) return Napi::Boolean::New(env, g_tcx_supported == 1);
  const struct bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, -1},  // r0 = -1
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},                    // exit
  };
  int prog = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "weft_tcx_probe", "GPL", insns, 2, nullptr);
  if (prog < 0) {
    ThrowErrno(env, errno, "bpf_prog_load");
    return env.Undefined();
  }
  Fd prog_fd(prog);
  LinkCreateAttr a = {};
  a.prog_fd = static_cast<uint32_t>(prog);
  a.target_ifindex = 0;
  a.attach_type = kBpfTcxIngress;
  int rc = SysBpf(BPF_LINK_CREATE, &a, sizeof(a));
  int err = rc < 0 ? errno : 0;
  if (rc >= 0) close(rc);  // cannot happen with ifindex 0, but never leak an attachment
  if (rc >= 0 || err == ENODEV) {
    g_tcx_supported = 1;
  } else if (Unsupported(err)) {
    g_tcx_supported = 0;
  } else {
    ThrowErrno(env, err, "bpf(BPF_LINK_CREATE)");  // EPERM etc.: not an answer, not cached
    return env.Undefined();
  }
  return Napi::Boolean::New(env, g_tcx_supported == 1);
}

// --- attach ---

Napi::Object LinkResult(Napi::Env env, const LinkInfo& li) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("linkId", li.id);
  out.Set("progId", li.prog_id);
  out.Set("ifindex", li.tcx_ifindex);
  out.Set("direction", DirectionName(li.tcx_attach_type));
  return out;
}

// bpfTcxAttach(target, direction, progFd, { pinPath }) -> { ifindex, linkId, progId, updated }
Napi::Value TcxAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Target t;
  if (!ParseTarget(info, &t)) return env.Undefined();
  if (!info[2].IsNumber()) {
    Napi::TypeError::New(env, "progFd must be a file descriptor").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int prog_fd = info[2].As<Napi::Number>().Int32Value();
  std::string pin;
  Napi::Value pin_value = info[3].IsObject() ? info[3].As<Napi::Object>().Get("pinPath") : env.Undefined();
  if (pin_value.IsString()) pin = pin_value.As<Napi::String>().Utf8Value();
  if (pin.empty() || pin.find('\0') != std::string::npos) {
    Napi::TypeError::New(env, "opts.pinPath must be a bpffs path: a tcx link lives only as long as its pin")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }

  const char* call = "bpf(BPF_LINK_CREATE)";
  int ifindex = 0;
  bool updated = false;
  LinkInfo li = {};
  int err = InTarget(t, &call, &ifindex, [&](int idx) -> int {
    // A link already pinned there: update it in place when it is on this very hook (the hook's own
    // list says so, which also rules out a same-numbered device in another namespace).
    Fd old;
    LinkInfo oli;
    int e = OpenPinnedLink(pin, &old, &oli);
    if (e == 0) {
      std::vector<uint32_t> progs, links;
      uint64_t rev = 0;
      e = QueryHook(idx, t.attach_type, &progs, &links, &rev);
      if (e) {
        call = "bpf(BPF_PROG_QUERY)";
        return e;
      }
      bool here = false;
      for (uint32_t id : links) here = here || id == oli.id;
      if (here) {
        if (bpf_link_update(old.fd, prog_fd, nullptr) == 0) {
          updated = true;
          e = GetLinkInfo(old.fd, &li);
          if (e) call = "bpf(BPF_OBJ_GET_INFO_BY_FD)";
          return e;
        }
        if (errno != ENOLINK) {  // ENOLINK: the device went away meanwhile; make a new link
          call = "bpf(BPF_LINK_UPDATE)";
          return errno;
        }
      }
      // Stale (device gone) or elsewhere (the endpoint moved): it is no longer what this pin means.
      bpf_link_detach(old.fd);
      if (unlink(pin.c_str()) != 0 && errno != ENOENT) {
        call = "unlink";
        return errno;
      }
    } else if (e == EINVAL) {
      call = "bpf_obj_get (not a tcx link)";
      return EEXIST;  // something else is pinned there: refuse to replace it
    } else if (e != ENOENT) {
      call = "bpf_obj_get";
      return e;
    }

    LinkCreateAttr a = {};
    a.prog_fd = static_cast<uint32_t>(prog_fd);
    a.target_ifindex = static_cast<uint32_t>(idx);
    a.attach_type = t.attach_type;
    a.flags = kBpfFBefore;  // first on the hook: policy runs before anything else attached by tcx
    int link = SysBpf(BPF_LINK_CREATE, &a, sizeof(a));
    if (link < 0) return errno;  // EINVAL on a kernel without tcx
    Fd link_fd(link);
    if (bpf_obj_pin(link, pin.c_str()) != 0) {
      call = "bpf_obj_pin";
      return errno;  // link_fd closes: the link goes away with it
    }
    e = GetLinkInfo(link, &li);
    if (e) call = "bpf(BPF_OBJ_GET_INFO_BY_FD)";
    return e;
  });
  if (err) {
    ThrowErrno(env, err, call, t.ifname.empty() ? pin : t.ifname);
    return env.Undefined();
  }
  Napi::Object out = LinkResult(env, li);
  out.Set("ifindex", ifindex);
  out.Set("updated", updated);
  return out;
}

// bpfTcxDetach(pinPath) -> { found, attached }: BPF_LINK_DETACH + unpin. found false: nothing pinned
// there. attached false: the link was already defunct (its device went away); the pin is removed.
Napi::Value TcxDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string pin;
  if (!ArgPath(info, 0, &pin)) return env.Undefined();
  Fd fd;
  LinkInfo li;
  int err = OpenPinnedLink(pin, &fd, &li);
  Napi::Object out = Napi::Object::New(env);
  if (err == ENOENT) {
    out.Set("found", false);
    out.Set("attached", false);
    return out;
  }
  if (err) {
    ThrowErrno(env, err == EINVAL ? EEXIST : err, err == EINVAL ? "bpf_obj_get (not a tcx link)" : "bpf_obj_get",
               pin);
    return env.Undefined();
  }
  bool attached = li.tcx_ifindex != 0;
  // Detach explicitly (another holder of the link, e.g. bpftool, must not keep it running), then
  // unpin so the link object itself is freed.
  if (attached && bpf_link_detach(fd.fd) != 0 && errno != ENOLINK) {
    ThrowErrno(env, errno, "bpf(BPF_LINK_DETACH)", pin);
    return env.Undefined();
  }
  if (unlink(pin.c_str()) != 0 && errno != ENOENT) {
    ThrowErrno(env, errno, "unlink", pin);
    return env.Undefined();
  }
  out.Set("found", true);
  out.Set("attached", attached);
  return out;
}

// bpfTcxLinkInfo(pinPath) -> { linkId, progId, ifindex, direction } | null (nothing pinned there)
Napi::Value TcxLinkInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string pin;
  if (!ArgPath(info, 0, &pin)) return env.Undefined();
  Fd fd;
  LinkInfo li;
  int err = OpenPinnedLink(pin, &fd, &li);
  if (err == ENOENT) return env.Null();
  if (err) {
    ThrowErrno(env, err, err == EINVAL ? "bpf_obj_get (not a tcx link)" : "bpf_obj_get", pin);
    return env.Undefined();
  }
  return LinkResult(env, li);
}

// bpfTcxQuery(target, direction) -> { ifindex, revision, programs: [{ progId, linkId }] }
Napi::Value TcxQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Target t;
  if (!ParseTarget(info, &t)) return env.Undefined();
  const char* call = "bpf(BPF_PROG_QUERY)";
  int ifindex = 0;
  std::vector<uint32_t> progs, links;
  uint64_t revision = 0;
  int err = InTarget(t, &call, &ifindex,
                     [&](int idx) { return QueryHook(idx, t.attach_type, &progs, &links, &revision); });
  if (err) {
    ThrowErrno(env, err, call, t.ifname);
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("ifindex", ifindex);
  out.Set("revision", Napi::Number::New(env, static_cast<double>(revision)));
  Napi::Array list = Napi::Array::New(env, progs.size());
  for (size_t i = 0; i < progs.size(); i++) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("progId", progs[i]);
    p.Set("linkId", links[i]);
    list.Set(i, p);
  }
  out.Set("programs", list);
  return out;
}

}  // namespace

void InitTcx(Napi::Env env, Napi::Object exports) {
  exports.Set("bpfTcxSupported", Napi::Function::New(env, TcxSupported));
  exports.Set("bpfTcxAttach", Napi::Function::New(env, TcxAttach));
  exports.Set("bpfTcxDetach", Napi::Function::New(env, TcxDetach));
  exports.Set("bpfTcxLinkInfo", Napi::Function::New(env, TcxLinkInfo));
  exports.Set("bpfTcxQuery", Napi::Function::New(env, TcxQuery));
}

}  // namespace weft
