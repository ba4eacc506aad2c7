import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** The part of vitest's test context we need: ctx.skip(reason). */
export interface SkipContext {
  skip: (note?: string) => void;
}

function skipLoudly(ctx: SkipContext, reason: string): never {
  // Printed so that CI logs say why, never a silent pass.
  console.log(`SKIPPED: ${reason}`);
  ctx.skip(reason);
  throw new Error('unreachable: ctx.skip returned');
}

/** Privileged tests need root (namespaces, netlink, BPF). */
export function privileged(ctx: SkipContext): void {
  if (process.getuid?.() !== 0) skipLoudly(ctx, 'needs root (network namespaces, netlink, BPF)');
}

export function requireCommands(ctx: SkipContext, ...commands: string[]): void {
  for (const c of commands) {
    const found = c.startsWith('/') ? existsSync(c) : spawnOk('sh', ['-c', `command -v ${c}`]);
    if (!found) skipLoudly(ctx, `needs ${c} (install it with the README's test command)`);
  }
}

/** e.g. requireKernelFeature(ctx, 'ipvlan') – tries `modprobe` and a scratch link. */
export function requireKernelFeature(ctx: SkipContext, linkKind: string): void {
  if (!kernelHasLinkKind(linkKind)) skipLoudly(ctx, `this kernel (${release()}) has no ${linkKind} support`);
}

export function kernelHasLinkKind(kind: string): boolean {
  spawnOk('modprobe', [kind]);
  const probe = `wkprobe${process.pid % 100000}`;
  const args =
    kind === 'ipvlan' || kind === 'macvlan'
      ? ['link', 'add', probe, 'link', 'lo', 'type', kind]
      : ['link', 'add', probe, 'type', kind];
  // ipvlan/macvlan on lo is refused with EINVAL-ish errors even when supported, so probe via a veth.
  if (kind === 'ipvlan' || kind === 'macvlan') {
    const base = `wkbase${process.pid % 100000}`;
    if (!spawnOk('ip', ['link', 'add', base, 'type', 'veth', 'peer', 'name', `${base}p`])) return false;
    const ok = spawnOk('ip', ['link', 'add', probe, 'link', base, 'type', kind]);
    spawnOk('ip', ['link', 'del', base]);
    return ok;
  }
  const ok = spawnOk('ip', args);
  if (ok) spawnOk('ip', ['link', 'del', probe]);
  return ok;
}

function release(): string {
  try {
    return execFileSync('uname', ['-r']).toString().trim();
  } catch {
    return 'unknown';
  }
}

function spawnOk(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
