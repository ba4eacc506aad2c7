/**
 * Helpers for the chaining tests: the flannel stand-in on a CNI_PATH, weft-cni's chained entry with
 * every state dir in a temp dir, what weft left on the host, and result normalisation for goldens.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_BIN, REFERENCE_CNI_DIR } from './cni-run';

export const FLANNEL_STANDIN = join(__dirname, 'flannel-standin.mjs');

/** A bin dir holding `flannel` (a link to the stand-in), for CNI_PATH. */
export function flannelBinDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  chmodSync(FLANNEL_STANDIN, 0o755);
  const link = join(dir, 'flannel');
  if (!existsSync(link)) symlinkSync(FLANNEL_STANDIN, link);
  return dir;
}

/** CNI_PATH: weft's executables, extra dirs (the stand-in), then the reference plugins. */
export function chainPath(...extra: string[]): string {
  return [DIST_BIN, ...extra, REFERENCE_CNI_DIR].join(':');
}

/** weft-cni's state, isolated: nothing touches /var/lib/weft, /var/run/weft or /sys/fs/bpf/weft. */
export interface WeftDirs {
  stateDir: string;
  agentSocket: string;
  pinRoot: string;
}

export function weftDirs(work: string, pinRoot: string): WeftDirs {
  return { stateDir: join(work, 'state'), agentSocket: join(work, 'no-agent.sock'), pinRoot };
}

/** The weft-cni plugin entry of a chain (degraded: the datapath is attached without an agent). */
export function weftEntry(dirs: WeftDirs, chainingMode: 'generic-veth' | 'terway' = 'generic-veth', extra: object = {}) {
  return { type: 'weft-cni', chainingMode, degraded: true, ...dirs, ...extra };
}

/** Attachment records weft holds for `network`. */
export function records(dirs: WeftDirs, network: string): Array<Record<string, unknown>> {
  const dir = join(dirs.stateDir, 'cni', network);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
}

export function queueEntries(dirs: WeftDirs): string[] {
  const dir = join(dirs.stateDir, 'queue');
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** Degraded endpoints the datapath holds records of. */
export function datapathEndpoints(dirs: WeftDirs): string[] {
  const dir = join(dirs.stateDir, 'datapath', 'endpoints');
  return existsSync(dir) ? readdirSync(dir) : [];
}

export function linkExists(name: string): boolean {
  try {
    execFileSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * How the tests ask weft-cni to attach the datapath: clsact + cls_bpf, visible to `tc filter show`
 * (the datapath's default on kernels >= 6.6 is a tcx link, which `tc` does not list).
 */
export const CLSACT_ENV = { WEFT_TC_MODE: 'clsact' };
export const TCX_ENV = { WEFT_TC_MODE: 'tcx' };

/**
 * Which mechanism weft's programs are attached to `dev` by (from-container on the hook packets
 * from the pod arrive on, to-container on the other): 'clsact' as `tc filter show` lists them,
 * 'tcx' as the datapath's pinned links (bpftool) say, undefined when neither.
 */
export function weftProgramsOn(dev: string, dirs: WeftDirs, opts: { inPod?: string } = {}): 'clsact' | 'tcx' | undefined {
  const [leaving, entering] = opts.inPod ? (['egress', 'ingress'] as const) : (['ingress', 'egress'] as const);
  const show = (hook: string) => {
    const args = ['filter', 'show', 'dev', dev, hook];
    try {
      return opts.inPod
        ? execFileSync('ip', ['netns', 'exec', opts.inPod, 'tc', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        : execFileSync('tc', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return '';
    }
  };
  if (/from_container/.test(show(leaving)) && /to_container/.test(show(entering))) return 'clsact';
  const dir = join(dirs.stateDir, 'datapath', 'endpoints');
  for (const f of existsSync(dir) ? readdirSync(dir) : []) {
    const r = JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
      ifname?: string;
      tcMechanism?: string;
      tcxLinks?: Record<string, string>;
    };
    if (r.ifname !== dev || r.tcMechanism !== 'tcx' || !r.tcxLinks) continue;
    const prog = (pin: string | undefined) => {
      if (!pin || !existsSync(pin)) return undefined;
      const link = JSON.parse(execFileSync('bpftool', ['-j', 'link', 'show', 'pinned', pin], { encoding: 'utf8' }));
      return JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show', 'id', String(link.prog_id)], { encoding: 'utf8' })).name;
    };
    if (prog(r.tcxLinks[leaving]) === 'from_container' && prog(r.tcxLinks[entering]) === 'to_container') return 'tcx';
  }
  return undefined;
}

/** `tc filter show dev DEV DIR` (empty when the link is gone). */
export function tcFilters(dev: string, dir: 'ingress' | 'egress'): string {
  try {
    return execFileSync('tc', ['filter', 'show', 'dev', dev, dir], { encoding: 'utf8' });
  } catch {
    return '';
  }
}

/**
 * A result as the CNI types see it: the Go plugins print `"dns": {}` for no DNS, weft (like a
 * result parsed and printed by any libcni-based plugin... except Go's) leaves it out. Same meaning.
 */
export function canonical<T>(result: T): T {
  if (!result || typeof result !== 'object') return result;
  const { dns, ...rest } = result as Record<string, unknown>;
  const empty = !dns || (typeof dns === 'object' && Object.keys(dns).length === 0);
  return (empty ? rest : { ...rest, dns }) as T;
}

/**
 * A result with what differs from run to run replaced: MACs, the netns path, generated link names
 * (veth*, bwp*, lxc*) and the test's own unique names (given as `names`: value → placeholder).
 */
export function normalise(result: unknown, names: Record<string, string> = {}): unknown {
  const text = JSON.stringify(result, (key, value) => {
    if (typeof value !== 'string') return value;
    if (key === 'mac') return '<mac>';
    if (key === 'sandbox') return '<netns>';
    if (key === 'name') {
      if (names[value]) return names[value];
      if (/^veth[0-9a-f]{8}$/.test(value)) return '<veth>';
      if (/^bwp[0-9a-f]+$/.test(value)) return '<ifb>';
      if (/^lxc[0-9a-f]{11}$/.test(value)) return '<lxc>';
    }
    return names[value] ?? value;
  });
  return JSON.parse(text);
}

/** One ping from inside a namespace (by name, or a ScratchNetns), IPv4 or IPv6 by the address. */
export function ping(ns: string | { name: string }, to: string): boolean {
  const name = typeof ns === 'string' ? ns : ns.name;
  const family = to.includes(':') ? '-6' : '-4';
  // An echo a second for up to 6 s, the first reply wins: under a loaded CI host (VM tests beside
  // the suite) a single echo, which also waits for ARP, was seen to miss a 2 s wait. A path that
  // drops fails them all.
  try {
    execFileSync('ip', ['netns', 'exec', name, 'ping', family, '-c1', '-w6', '-W2', to], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The host's first global IPv4 address (something to ping that is neither pod nor gateway). */
export function hostAddress(): string {
  const out = execFileSync('ip', ['-4', '-o', 'addr', 'show', 'scope', 'global'], { encoding: 'utf8' });
  const m = /inet (\d+\.\d+\.\d+\.\d+)/.exec(out);
  if (!m) throw new Error('the host has no global IPv4 address to ping');
  return m[1]!;
}
