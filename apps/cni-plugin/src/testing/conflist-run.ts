/**
 * Runs a network configuration list the way libcni does (AddNetworkList / CheckNetworkList /
 * DelNetworkList / GCNetworkList), executing each plugin found in CNI_PATH:
 * - ADD in order, each plugin getting the previous plugin's result as `prevResult` (exactly as it
 *   printed it), and `runtimeConfig` holding the capability arguments it declared in
 *   `capabilities`; the first failure stops the list (libcni does not DEL on its own);
 * - CHECK (cniVersion >= 0.4.0, unless `disableCheck`) in order, DEL in reverse order, both with
 *   the cached final result of ADD as `prevResult`; the first failure stops the list;
 * - GC (cniVersion >= 1.1.0, unless `disableGC`) in order with `cni.dev/valid-attachments`.
 * For tests and benchmarks; the conformance suite runs the real libcni.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { CNI_SPEC_VERSIONS } from '@weft/cni';
import { DIST_BIN, REFERENCE_CNI_DIR, runCni, type CniCall, type CniOutcome } from './cni-run';

export interface ConfList {
  cniVersion: string;
  cniVersions?: string[];
  name: string;
  disableCheck?: boolean;
  disableGC?: boolean;
  plugins: Array<Record<string, unknown> & { type: string }>;
}

export interface RuntimeConf {
  containerId: string;
  netns: string;
  ifname?: string;
  /** CNI_ARGS. */
  args?: string;
  /** CNI_PATH (default: dist/bin then the reference plugins, as runCni). */
  path?: string;
  /** Values for the `capabilities` plugins declare: portMappings, bandwidth, ipRanges, mac, ... */
  capabilityArgs?: Record<string, unknown>;
  env?: Record<string, string>;
}

/** One plugin run of a list operation. */
export interface PluginRun {
  index: number;
  type: string;
  /** What the plugin got on stdin. */
  conf: Record<string, unknown>;
  outcome: CniOutcome;
}

export interface ListOutcome {
  ok: boolean;
  /** ADD: the final result (what a runtime caches). */
  result?: Record<string, unknown>;
  runs: PluginRun[];
  /** The first failure, as the runtime would report it. */
  error?: { index: number; type: string; code: number; json: unknown; stderr: string };
}

export interface ListOptions {
  /** Called after each plugin ran (e.g. to look at the host between DEL steps). */
  after?: (run: PluginRun) => void | Promise<void>;
}

/** The version a list runs with: the highest of `cniVersions` we know, else `cniVersion` (libcni 1.1). */
export function listVersion(list: ConfList): string {
  const offered = list.cniVersions?.filter((v) => (CNI_SPEC_VERSIONS as readonly string[]).includes(v)) ?? [];
  if (offered.length === 0) return list.cniVersion;
  return offered.sort((a, b) => cmp(a, b)).at(-1)!;
}

function cmp(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

/** libcni's buildOneConfig: the plugin object + name/cniVersion + prevResult + runtimeConfig. */
export function pluginConf(
  list: ConfList,
  index: number,
  rt: RuntimeConf,
  prevResult?: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const plugin = list.plugins[index]!;
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: listVersion(list), ...extra };
  if (prevResult) conf.prevResult = prevResult;
  const caps = (plugin.capabilities ?? {}) as Record<string, boolean>;
  const runtimeConfig: Record<string, unknown> = {};
  for (const [cap, on] of Object.entries(caps)) {
    if (on && rt.capabilityArgs && cap in rt.capabilityArgs) runtimeConfig[cap] = rt.capabilityArgs[cap];
  }
  if (Object.keys(runtimeConfig).length) conf.runtimeConfig = runtimeConfig;
  return conf;
}

async function runOne(
  command: CniCall['command'],
  list: ConfList,
  index: number,
  rt: RuntimeConf,
  prevResult: Record<string, unknown> | undefined,
  extra?: Record<string, unknown>,
): Promise<PluginRun> {
  const conf = pluginConf(list, index, rt, prevResult, extra);
  const bare = command === 'GC' || command === 'STATUS';
  const cniPath = rt.path ?? `${DIST_BIN}:${REFERENCE_CNI_DIR}`;
  const outcome = await runCni(findPlugin(list.plugins[index]!.type, cniPath), {
    command,
    conf,
    ...(bare ? {} : { containerId: rt.containerId, netns: rt.netns, ifname: rt.ifname ?? 'eth0' }),
    args: rt.args,
    path: cniPath,
    env: rt.env,
  });
  return { index, type: list.plugins[index]!.type, conf, outcome };
}

/** The executable for a plugin type in CNI_PATH, as libcni's FindInPath. */
export function findPlugin(type: string, cniPath: string): string {
  if (!type || type.includes('/')) throw new Error(`invalid plugin type ${JSON.stringify(type)}`);
  for (const dir of cniPath.split(':').filter(Boolean)) {
    const candidate = join(dir, type);
    try {
      if (statSync(candidate).isFile()) {
        accessSync(candidate, constants.X_OK);
        return candidate;
      }
    } catch {
      /* not here */
    }
  }
  throw new Error(`plugin ${type} not found in CNI_PATH ${cniPath}`);
}

function failed(run: PluginRun): ListOutcome['error'] {
  return {
    index: run.index,
    type: run.type,
    code: run.outcome.json?.code ?? run.outcome.code,
    json: run.outcome.json,
    stderr: run.outcome.stderr,
  };
}

export async function addList(list: ConfList, rt: RuntimeConf, opts: ListOptions = {}): Promise<ListOutcome> {
  const runs: PluginRun[] = [];
  let prev: Record<string, unknown> | undefined;
  for (let i = 0; i < list.plugins.length; i++) {
    const run = await runOne('ADD', list, i, rt, prev);
    runs.push(run);
    await opts.after?.(run);
    if (run.outcome.code !== 0 || !run.outcome.json) return { ok: false, runs, error: failed(run) };
    prev = run.outcome.json;
  }
  return { ok: true, result: prev, runs };
}

export async function checkList(
  list: ConfList,
  rt: RuntimeConf,
  cached: Record<string, unknown>,
  opts: ListOptions = {},
): Promise<ListOutcome> {
  if (cmp(listVersion(list), '0.4.0') < 0)
    return refused(`configuration version "${listVersion(list)}" does not support the CHECK command`);
  if (list.disableCheck) return { ok: true, runs: [] };
  const runs: PluginRun[] = [];
  for (let i = 0; i < list.plugins.length; i++) {
    const run = await runOne('CHECK', list, i, rt, cached);
    runs.push(run);
    await opts.after?.(run);
    if (run.outcome.code !== 0) return { ok: false, runs, error: failed(run) };
  }
  return { ok: true, runs };
}

/** DEL in reverse order; `cached` is the final ADD result (libcni passes none when it has none). */
export async function delList(
  list: ConfList,
  rt: RuntimeConf,
  cached?: Record<string, unknown>,
  opts: ListOptions = {},
): Promise<ListOutcome> {
  const runs: PluginRun[] = [];
  for (let i = list.plugins.length - 1; i >= 0; i--) {
    const run = await runOne('DEL', list, i, rt, cached);
    runs.push(run);
    await opts.after?.(run);
    if (run.outcome.code !== 0) return { ok: false, runs, error: failed(run) };
  }
  return { ok: true, runs };
}

export async function gcList(
  list: ConfList,
  rt: Omit<RuntimeConf, 'containerId' | 'netns'>,
  valid: Array<{ containerID: string; ifname: string }>,
  opts: ListOptions = {},
): Promise<ListOutcome> {
  if (cmp(listVersion(list), '1.1.0') < 0)
    return refused(`configuration version "${listVersion(list)}" does not support the GC command`);
  if (list.disableGC) return { ok: true, runs: [] };
  const runs: PluginRun[] = [];
  for (let i = 0; i < list.plugins.length; i++) {
    const run = await runOne('GC', list, i, { ...rt, containerId: '', netns: '' }, undefined, {
      'cni.dev/valid-attachments': valid,
    });
    runs.push(run);
    await opts.after?.(run);
    if (run.outcome.code !== 0) return { ok: false, runs, error: failed(run) };
  }
  return { ok: true, runs };
}

function refused(msg: string): ListOutcome {
  return { ok: false, runs: [], error: { index: -1, type: '(runtime)', code: 1, json: { msg }, stderr: '' } };
}
