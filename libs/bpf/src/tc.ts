import { closeSync, openSync } from 'node:fs';
import { native } from '@weft/native';
import type { BpfProgram } from './bpf-object';

export type TcDirection = 'ingress' | 'egress';

/** weft's filter slot on every hook: re-attaching replaces it, so attaching is idempotent. */
export const WEFT_TC_HANDLE = 0x7765;
export const WEFT_TC_PRIORITY = 1;

export interface TcOptions {
  /** A network namespace file (/var/run/netns/x, /proc/<pid>/ns/net) the interface lives in. */
  netns?: string;
  handle?: number;
  priority?: number;
}

export interface TcAttachment {
  ifindex: number;
  handle: number;
  priority: number;
  progId: number;
}

function withTarget<T>(
  iface: number | string,
  opts: TcOptions,
  fn: (target: { ifindex?: number; ifname?: string; netnsFd?: number }) => T,
): T {
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

/** Attaches `program` as a direct-action cls_bpf filter on the interface's clsact hook. */
export function attachTc(
  iface: number | string,
  direction: TcDirection,
  program: BpfProgram | number,
  opts: TcOptions = {},
): TcAttachment {
  const fd = typeof program === 'number' ? program : program.fd;
  return withTarget(iface, opts, (t) =>
    native().bpfTcAttach(t, direction, fd, { ...slot(opts), replace: true }),
  );
}

/** false when nothing was attached (or the interface is gone). */
export function detachTc(iface: number | string, direction: TcDirection, opts: TcOptions = {}): boolean {
  return withTarget(iface, opts, (t) => native().bpfTcDetach(t, direction, slot(opts)));
}

/** The interface's ifindex and the id of the program in weft's slot (0: none). */
export function queryTc(
  iface: number | string,
  direction: TcDirection,
  opts: TcOptions = {},
): { ifindex: number; progId: number } {
  return withTarget(iface, opts, (t) => native().bpfTcQuery(t, direction, slot(opts)));
}
