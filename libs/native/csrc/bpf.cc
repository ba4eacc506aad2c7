// A thin N-API layer over libbpf: load objects with pinned maps, map operations on raw Buffers,
// tc attach/detach in any network namespace (clsact + cls_bpf here; tcx links in tcx.cc), and ring
// buffers polled on the event loop.
// Struct layouts and policy live in TypeScript (@weft/bpf); this file only makes the calls.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <napi.h>
#include <net/if.h>
#include <unistd.h>
#include <uv.h>

#include <cstdarg>
#include <map>
#include <string>
#include <vector>

#include "errors.h"
#include "if-target.h"
#include "netns-thread.h"
#include "tcx.h"

namespace weft {
namespace {

// libbpf reports details (verifier logs, pinning conflicts) through its print callback. We keep
// the last load's messages and attach them to the error instead of writing to stderr.
std::string g_libbpf_log;

int CaptureLibbpfLog(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[1024];
  int n = vsnprintf(line, sizeof(line), fmt, args);
  if (g_libbpf_log.size() < 64 * 1024) g_libbpf_log.append(line);
  return n;
}

void ThrowLibbpf(Napi::Env env, int err, const char* call, const std::string& path = "") {
  Napi::Error e = ErrnoError(env, err, call, path);
  if (!g_libbpf_log.empty()) e.Set("log", Napi::String::New(env, g_libbpf_log));
  e.ThrowAsJavaScriptException();
}

// Objects stay open (and hold their program and map fds) until bpfObjectClose.
std::map<uint32_t, bpf_object*> g_objects;
uint32_t g_next_object = 1;

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsBuffer()) {
    Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a Buffer")
        .ThrowAsJavaScriptException();
    return Napi::Buffer<uint8_t>();
  }
  return info[i].As<Napi::Buffer<uint8_t>>();
}

int ArgFd(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) {
    Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a file descriptor")
        .ThrowAsJavaScriptException();
    return -1;
  }
  return info[i].As<Napi::Number>().Int32Value();
}

// --- objects ---

// bpfObjectLoad(path, { pinRoot? }) -> { handle, programs: [...], maps: [...] }
Napi::Value ObjectLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  std::string pin_root;
  if (info[1].IsObject()) {
    Napi::Value v = info[1].As<Napi::Object>().Get("pinRoot");
    if (v.IsString()) pin_root = v.As<Napi::String>();
  }
  g_libbpf_log.clear();
  LIBBPF_OPTS(bpf_object_open_opts, opts);
  if (!pin_root.empty()) opts.pin_root_path = pin_root.c_str();
  bpf_object* obj = bpf_object__open_file(path.c_str(), &opts);
  if (!obj) {
    ThrowLibbpf(env, errno, "bpf_object__open_file", path);
    return env.Undefined();
  }
  int err = bpf_object__load(obj);
  if (err) {
    bpf_object__close(obj);
    ThrowLibbpf(env, -err, "bpf_object__load", path);
    return env.Undefined();
  }
  uint32_t handle = g_next_object++;
  g_objects[handle] = obj;

  Napi::Object out = Napi::Object::New(env);
  out.Set("handle", handle);
  Napi::Array programs = Napi::Array::New(env);
  bpf_program* prog;
  uint32_t i = 0;
  bpf_object__for_each_program(prog, obj) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("name", bpf_program__name(prog));
    p.Set("section", bpf_program__section_name(prog));
    p.Set("fd", bpf_program__fd(prog));
    programs.Set(i++, p);
  }
  out.Set("programs", programs);
  Napi::Array maps = Napi::Array::New(env);
  bpf_map* map;
  i = 0;
  bpf_object__for_each_map(map, obj) {
    Napi::Object m = Napi::Object::New(env);
    m.Set("name", bpf_map__name(map));
    m.Set("fd", bpf_map__fd(map));
    m.Set("type", static_cast<uint32_t>(bpf_map__type(map)));
    m.Set("keySize", bpf_map__key_size(map));
    m.Set("valueSize", bpf_map__value_size(map));
    m.Set("maxEntries", bpf_map__max_entries(map));
    const char* pin = bpf_map__pin_path(map);
    if (pin) m.Set("pinPath", pin);
    maps.Set(i++, m);
  }
  out.Set("maps", maps);
  return out;
}

// bpfObjectClose(handle): closes the object's fds; pinned maps and attached programs live on.
Napi::Value ObjectClose(const Napi::CallbackInfo& info) {
  uint32_t handle = info[0].As<Napi::Number>().Uint32Value();
  auto it = g_objects.find(handle);
  if (it != g_objects.end()) {
    bpf_object__close(it->second);
    g_objects.erase(it);
  }
  return info.Env().Undefined();
}

// --- fds and pins ---

Napi::Value ObjPin(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  std::string path = info[1].As<Napi::String>();
  if (bpf_obj_pin(fd, path.c_str()) != 0) ThrowErrno(info.Env(), errno, "bpf_obj_pin", path);
  return info.Env().Undefined();
}

Napi::Value ObjGet(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>();
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    ThrowErrno(info.Env(), errno, "bpf_obj_get", path);
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  if (fd >= 0 && close(fd) != 0) ThrowErrno(info.Env(), errno, "close");
  return info.Env().Undefined();
}

Napi::Value MapInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_map_info mi = {};
  uint32_t len = sizeof(mi);
  if (bpf_obj_get_info_by_fd(ArgFd(info, 0), &mi, &len) != 0) {
    ThrowErrno(env, errno, "bpf_obj_get_info_by_fd");
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", mi.id);
  out.Set("name", mi.name);
  out.Set("type", mi.type);
  out.Set("keySize", mi.key_size);
  out.Set("valueSize", mi.value_size);
  out.Set("maxEntries", mi.max_entries);
  out.Set("flags", mi.map_flags);
  return out;
}

Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_prog_info pi = {};
  uint32_t len = sizeof(pi);
  if (bpf_obj_get_info_by_fd(ArgFd(info, 0), &pi, &len) != 0) {
    ThrowErrno(env, errno, "bpf_obj_get_info_by_fd");
    return env.Undefined();
  }
  char tag[2 * BPF_TAG_SIZE + 1];
  for (int i = 0; i < BPF_TAG_SIZE; i++) snprintf(tag + 2 * i, 3, "%02x", pi.tag[i]);
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", pi.id);
  out.Set("name", pi.name);
  out.Set("type", pi.type);
  out.Set("tag", tag);
  return out;
}

// --- map operations: keys and values are Buffers of the map's sizes (checked in @weft/bpf) ---

Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  auto key = ArgBuffer(info, 1);
  auto value = ArgBuffer(info, 2);
  if (env.IsExceptionPending()) return env.Undefined();
  if (bpf_map_lookup_elem(fd, key.Data(), value.Data()) != 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    ThrowErrno(env, errno, "bpf_map_lookup_elem");
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  auto key = ArgBuffer(info, 1);
  auto value = ArgBuffer(info, 2);
  uint64_t flags = info[3].IsNumber() ? info[3].As<Napi::Number>().Int64Value() : BPF_ANY;
  if (env.IsExceptionPending()) return env.Undefined();
  if (bpf_map_update_elem(fd, key.Data(), value.Data(), flags) != 0) ThrowErrno(env, errno, "bpf_map_update_elem");
  return env.Undefined();
}

Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  auto key = ArgBuffer(info, 1);
  if (env.IsExceptionPending()) return env.Undefined();
  if (bpf_map_delete_elem(fd, key.Data()) != 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    ThrowErrno(env, errno, "bpf_map_delete_elem");
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

// bpfMapGetNextKey(fd, key | null, next): false when key was the last one.
Napi::Value MapGetNextKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  const void* key = info[1].IsBuffer() ? info[1].As<Napi::Buffer<uint8_t>>().Data() : nullptr;
  auto next = ArgBuffer(info, 2);
  if (env.IsExceptionPending()) return env.Undefined();
  if (bpf_map_get_next_key(fd, key, next.Data()) != 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    ThrowErrno(env, errno, "bpf_map_get_next_key");
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

// bpfMapLookupBatch(fd, inBatch | null, outBatch, keys, values, count) -> { count, done }
Napi::Value MapLookupBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  void* in_batch = info[1].IsBuffer() ? info[1].As<Napi::Buffer<uint8_t>>().Data() : nullptr;
  auto out_batch = ArgBuffer(info, 2);
  auto keys = ArgBuffer(info, 3);
  auto values = ArgBuffer(info, 4);
  uint32_t count = info[5].As<Napi::Number>().Uint32Value();
  if (env.IsExceptionPending()) return env.Undefined();
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  int rc = bpf_map_lookup_batch(fd, in_batch, out_batch.Data(), keys.Data(), values.Data(), &count, &opts);
  bool done = false;
  if (rc != 0) {
    if (errno != ENOENT) {
      ThrowErrno(env, errno, "bpf_map_lookup_batch");
      return env.Undefined();
    }
    done = true;  // ENOENT: the last batch (count may still be > 0)
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("count", count);
  out.Set("done", done);
  return out;
}

// bpfMapUpdateBatch(fd, keys, values, count, flags) -> updated count
Napi::Value MapUpdateBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  auto keys = ArgBuffer(info, 1);
  auto values = ArgBuffer(info, 2);
  uint32_t count = info[3].As<Napi::Number>().Uint32Value();
  if (env.IsExceptionPending()) return env.Undefined();
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = info[4].IsNumber() ? info[4].As<Napi::Number>().Uint32Value() : 0u);
  if (bpf_map_update_batch(fd, keys.Data(), values.Data(), &count, &opts) != 0) {
    ThrowErrno(env, errno, "bpf_map_update_batch");
    return env.Undefined();
  }
  return Napi::Number::New(env, count);
}

// bpfMapDeleteBatch(fd, keys, count) -> deleted count
Napi::Value MapDeleteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  auto keys = ArgBuffer(info, 1);
  uint32_t count = info[2].As<Napi::Number>().Uint32Value();
  if (env.IsExceptionPending()) return env.Undefined();
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  if (bpf_map_delete_batch(fd, keys.Data(), &count, &opts) != 0 && errno != ENOENT) {
    ThrowErrno(env, errno, "bpf_map_delete_batch");
    return env.Undefined();
  }
  return Napi::Number::New(env, count);
}

// --- tc (clsact + cls_bpf direct-action), in the caller's or a given network namespace ---

struct TcTarget : IfTarget {
  bpf_tc_attach_point point = BPF_TC_INGRESS;
  uint32_t handle = 0;
  uint32_t priority = 0;
};

bool ParseTcTarget(const Napi::CallbackInfo& info, TcTarget* t) {
  if (!ParseIfTarget(info, t)) return false;
  t->point = t->ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
  Napi::Value opts = info[info.Length() - 1];
  if (opts.IsObject()) {
    Napi::Object oo = opts.As<Napi::Object>();
    if (oo.Get("handle").IsNumber()) t->handle = oo.Get("handle").As<Napi::Number>().Uint32Value();
    if (oo.Get("priority").IsNumber()) t->priority = oo.Get("priority").As<Napi::Number>().Uint32Value();
  }
  return true;
}

// Runs fn(hook) in the target's namespace; returns 0 or an errno, with `call` naming the failure.
template <typename Fn>
int WithTcHook(const TcTarget& t, const char** call, int* ifindex_out, Fn fn) {
  int result = 0;
  auto work = [&]() {
    int ifindex = t.ifindex;
    if (!ifindex) {
      ifindex = static_cast<int>(if_nametoindex(t.ifname.c_str()));
      if (!ifindex) {
        result = errno;
        *call = "if_nametoindex";
        return;
      }
    }
    *ifindex_out = ifindex;
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = t.point);
    result = fn(&hook);
  };
  if (t.netns_fd < 0) {
    work();
    return result;
  }
  int err = RunInNetnsThread(t.netns_fd, work);
  if (err) {
    *call = "setns";
    return err;
  }
  return result;
}

// bpfTcAttach(target, direction, progFd, { handle?, priority?, replace? }) -> { ifindex, handle, priority, progId }
Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TcTarget t;
  if (!ParseTcTarget(info, &t)) return env.Undefined();
  int prog_fd = ArgFd(info, 2);
  if (env.IsExceptionPending()) return env.Undefined();
  bool replace = true;
  if (info[3].IsObject() && info[3].As<Napi::Object>().Get("replace").IsBoolean())
    replace = info[3].As<Napi::Object>().Get("replace").As<Napi::Boolean>();

  const char* call = "bpf_tc_attach";
  int ifindex = 0;
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = replace ? BPF_TC_F_REPLACE : 0u,
              .handle = t.handle, .priority = t.priority);
  int err = WithTcHook(t, &call, &ifindex, [&](bpf_tc_hook* hook) {
    int rc = bpf_tc_hook_create(hook);
    if (rc && rc != -EEXIST) {
      call = "bpf_tc_hook_create";
      return -rc;
    }
    return -bpf_tc_attach(hook, &opts);
  });
  if (err) {
    ThrowErrno(env, err, call, t.ifname);
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("ifindex", ifindex);
  out.Set("handle", opts.handle);
  out.Set("priority", opts.priority);
  out.Set("progId", opts.prog_id);
  return out;
}

// bpfTcDetach(target, direction, { handle, priority }) -> false when nothing was attached there.
Napi::Value TcDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TcTarget t;
  if (!ParseTcTarget(info, &t)) return env.Undefined();
  const char* call = "bpf_tc_detach";
  int ifindex = 0;
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = t.handle, .priority = t.priority);
  int err = WithTcHook(t, &call, &ifindex, [&](bpf_tc_hook* hook) { return -bpf_tc_detach(hook, &opts); });
  if (err == ENOENT || err == ENODEV || err == EINVAL) return Napi::Boolean::New(env, false);
  if (err) {
    ThrowErrno(env, err, call, t.ifname);
    return env.Undefined();
  }
  return Napi::Boolean::New(env, true);
}

// bpfTcQuery(target, direction, { handle, priority }) -> { ifindex, progId } (progId 0: nothing attached)
Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TcTarget t;
  if (!ParseTcTarget(info, &t)) return env.Undefined();
  const char* call = "bpf_tc_query";
  int ifindex = 0;
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = t.handle, .priority = t.priority);
  int err = WithTcHook(t, &call, &ifindex, [&](bpf_tc_hook* hook) { return -bpf_tc_query(hook, &opts); });
  // No clsact or no such filter: the interface exists, nothing is attached.
  if (ifindex && (err == ENOENT || err == EINVAL)) {
    err = 0;
    opts.prog_id = 0;
  }
  if (err) {
    ThrowErrno(env, err, call, t.ifname);
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("ifindex", ifindex);
  out.Set("progId", opts.prog_id);
  return out;
}

// --- ring buffers: the epoll fd is watched by a uv_poll on the event loop, never blocking it ---

struct RingBufferPoller {
  napi_env env;
  ring_buffer* rb = nullptr;
  uv_poll_t poll;
  Napi::FunctionReference callback;
  std::vector<std::vector<uint8_t>> pending;
  bool closed = false;
};

std::map<uint32_t, RingBufferPoller*> g_ring_buffers;
uint32_t g_next_ring_buffer = 1;

int CollectSample(void* ctx, void* data, size_t size) {
  auto* p = static_cast<RingBufferPoller*>(ctx);
  auto* bytes = static_cast<uint8_t*>(data);
  p->pending.emplace_back(bytes, bytes + size);
  return 0;
}

// Drains the ring and hands all records to JS in one call: (records: Buffer[]) => void.
void Deliver(RingBufferPoller* p) {
  ring_buffer__consume(p->rb);
  if (p->pending.empty()) return;
  Napi::Env env(p->env);
  Napi::HandleScope scope(env);
  Napi::Array records = Napi::Array::New(env, p->pending.size());
  for (size_t i = 0; i < p->pending.size(); i++)
    records.Set(i, Napi::Buffer<uint8_t>::Copy(env, p->pending[i].data(), p->pending[i].size()));
  p->pending.clear();
  p->callback.MakeCallback(env.Global(), {records});
  if (env.IsExceptionPending()) {
    Napi::Error e = env.GetAndClearPendingException();
    napi_fatal_exception(env, e.Value());
  }
}

Napi::Value RingBufferOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int map_fd = ArgFd(info, 0);
  if (env.IsExceptionPending()) return env.Undefined();
  if (!info[1].IsFunction()) {
    Napi::TypeError::New(env, "callback must be a function").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* p = new RingBufferPoller();
  p->env = env;
  p->rb = ring_buffer__new(map_fd, CollectSample, p, nullptr);
  if (!p->rb) {
    int err = errno;
    delete p;
    ThrowErrno(env, err, "ring_buffer__new");
    return env.Undefined();
  }
  p->callback = Napi::Persistent(info[1].As<Napi::Function>());
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_init(loop, &p->poll, ring_buffer__epoll_fd(p->rb));
  p->poll.data = p;
  uv_poll_start(&p->poll, UV_READABLE, [](uv_poll_t* handle, int status, int events) {
    auto* rp = static_cast<RingBufferPoller*>(handle->data);
    if (!rp->closed && status == 0) Deliver(rp);
  });
  uint32_t id = g_next_ring_buffer++;
  g_ring_buffers[id] = p;
  return Napi::Number::New(env, id);
}

// bpfRingBufferConsume(id): drains now (tests, shutdown) instead of waiting for the loop.
Napi::Value RingBufferConsume(const Napi::CallbackInfo& info) {
  auto it = g_ring_buffers.find(info[0].As<Napi::Number>().Uint32Value());
  if (it != g_ring_buffers.end() && !it->second->closed) Deliver(it->second);
  return info.Env().Undefined();
}

// bpfRingBufferRef(id, ref): an unref'ed ring buffer does not keep the process alive.
Napi::Value RingBufferRef(const Napi::CallbackInfo& info) {
  auto it = g_ring_buffers.find(info[0].As<Napi::Number>().Uint32Value());
  if (it != g_ring_buffers.end()) {
    uv_handle_t* h = reinterpret_cast<uv_handle_t*>(&it->second->poll);
    if (info[1].ToBoolean()) uv_ref(h);
    else uv_unref(h);
  }
  return info.Env().Undefined();
}

Napi::Value RingBufferClose(const Napi::CallbackInfo& info) {
  auto it = g_ring_buffers.find(info[0].As<Napi::Number>().Uint32Value());
  if (it == g_ring_buffers.end()) return info.Env().Undefined();
  RingBufferPoller* p = it->second;
  g_ring_buffers.erase(it);
  p->closed = true;
  p->callback.Reset();
  uv_poll_stop(&p->poll);
  // The epoll fd belongs to the ring buffer: free it only after libuv let go of the handle.
  uv_close(reinterpret_cast<uv_handle_t*>(&p->poll), [](uv_handle_t* handle) {
    auto* rp = static_cast<RingBufferPoller*>(handle->data);
    ring_buffer__free(rp->rb);
    delete rp;
  });
  return info.Env().Undefined();
}

}  // namespace

void InitBpf(Napi::Env env, Napi::Object exports) {
  libbpf_set_print(CaptureLibbpfLog);
  exports.Set("bpfObjectLoad", Napi::Function::New(env, ObjectLoad));
  exports.Set("bpfObjectClose", Napi::Function::New(env, ObjectClose));
  exports.Set("bpfObjPin", Napi::Function::New(env, ObjPin));
  exports.Set("bpfObjGet", Napi::Function::New(env, ObjGet));
  exports.Set("bpfClose", Napi::Function::New(env, Close));
  exports.Set("bpfMapInfo", Napi::Function::New(env, MapInfo));
  exports.Set("bpfProgInfo", Napi::Function::New(env, ProgInfo));
  exports.Set("bpfMapLookup", Napi::Function::New(env, MapLookup));
  exports.Set("bpfMapUpdate", Napi::Function::New(env, MapUpdate));
  exports.Set("bpfMapDelete", Napi::Function::New(env, MapDelete));
  exports.Set("bpfMapGetNextKey", Napi::Function::New(env, MapGetNextKey));
  exports.Set("bpfMapLookupBatch", Napi::Function::New(env, MapLookupBatch));
  exports.Set("bpfMapUpdateBatch", Napi::Function::New(env, MapUpdateBatch));
  exports.Set("bpfMapDeleteBatch", Napi::Function::New(env, MapDeleteBatch));
  exports.Set("bpfTcAttach", Napi::Function::New(env, TcAttach));
  exports.Set("bpfTcDetach", Napi::Function::New(env, TcDetach));
  exports.Set("bpfTcQuery", Napi::Function::New(env, TcQuery));
  exports.Set("bpfRingBufferOpen", Napi::Function::New(env, RingBufferOpen));
  exports.Set("bpfRingBufferConsume", Napi::Function::New(env, RingBufferConsume));
  exports.Set("bpfRingBufferRef", Napi::Function::New(env, RingBufferRef));
  exports.Set("bpfRingBufferClose", Napi::Function::New(env, RingBufferClose));
  InitTcx(env, exports);
}

}  // namespace weft
