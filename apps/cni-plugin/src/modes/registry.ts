/**
 * The table of weft-cni's pod-networking modes. Each mode registers a loader so that its code
 * (netlink, BPF, agent client...) is imported only when a request needs that mode: the CNI
 * binary is exec'd per pod and must start fast.
 *
 * Modes are listed in BUILT_IN below, one line each.
 */
import type { CniContext, CniResult } from '@weft/cni';

/** `mode` values of the network config (BRIEF: veth is the default). */
export const POD_MODES = ['veth', 'ipvlan', 'eni'] as const;
/** `chainingMode` values: weft runs after another plugin and builds on its prevResult. */
export const CHAINING_MODES = ['generic-veth', 'terway'] as const;

export type PodMode = (typeof POD_MODES)[number];
export type ChainingMode = (typeof CHAINING_MODES)[number];
export type ModeName = PodMode | ChainingMode;

/** What a mode implements. Errors are CniErrors with spec codes. */
export interface ModeHandlers {
  /** Returns the result (chained modes: the prevResult plus what weft adds). */
  add(ctx: CniContext): Promise<CniResult>;
  /** Best effort and idempotent: succeeds when things are already gone. */
  del(ctx: CniContext): Promise<void>;
  check(ctx: CniContext): Promise<void>;
  /** Releases what belongs to attachments not in ctx.validAttachments. */
  gc(ctx: CniContext): Promise<void>;
  /** Throws CniError 50/51 when the mode cannot serve ADDs (e.g. its agent is down). */
  status?(ctx: CniContext): Promise<void>;
}

export type ModeLoader = () => Promise<ModeHandlers>;

const loaders = new Map<ModeName, ModeLoader>();
const loaded = new Map<ModeName, Promise<ModeHandlers>>();

// The modes of this build; each is imported on first use.
const BUILT_IN: [ModeName, ModeLoader][] = [
  ['veth', async () => (await import('./veth')).vethMode],
  ['ipvlan', async () => (await import('./ipvlan')).ipvlanMode],
  ['eni', async () => (await import('./eni')).eniMode],
  ['generic-veth', async () => (await import('./generic-veth')).genericVethMode],
  ['terway', async () => (await import('./terway')).terwayMode],
];
for (const [name, loader] of BUILT_IN) loaders.set(name, loader);

/** Back to the modes this build ships with (tests that swap modes out). */
export function restoreBuiltInModes(): void {
  loaders.clear();
  loaded.clear();
  for (const [name, loader] of BUILT_IN) loaders.set(name, loader);
}

/** Registers a mode: its handlers, or (preferably) a loader that imports them lazily. */
export function registerMode(name: ModeName, handlers: ModeHandlers | ModeLoader): void {
  loaders.set(name, typeof handlers === 'function' ? handlers : async () => handlers);
  loaded.delete(name);
}

/** Removes a mode (tests, and builds that leave a mode out). */
export function unregisterMode(name: ModeName): void {
  loaders.delete(name);
  loaded.delete(name);
}

export function registeredModes(): ModeName[] {
  return [...loaders.keys()];
}

/** The mode's handlers, imported on first use; undefined when this build has no such mode. */
export function loadMode(name: ModeName): Promise<ModeHandlers> | undefined {
  const loader = loaders.get(name);
  if (!loader) return undefined;
  let p = loaded.get(name);
  if (!p) {
    p = loader();
    loaded.set(name, p);
    p.catch(() => loaded.delete(name)); // a failed import may be retried by the next call
  }
  return p;
}

export function isPodMode(v: unknown): v is PodMode {
  return typeof v === 'string' && (POD_MODES as readonly string[]).includes(v);
}

export function isChainingMode(v: unknown): v is ChainingMode {
  return typeof v === 'string' && (CHAINING_MODES as readonly string[]).includes(v);
}
