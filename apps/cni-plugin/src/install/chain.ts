/**
 * `weft install --chain-after <network|*>`: put weft-cni into an existing network's conflist as a
 * chained plugin, right after the plugin that makes the pod's interface (flannel, terway, bridge,
 * ptp, calico, ...) and before the meta plugins that work on its result (portmap, bandwidth,
 * tuning, firewall, sbr). A single `.conf` becomes a `.conflist` (the `.conf` is moved aside, so the
 * runtime never sees the network twice). The file as it was is kept beside it as
 * `<file>.weft-backup` (byte for byte) and recorded in the install manifest; `weft uninstall` puts
 * it back. Running it again changes nothing and says so.
 *
 * Planning (planChain) is pure and refuses, changing nothing, when the network is not there, its
 * file is malformed, weft cannot speak its cniVersion, or another BPF datapath (cilium-cni) is
 * already chained there and `--replace` does not say to take its place. Applying (applyChain)
 * writes atomically (temp + fsync + rename) and happens only once weft is ready (waitReady).
 */
import { readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { AgentClient, DEFAULT_AGENT_SOCKET } from '@weft/agent-api';
import { CNI_SPEC_VERSIONS } from '@weft/cni';
import { pathState, readTextIfExists, sha256, writeFileAtomic } from './atomic-fs';
import { networkConfigsIn } from './conflist';

export const BACKUP_SUFFIX = '.weft-backup';
export const WEFT_PLUGIN_TYPE = 'weft-cni';
export const CHAINING_MODES = ['generic-veth', 'terway'] as const;
export type ChainingMode = (typeof CHAINING_MODES)[number];

/** Plugins that work on the main plugin's result: weft goes before them. */
export const META_PLUGINS: ReadonlySet<string> = new Set(['portmap', 'bandwidth', 'tuning', 'firewall', 'sbr']);
/** Other BPF datapaths chained the way weft is: weft does not go beside them (both would own the tc hooks). */
export const COMPETING_CHAINERS: ReadonlySet<string> = new Set(['cilium-cni']);

/** The chain step of an install, as the manifest keeps it for uninstall. */
export interface ChainManifestEntry {
  kind: 'chain';
  /** The conflist weft wrote. */
  path: string;
  /** sha256 of what weft wrote: uninstall restores only over its own bytes. */
  sha256: string;
  /** The file the network was in before (== path, or the `.conf` that became `path`). */
  original: string;
  /** Where the original bytes are; absent when there was no weft-free original to keep. */
  backup?: string;
  network: string;
  chainingMode: ChainingMode;
}

export interface ChainOptions {
  confDir: string;
  /** A network name, or "*" for the network the runtime uses (the first file by name). */
  chainAfter: string;
  /** Default: terway after terway, generic-veth after anything else. */
  chainingMode?: ChainingMode;
  /** Plugin types to remove from the list (e.g. cilium-cni, which weft takes the place of). */
  replace?: string[];
  /** Keys for weft-cni's entry besides type and chainingMode (agentSocket, degraded, ...). */
  weftKeys?: Record<string, unknown>;
}

export type ChainPlan =
  | { action: 'unchanged'; file: string; network: string; chainingMode: ChainingMode; backup?: string; content: string; notes: string[] }
  | {
      action: 'rewrite';
      /** The file the network is in now. */
      file: string;
      /** The file to write (file, or the .conflist a .conf becomes). */
      target: string;
      content: string;
      network: string;
      chainingMode: ChainingMode;
      /** Bytes of `file` as read (what the backup must hold). */
      original: Buffer;
      /** Where the backup goes, and whether this run writes it (false: an existing backup stays). */
      backup?: string;
      writeBackup: boolean;
      notes: string[];
    };

export class ChainError extends Error {
  constructor(
    message: string,
    /** usage: bad options; conflict: the conf dir is not as it must be; not-ready: weft is not. */
    readonly code: 'usage' | 'conflict' | 'not-ready',
  ) {
    super(message);
    this.name = 'ChainError';
  }
}

type Obj = Record<string, unknown>;
interface Parsed {
  file: string;
  bytes: Buffer;
  conflist: boolean;
  name?: string;
  doc?: Obj;
  error?: string;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** How libcni-based runtimes read a file: `.conflist` is a list, `.conf`/`.json` a single plugin. */
function parseFile(confDir: string, f: string): Parsed {
  const file = join(confDir, f);
  const bytes = readFileSync(file);
  const conflist = f.endsWith('.conflist');
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return { file, bytes, conflist, error: `not valid JSON (${(err as Error).message})` };
  }
  if (!isObj(doc)) return { file, bytes, conflist, error: 'not a JSON object' };
  if (typeof doc.name !== 'string' || doc.name === '') return { file, bytes, conflist, doc, error: 'no "name"' };
  if (conflist) {
    if (!Array.isArray(doc.plugins) || doc.plugins.length === 0)
      return { file, bytes, conflist, doc, name: doc.name, error: '"plugins" is not a non-empty list' };
    const bad = doc.plugins.findIndex((p) => !isObj(p) || typeof p.type !== 'string' || p.type === '');
    if (bad >= 0) return { file, bytes, conflist, doc, name: doc.name, error: `plugins[${bad}] has no "type"` };
  } else if (typeof doc.type !== 'string' || doc.type === '') {
    return { file, bytes, conflist, doc, name: doc.name, error: 'no "type"' };
  }
  return { file, bytes, conflist, doc, name: doc.name };
}

function versionsOf(doc: Obj): string[] {
  const list = Array.isArray(doc.cniVersions) ? doc.cniVersions.filter((v) => typeof v === 'string') : [];
  return typeof doc.cniVersion === 'string' ? [...list, doc.cniVersion] : list;
}

/** Finds the network and computes the file weft would write; throws ChainError, touching nothing. */
export function planChain(o: ChainOptions): ChainPlan {
  if (o.chainingMode !== undefined && !(CHAINING_MODES as readonly string[]).includes(o.chainingMode))
    throw new ChainError(`--chaining-mode must be one of ${CHAINING_MODES.join(', ')}, got "${o.chainingMode}"`, 'usage');
  if (!o.chainAfter) throw new ChainError('--chain-after needs a network name or "*"', 'usage');
  const files = networkConfigsIn(o.confDir);
  if (files.length === 0) throw new ChainError(`no network config in ${o.confDir}: nothing to chain weft after`, 'conflict');
  const notes: string[] = [];
  let target: Parsed | undefined;
  const malformed: Parsed[] = [];
  const seen: string[] = [];
  if (o.chainAfter === '*') {
    target = parseFile(o.confDir, files[0]!);
    if (target.error)
      throw new ChainError(
        `${target.file} (the network the runtime uses: the first file by name) is malformed: ${target.error}; not changed`,
        'conflict',
      );
  } else {
    for (const f of files) {
      const p = parseFile(o.confDir, f);
      if (p.name === o.chainAfter && !p.error) {
        if (target) notes.push(`${p.file} also names network ${o.chainAfter}; the runtime uses ${target.file}, left as it is`);
        else target = p;
        continue;
      }
      if (p.error) malformed.push(p);
      seen.push(`${p.name ?? '?'} (${basename(p.file)})`);
    }
    if (!target) {
      const named = malformed.find((p) => p.name === o.chainAfter);
      if (named) throw new ChainError(`${named.file} (network ${o.chainAfter}) is malformed: ${named.error}; not changed`, 'conflict');
      const bad = malformed.map((p) => `${p.file} is malformed: ${p.error}`);
      throw new ChainError(
        [`network ${o.chainAfter} not found in ${o.confDir} (there: ${seen.join(', ') || 'none'})`, ...bad].join('; '),
        'conflict',
      );
    }
  }
  const doc = target.doc!;
  const network = target.name!;
  const versions = versionsOf(doc);
  if (!versions.some((v) => (CNI_SPEC_VERSIONS as readonly string[]).includes(v)))
    throw new ChainError(
      `${target.file}: weft-cni does not speak cniVersion ${JSON.stringify(versions)} (it speaks ${CNI_SPEC_VERSIONS.join(', ')})`,
      'conflict',
    );

  const plugins: Obj[] = target.conflist
    ? (doc.plugins as Obj[]).map((p) => ({ ...p }))
    : [Object.fromEntries(Object.entries(doc).filter(([k]) => k !== 'cniVersion' && k !== 'name'))];
  const main = plugins[0]!;
  if (main.type === WEFT_PLUGIN_TYPE && main.chainingMode === undefined)
    throw new ChainError(`network ${network} in ${target.file} is weft's own (weft-cni is its first plugin): nothing to chain after`, 'conflict');
  if (META_PLUGINS.has(main.type as string))
    throw new ChainError(`network ${network} in ${target.file} starts with ${String(main.type)}, not with a plugin that makes the pod's interface`, 'conflict');

  const replace = new Set(o.replace ?? []);
  for (const r of replace) {
    if (r === WEFT_PLUGIN_TYPE || r === main.type) throw new ChainError(`--replace ${r}: weft can only replace a plugin chained after ${String(main.type)}`, 'usage');
    if (!plugins.some((p) => p.type === r)) notes.push(`nothing to replace: no ${r} in ${basename(target.file)}`);
  }
  const competing = plugins.filter((p) => COMPETING_CHAINERS.has(p.type as string) && !replace.has(p.type as string));
  if (competing.length)
    throw new ChainError(
      `${target.file} already chains ${String(competing[0]!.type)} after ${String(main.type)}: two BPF datapaths on the same pods would fight over their tc hooks. ` +
        `Pass --replace ${String(competing[0]!.type)} to put weft in its place (the backup keeps the original); not changed`,
      'conflict',
    );

  const mode: ChainingMode = o.chainingMode ?? (main.type === 'terway' ? 'terway' : 'generic-veth');
  const existingWeft = plugins.slice(1).find((p) => p.type === WEFT_PLUGIN_TYPE);
  const weftEntry: Obj = { ...(existingWeft ?? {}), type: WEFT_PLUGIN_TYPE, chainingMode: mode, ...(o.weftKeys ?? {}) };
  const rest = plugins.slice(1).filter((p) => p.type !== WEFT_PLUGIN_TYPE && !replace.has(p.type as string));
  const wantPlugins = [main, weftEntry, ...rest];

  const backup = `${target.file}${BACKUP_SUFFIX}`;
  const hasWeft = !!existingWeft;
  const backupExists = pathState(backup).kind === 'file';
  if (target.conflist && JSON.stringify(wantPlugins) === JSON.stringify(doc.plugins)) {
    return {
      action: 'unchanged',
      file: target.file,
      network,
      chainingMode: mode,
      ...(backupExists ? { backup } : {}),
      content: target.bytes.toString('utf8'),
      notes: [...notes, `weft-cni is already chained after ${String(main.type)} in ${target.file}; nothing to do`],
    };
  }

  let out: Obj;
  let file = target.file;
  if (target.conflist) {
    out = { ...doc, plugins: wantPlugins };
  } else {
    out = { cniVersion: doc.cniVersion, name: network, plugins: wantPlugins };
    file = join(dirname(target.file), `${basename(target.file).replace(/\.(conf|json)$/, '')}.conflist`);
    if (pathState(file).kind !== 'absent')
      throw new ChainError(`${target.file} would become ${file}, which exists already; not changed`, 'conflict');
    notes.push(`${basename(target.file)} becomes ${basename(file)}; the original is kept as ${basename(backup)}`);
  }
  // The backup holds the latest weft-free version: made (or renewed) whenever weft is inserted
  // afresh; kept when weft's entry is only updated.
  const writeBackup = !hasWeft;
  if (writeBackup && backupExists) notes.push(`${backup} replaced: ${basename(target.file)} no longer had weft in it`);
  if (hasWeft && !backupExists) notes.push(`${target.file} had weft-cni in it already and there is no backup: uninstall will remove weft-cni from it instead of restoring it`);
  return {
    action: 'rewrite',
    file: target.file,
    target: file,
    content: JSON.stringify(out, null, 2) + '\n',
    network,
    chainingMode: mode,
    original: target.bytes,
    ...(writeBackup || backupExists ? { backup } : {}),
    writeBackup,
    notes,
  };
}

/** Writes the plan: backup first, then the conflist, atomically; a converted .conf is moved to its backup. */
export function applyChain(p: ChainPlan & { action: 'rewrite' }): ChainManifestEntry {
  const mode = statSync(p.file).mode & 0o777;
  if (p.target === p.file) {
    if (p.writeBackup) writeFileAtomic(p.backup!, p.original, mode);
    writeFileAtomic(p.target, p.content, mode);
  } else {
    // .conf -> .conflist: the new file first (the runtime still picks the .conf, which sorts
    // first), then the .conf moves to its backup in one rename: never zero networks, never two.
    writeFileAtomic(p.target, p.content, mode);
    try {
      renameSync(p.file, p.backup!);
    } catch (err) {
      rmSync(p.target, { force: true });
      throw err;
    }
  }
  return {
    kind: 'chain',
    path: p.target,
    sha256: sha256(p.content),
    original: p.file,
    ...(p.backup ? { backup: p.backup } : {}),
    network: p.network,
    chainingMode: p.chainingMode,
  };
}

/** The manifest entry for a network that is already chained (adopted by an install that changed nothing). */
export function entryForUnchanged(p: ChainPlan & { action: 'unchanged' }): ChainManifestEntry {
  return {
    kind: 'chain',
    path: p.file,
    sha256: sha256(p.content),
    original: p.file,
    ...(p.backup ? { backup: p.backup } : {}),
    network: p.network,
    chainingMode: p.chainingMode,
  };
}

/** `doc` without weft-cni entries; undefined when it has none (or is no conflist). */
function withoutWeft(text: string): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObj(doc) || !Array.isArray(doc.plugins)) return undefined;
  const plugins = doc.plugins.filter((p) => !(isObj(p) && p.type === WEFT_PLUGIN_TYPE));
  if (plugins.length === doc.plugins.length) return undefined;
  return JSON.stringify({ ...doc, plugins }, null, 2) + '\n';
}

/**
 * Undoes a chain step: the original back from the backup when the conflist is still what weft
 * wrote; otherwise weft-cni taken out of whatever is there now (someone else changed the file).
 */
export function unchain(e: ChainManifestEntry): { changed: string[]; unchanged: string[]; notes: string[] } {
  const changed: string[] = [];
  const unchanged: string[] = [];
  const notes: string[] = [];
  const current = readTextIfExists(e.path);
  const backupThere = !!e.backup && pathState(e.backup).kind === 'file';
  const mode = current !== undefined ? statSync(e.path).mode & 0o777 : 0o644;
  if (current !== undefined && sha256(current) === e.sha256 && backupThere) {
    renameSync(e.backup!, e.original); // byte for byte, in one rename
    if (e.original !== e.path) rmSync(e.path, { force: true });
    changed.push(e.original);
    notes.push(`${e.original} restored from ${basename(e.backup!)}`);
    return { changed, unchanged, notes };
  }
  if (current === undefined) {
    if (backupThere && pathState(e.original).kind === 'absent') {
      renameSync(e.backup!, e.original);
      changed.push(e.original);
      notes.push(`${e.path} was gone; ${e.original} restored from ${basename(e.backup!)}`);
    } else {
      notes.push(`${e.path} is gone; nothing to restore`);
    }
    return { changed, unchanged, notes };
  }
  const stripped = withoutWeft(current);
  if (stripped !== undefined) {
    writeFileAtomic(e.path, stripped, mode);
    changed.push(e.path);
  } else {
    unchanged.push(e.path);
  }
  if (sha256(current) !== e.sha256) {
    notes.push(
      `${e.path} changed since install: ${stripped !== undefined ? 'weft-cni removed from it' : 'it has no weft-cni in it'}, the rest left as it is` +
        (backupThere ? `; the original stays in ${e.backup}` : ''),
    );
  } else {
    notes.push(`no backup of ${e.original}: weft-cni removed from ${e.path} instead`);
  }
  return { changed, unchanged, notes };
}

export interface ReadyOptions {
  binDir: string;
  requireAgent?: boolean;
  agentSocket?: string;
  /** How long to wait for the agent (seconds; 0: ask once). */
  waitSeconds?: number;
}

/** weft is ready to be put in a chain: its plugin is in the bin dir and (if asked) the agent answers. */
export async function waitReady(o: ReadyOptions): Promise<string[]> {
  const notes: string[] = [];
  const plugin = join(o.binDir, WEFT_PLUGIN_TYPE);
  const st = (() => {
    try {
      return statSync(plugin);
    } catch {
      return undefined;
    }
  })();
  if (!st || !st.isFile() || (st.mode & 0o111) === 0)
    throw new ChainError(`${plugin} is not an executable file: not chaining weft into a network it cannot serve`, 'not-ready');
  if (!o.requireAgent) return notes;
  const socketPath = o.agentSocket ?? DEFAULT_AGENT_SOCKET;
  const deadline = Date.now() + (o.waitSeconds ?? 0) * 1000;
  let last = '';
  for (;;) {
    try {
      const h = await new AgentClient({ socketPath, timeoutMs: 2000 }).health();
      if (h.ok) {
        notes.push(`weft-agent ${h.version} answers on ${socketPath}`);
        return notes;
      }
      last = 'it says it is not ok';
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new ChainError(`weft-agent is not ready on ${socketPath} (${last}): the network config was not changed`, 'not-ready');
}
