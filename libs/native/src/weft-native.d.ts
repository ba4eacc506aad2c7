/**
 * The whole surface of the weft native addon (libs/native/csrc). It only makes syscalls;
 * every error it throws is a NativeError.
 */
export interface NativeError extends Error {
  /** Negative errno, like Node's system errors. */
  errno: number;
  /** Symbolic errno name, e.g. "ENOENT". */
  code: string;
  syscall: string;
  path?: string;
}

export interface WeftNative {
  // --- netns (csrc/netns.cc) --- use them through @weft/netns, not directly.
  /** open(path, O_RDONLY|O_CLOEXEC) of a network namespace file; EINVAL when it is not a netns. */
  openNetns(path: string): number;
  /** close(2) of an fd from openNetns. */
  closeNetns(fd: number): void;
  /**
   * Switches the calling (main) thread into the namespace, calls `fn` synchronously and switches
   * back before returning or rethrowing. Aborts the process if switching back fails.
   */
  runInNetnsSync<T>(fd: number, fn: () => T): T;
  /** socket(domain, type|SOCK_CLOEXEC, protocol) made on a throwaway thread inside the namespace. */
  socketIn(fd: number, domain: number, type: number, protocol: number): number;
  /** Writes /proc/sys/<relPath> (e.g. "net/ipv4/ip_forward") from a thread inside the namespace. */
  writeSysctlIn(fd: number, relPath: string, value: string): void;
  /** Reads /proc/sys/<relPath> from a thread inside the namespace (raw, with the trailing newline). */
  readSysctlIn(fd: number, relPath: string): string;
  /**
   * Like `ip netns add`: makes the parent directory (which must exist) a shared mount point, creates
   * `bindPath` (EEXIST if present) and bind-mounts a new network namespace onto it.
   */
  createNetns(bindPath: string): void;
  /** umount2(MNT_DETACH) (not-mounted tolerated) + unlink; ENOENT when the file is gone. */
  deleteNetns(bindPath: string): void;
  /** Inode of the calling thread's network namespace (/proc/thread-self/ns/net). */
  currentNetnsInode(): number;
  /** if_nametoindex inside the namespace; ENODEV when there is no such link. */
  ifNameToIndexIn(fd: number, name: string): number;
  // --- bpf (csrc/bpf.cc) --- use them through @weft/bpf, not directly.
  /**
   * bpf_object__open_file + load. Maps declared with LIBBPF_PIN_BY_NAME are pinned under `pinRoot`
   * (default /sys/fs/bpf), or reused when already pinned there. The object (and its fds) stays open
   * until bpfObjectClose. A failed load throws with `log` holding libbpf's messages (verifier log).
   */
  bpfObjectLoad(path: string, opts?: { pinRoot?: string }): NativeBpfObject;
  /** Closes a loaded object's fds; pinned maps and attached programs live on. */
  bpfObjectClose(handle: number): void;
  bpfObjPin(fd: number, path: string): void;
  /** bpf_obj_get: a new fd for a pinned map or program. */
  bpfObjGet(path: string): number;
  bpfClose(fd: number): void;
  bpfMapInfo(fd: number): NativeBpfMapInfo;
  bpfProgInfo(fd: number): { id: number; name: string; type: number; tag: string };
  /** Fills `value`; false when the key is absent. Buffers must be exactly the map's key/value size. */
  bpfMapLookup(fd: number, key: Buffer, value: Buffer): boolean;
  /** flags: BPF_ANY 0, BPF_NOEXIST 1, BPF_EXIST 2. */
  bpfMapUpdate(fd: number, key: Buffer, value: Buffer, flags?: number): void;
  /** false when the key was absent. */
  bpfMapDelete(fd: number, key: Buffer): boolean;
  /** Writes the key after `key` (the first one for null) into `next`; false at the end. */
  bpfMapGetNextKey(fd: number, key: Buffer | null, next: Buffer): boolean;
  /** bpf_map_lookup_batch (hash/array maps; not LPM tries): `count` in, entries read out. */
  bpfMapLookupBatch(fd: number, inBatch: Buffer | null, outBatch: Buffer, keys: Buffer, values: Buffer, count: number): { count: number; done: boolean };
  bpfMapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number, elemFlags?: number): number;
  bpfMapDeleteBatch(fd: number, keys: Buffer, count: number): number;
  /**
   * Creates the clsact qdisc if missing and attaches a direct-action cls_bpf filter, replacing one
   * with the same handle/priority. With netnsFd, on a throwaway thread inside that namespace.
   */
  bpfTcAttach(target: NativeTcTarget, direction: 'ingress' | 'egress', progFd: number, opts?: { handle?: number; priority?: number; replace?: boolean }): { ifindex: number; handle: number; priority: number; progId: number };
  /** false when no such filter or interface exists. */
  bpfTcDetach(target: NativeTcTarget, direction: 'ingress' | 'egress', opts: { handle: number; priority: number }): boolean;
  /** The interface's index and the program attached at handle/priority (progId 0: none); ENODEV without the interface. */
  bpfTcQuery(target: NativeTcTarget, direction: 'ingress' | 'egress', opts: { handle: number; priority: number }): { ifindex: number; progId: number };
  // --- tcx (csrc/tcx.cc): BPF links on a device's ingress/egress, kernel >= 6.6 ---
  /**
   * Whether the kernel has tcx: BPF_LINK_CREATE(BPF_TCX_INGRESS) of a scratch program on ifindex 0
   * fails ENODEV with tcx, EINVAL (ENOTSUPP, EOPNOTSUPP) without. Cached; nothing is attached. Throws
   * when the probe itself cannot run (EPERM).
   */
  bpfTcxSupported(): boolean;
  /**
   * Attaches `progFd` to the interface's tcx hook as a link pinned at `pinPath` (the parent folder
   * must exist), first on the hook (BPF_F_BEFORE). A link already pinned there and attached to this
   * very hook is updated in place (BPF_LINK_UPDATE; `updated` true); a stale one (device gone, or
   * another device) is detached and replaced. EEXIST when the pin is not a tcx link, or when the
   * program is already on the hook through another link. EINVAL from a kernel without tcx.
   * With netnsFd, on a throwaway thread inside that namespace.
   */
  bpfTcxAttach(target: NativeTcTarget, direction: 'ingress' | 'egress', progFd: number, opts: { pinPath: string }): NativeTcxLink & { updated: boolean };
  /**
   * BPF_LINK_DETACH of the link pinned at `pinPath`, then unpin. found false: nothing pinned there;
   * attached false: the link was already defunct (its interface went away) and only the pin went.
   */
  bpfTcxDetach(pinPath: string): { found: boolean; attached: boolean };
  /** The link pinned at `pinPath` (null: nothing there). ifindex 0: its interface is gone. EINVAL: not a tcx link. */
  bpfTcxLinkInfo(pinPath: string): NativeTcxLink | null;
  /** BPF_PROG_QUERY of the interface's tcx hook: everything attached, in run order. ENODEV without the interface. */
  bpfTcxQuery(target: NativeTcTarget, direction: 'ingress' | 'egress'): { ifindex: number; revision: number; programs: { progId: number; linkId: number }[] };
  /**
   * Watches a BPF_MAP_TYPE_RINGBUF's epoll fd from the event loop (uv_poll): each time records
   * arrive, `onRecords` gets all of them as copies. Returns an id for the calls below.
   */
  bpfRingBufferOpen(mapFd: number, onRecords: (records: Buffer[]) => void): number;
  /** Drains the ring now, calling onRecords synchronously if anything was there. */
  bpfRingBufferConsume(id: number): void;
  /** An unref'ed ring buffer does not keep the process alive. */
  bpfRingBufferRef(id: number, ref: boolean): void;
  bpfRingBufferClose(id: number): void;
  // --- fs (csrc/fs.cc): file locks etc. ---
  /**
   * flock(2) on an open fd (e.g. from fs.openSync); blocks unless `operation` has LOCK_NB, in which
   * case a lock held elsewhere throws code "EAGAIN" (EWOULDBLOCK). EINTR is retried.
   */
  flock(fd: number, operation: number): void;
  /** The same flock(2), waiting on the libuv thread pool so the event loop keeps running. */
  flockAsync(fd: number, operation: number): Promise<void>;
  /** The operation bits of <sys/file.h>. */
  readonly flockOps: {
    readonly LOCK_SH: number;
    readonly LOCK_EX: number;
    readonly LOCK_NB: number;
    readonly LOCK_UN: number;
  };
}

// --- bpf (csrc/bpf.cc) types ---
export interface NativeBpfMapInfo {
  id: number;
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags?: number;
}

export interface NativeBpfObject {
  handle: number;
  programs: { name: string; section: string; fd: number }[];
  maps: { name: string; fd: number; type: number; keySize: number; valueSize: number; maxEntries: number; pinPath?: string }[];
}

/** An interface by index or name, in the caller's namespace or the one `netnsFd` refers to. */
export interface NativeTcTarget {
  ifindex?: number;
  ifname?: string;
  netnsFd?: number;
}

/** A tcx link as the kernel describes it (bpf_link_info). */
export interface NativeTcxLink {
  linkId: number;
  progId: number;
  /** 0 once the interface is gone (the link is defunct but still pinned). */
  ifindex: number;
  direction: 'ingress' | 'egress';
}
