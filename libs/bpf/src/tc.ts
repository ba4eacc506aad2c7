/**
 * Attaching SCHED_CLS programs to an interface's ingress/egress, by one of two mechanisms:
 *
 * - **tcx** (kernel >= 6.6): a BPF link on the device's tcx hook, no qdisc. The link lives as long as
 *   its bpffs pin (`pinPath`), so it outlives this process. Qdisc-based tools keep working on the
 *   device: the reference `bandwidth` plugin's `ingress` qdisc and `tbf` root qdisc can be added.
 * - **clsact** (any kernel): a clsact qdisc with a direct-action cls_bpf filter in weft's slot
 *   (handle 0x7765, priority 1). The clsact qdisc occupies the device's ingress qdisc slot, so
 *   `tc qdisc add dev X ingress` (what `bandwidth` does for egress shaping) fails with EEXIST.
 *
 * The mechanism is chosen per call: `opts.mode`, else $WEFT_TC_MODE (`clsact` | `tcx` | `auto`),
 * else `auto` = tcx when the kernel has it (probed once) and a `pinPath` is given, clsact otherwise.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { isNativeError, native } from '@weft/native';
import type { BpfProgram } from './bpf-object';

export type TcDirection = 'ingress' | 'egress';
export type TcMechanism = 'tcx' | 'clsact';
/** What WEFT_TC_MODE / opts.mode ask for; `auto` picks tcx where the kernel has it. */
export type TcMode = TcMechanism | 'auto';

/** The environment variable operators (and tests) set to force a mechanism. */
export const TC_MODE_ENV = 'WEFT_TC_MODE';

/** weft's clsact filter slot on every hook: re-attaching replaces it, so attaching is idempotent. */
export const WEFT_TC_HANDLE = 0x7765;
export const WEFT_TC_PRIORITY = 1;

export interface TcOptions {
  /** A network namespace file (/var/run/netns/x, /proc/<pid>/ns/net) the interface lives in. */
  netns?: string;
  /** clsact: the filter slot (default weft's). */
  handle?: number;
  priority?: number;
  /**
   * tcx: the bpffs path the link is pinned at (its parent folder is created). Required for tcx: the
   * pin is what keeps the attachment alive once this process exits. For detach/query: the pin to
   * look at.
   */
  pinPath?: string;
  /** Which mechanism (default: $WEFT_TC_MODE, else auto). */
  mode?: TcMode;
}

export interface TcAttachment {
  mechanism: TcMechanism;
  ifindex: number;
  progId: number;
  /** clsact: the filter slot; 0 for tcx. */
  handle: number;
  priority: number;
  /** tcx: the link and where it is pinned. */
  linkId?: number;
  pinPath?: string;
}

export interface TcQuery {
  /** The interface's index in its namespace. */
  ifindex: number;
  /** The weft program on the hook (the pinned link's, else weft's clsact slot's); 0: none. */
  progId: number;
  /** Where progId was found; absent when nothing is attached. */
  mechanism?: TcMechanism;
  linkId?: number;
}

export class TcError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'TcError';
  }
}

/** The mode $WEFT_TC_MODE asks for (auto when unset). */
export function tcModeFromEnv(env: NodeJS.ProcessEnv = process.env): TcMode {
  const v = env[TC_MODE_ENV]?.trim().toLowerCase();
  if (!v) return 'auto';
  if (v === 'auto' || v === 'tcx' || v === 'clsact') return v;
  throw new TcError(`${TC_MODE_ENV}=${env[TC_MODE_ENV]}: expected clsact, tcx or auto`, 'EINVAL');
}

/** Whether this kernel can attach tcx links (6.6+). Probed once per process, nothing attached. */
export function tcxSupported(): boolean {
  return native().bpfTcxSupported();
}

/**
 * The mechanism a mode resolves to here. `tcx` on a kernel without it throws (code ENOTSUP) rather
 * than quietly using clsact: whoever forces tcx wants to know.
 */
export function resolveTcMechanism(mode: TcMode = tcModeFromEnv()): TcMechanism {
  if (mode === 'clsact') return 'clsact';
  const supported = tcxSupported();
  if (mode === 'tcx' && !supported)
    throw new TcError(
      `tcx was asked for (${TC_MODE_ENV}/mode=tcx) but this kernel has no tcx (needs 6.6+)`,
      'ENOTSUP',
    );
  if (mode !== 'tcx' && mode !== 'auto') throw new TcError(`unknown tc mode ${String(mode)}`, 'EINVAL');
  return supported ? 'tcx' : 'clsact';
}

type Target = { ifindex?: number; ifname?: string; netnsFd?: number };

function withTarget<T>(iface: number | string, opts: TcOptions, fn: (target: Target) => T): T {
  const target = typeof iface === 'number' ? { ifindex: iface } : { ifname: iface };
  if (!opts.netns) return fn(target);
  const fd = openSync(opts.netns, 'r');
  try {
    return fn({ ...target, netnsFd: fd });
  } finally {
    closeSync(fd);
  }
}

function slot(opts: TcOptions): { handle: number; priority: number } {
  return { handle: opts.handle ?? WEFT_TC_HANDLE, priority: opts.priority ?? WEFT_TC_PRIORITY };
}

function chosen(opts: TcOptions): TcMechanism {
  const mode = opts.mode ?? tcModeFromEnv();
  if (mode === 'auto' && !opts.pinPath) return 'clsact'; // nowhere to keep a link: the kernel-held kind
  const m = resolveTcMechanism(mode);
  if (m === 'tcx' && !opts.pinPath)
    throw new TcError('tcx attachment needs opts.pinPath (the link lives as long as its pin)', 'EINVAL');
  return m;
}

/**
 * Attaches `program` on the interface's ingress or egress, replacing what weft had there (with
 * either mechanism: switching modes leaves no second copy behind). Returns the mechanism used.
 */
export function attachTc(
  iface: number | string,
  direction: TcDirection,
  program: BpfProgram | number,
  opts: TcOptions = {},
): TcAttachment {
  const fd = typeof program === 'number' ? program : program.fd;
  const mechanism = chosen(opts);
  if (mechanism === 'clsact') {
    const r = withTarget(iface, opts, (t) =>
      native().bpfTcAttach(t, direction, fd, { ...slot(opts), replace: true }),
    );
    // A tcx link from an earlier mode. Something else pinned there (EEXIST) is not ours to remove.
    if (opts.pinPath) {
      try {
        native().bpfTcxDetach(opts.pinPath);
      } catch (err) {
        if (!isNativeError(err) || err.code !== 'EEXIST') throw err;
      }
    }
    return { mechanism, ...r };
  }
  const pinPath = opts.pinPath!;
  mkdirSync(dirname(pinPath), { recursive: true });
  const r = withTarget(iface, opts, (t) => {
    const link = native().bpfTcxAttach(t, direction, fd, { pinPath });
    // weft's clsact filter from an earlier mode (the qdisc is left: it may not be only ours).
    native().bpfTcDetach({ ...t, ifindex: link.ifindex }, direction, slot(opts));
    return link;
  });
  return {
    mechanism,
    ifindex: r.ifindex,
    progId: r.progId,
    handle: 0,
    priority: 0,
    linkId: r.linkId,
    pinPath,
  };
}

/**
 * Detaches weft's program from the hook: the link pinned at opts.pinPath (tcx; the pin is removed
 * even when the interface is already gone) and weft's clsact filter slot. `mode` limits it to one
 * mechanism. false when nothing was attached (or the interface is gone).
 */
export function detachTc(iface: number | string, direction: TcDirection, opts: TcOptions = {}): boolean {
  let detached = false;
  if (opts.pinPath && opts.mode !== 'clsact') detached = native().bpfTcxDetach(opts.pinPath).attached;
  if (opts.mode === 'tcx') return detached;
  try {
    return withTarget(iface, opts, (t) => native().bpfTcDetach(t, direction, slot(opts))) || detached;
  } catch (err) {
    if (detached && isNativeError(err)) return true; // the link is gone; the interface may be too
    throw err;
  }
}

/**
 * The interface's ifindex and weft's program on the hook: the link pinned at opts.pinPath when it is
 * attached to this very hook, else weft's clsact slot. ENODEV when the interface does not exist.
 */
export function queryTc(iface: number | string, direction: TcDirection, opts: TcOptions = {}): TcQuery {
  return withTarget(iface, opts, (t) => {
    const clsact = native().bpfTcQuery(t, direction, slot(opts));
    if (opts.pinPath && opts.mode !== 'clsact') {
      const link = native().bpfTcxLinkInfo(opts.pinPath);
      if (link && link.ifindex === clsact.ifindex && link.direction === direction) {
        // Same number is not enough (another namespace): the hook itself must list the link.
        const hook = native().bpfTcxQuery({ ...t, ifindex: clsact.ifindex }, direction);
        if (hook.programs.some((p) => p.linkId === link.linkId))
          return { ifindex: clsact.ifindex, progId: link.progId, mechanism: 'tcx', linkId: link.linkId };
      }
    }
    if (opts.mode === 'tcx' || !clsact.progId) return { ifindex: clsact.ifindex, progId: 0 };
    return { ifindex: clsact.ifindex, progId: clsact.progId, mechanism: 'clsact' };
  });
}

export interface TcxHook {
  ifindex: number;
  /** Bumped by the kernel on every change to the hook. */
  revision: number;
  /** Everything attached by tcx on the hook, in run order (linkId 0: attached without a link). */
  programs: { progId: number; linkId: number }[];
}

/** All programs on the interface's tcx hook (anyone's, not only weft's). Kernels with tcx only. */
export function listTcx(iface: number | string, direction: TcDirection, opts: TcOptions = {}): TcxHook {
  return withTarget(iface, opts, (t) => native().bpfTcxQuery(t, direction));
}

/**
 * Detaches the tcx link pinned at `pinPath` and removes the pin, wherever the link is (or whether its
 * interface still exists). found false: nothing pinned there; attached false: the link was stale.
 */
export function detachTcxLink(pinPath: string): { found: boolean; attached: boolean } {
  return native().bpfTcxDetach(pinPath);
}

/** The link pinned at `pinPath` (null: none). ifindex 0: its interface is gone (a stale pin). */
export function tcxLinkInfo(
  pinPath: string,
): { linkId: number; progId: number; ifindex: number; direction: TcDirection } | null {
  return native().bpfTcxLinkInfo(pinPath);
}
