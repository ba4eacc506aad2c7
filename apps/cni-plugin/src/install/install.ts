import {
  accessSync,
  constants,
  existsSync,
  linkSync,
  mkdirSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  unlinkSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import {
  copyFileAtomic,
  pathState,
  readTextIfExists,
  sha256,
  sha256File,
  symlinkAtomic,
  tempBeside,
  writeFileAtomic,
} from './atomic-fs';
import {
  applyChain,
  ChainError,
  entryForUnchanged,
  planChain,
  unchain,
  waitReady,
  type ChainManifestEntry,
  type ChainOptions,
  type ReadyOptions,
} from './chain';
import { DEFAULT_CONFLIST_NAME, DEFAULT_POD_SUBNET, isPodSubnet, planConflist } from './conflist';

/**
 * `weft install` / `weft uninstall`.
 *
 * Install first plans everything and refuses (changing nothing) if a name it needs belongs to
 * someone else. It then records what it is about to create in a manifest beside the binaries
 * (`<bin-dir>/.weft-install.json`, state "installing"), makes each file atomically (temp + rename),
 * and marks the manifest "complete". A failure rolls back what this run did; a killed run leaves a
 * manifest naming every path it may have created, so re-running install completes it and uninstall
 * cleans it. Uninstall removes only manifest entries that are still byte-for-byte what install
 * wrote (an edited conflist stays), then the directories install created if they are empty.
 */

export const BINARY_NAME = 'weft';
export const LINK_NAMES = ['weft-cni', 'weft-host-local', 'weft-eni', 'weft-agent'] as const;
/** The name the shim takes when there is one (InstallOptions.shim). */
export const SHIM_NAME = 'weft-cni';
export const MANIFEST_NAME = '.weft-install.json';
export const DEFAULT_BIN_DIR = '/opt/cni/bin';
export const DEFAULT_CONF_DIR = '/etc/cni/net.d';

export interface InstallOptions {
  /** The executable to install (normally the running single executable). */
  source: string;
  /**
   * The weft-cni shim (shim/weft-cni-shim.c), installed as `weft-cni` in place of a link: it hands
   * each request to weft-agent's CNI server. Without one, weft-cni is a link like the others.
   */
  shim?: string;
  binDir?: string;
  confDir?: string;
  conflistName?: string;
  /** false: leave network configs alone (--no-conflist). */
  writeConflist?: boolean;
  subnet?: string;
  /** Replace files of our names that another installer put there. */
  force?: boolean;
  version?: string;
}

export type ManifestEntry =
  | { kind: 'file'; path: string; sha256: string }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'dir'; path: string }
  /** `--chain-after`: a conflist weft rewrote, with where the original is (see chain.ts). */
  | ChainManifestEntry;

export interface InstallManifest {
  schema: 1;
  version: string;
  state: 'installing' | 'complete';
  binDir: string;
  confDir: string;
  /** In install order; uninstall walks it backwards. */
  entries: ManifestEntry[];
}

export interface ChangeReport {
  changed: string[];
  unchanged: string[];
  notes: string[];
}

export class InstallError extends Error {
  constructor(
    message: string,
    /**
     * usage: bad options; conflict: a path belongs to someone else (or the conf dir is not as
     * chaining needs it); io: the file system said no; not-ready: weft (or its agent) is not ready.
     */
    readonly code: 'usage' | 'conflict' | 'io' | 'not-ready',
  ) {
    super(message);
    this.name = 'InstallError';
  }
}

type Step =
  | { op: 'mkdir'; entry: ManifestEntry & { kind: 'dir' } }
  | { op: 'copy'; entry: ManifestEntry & { kind: 'file' }; from: string; mode: number; replaces: boolean }
  | { op: 'write'; entry: ManifestEntry & { kind: 'file' }; content: string; replaces: boolean }
  | { op: 'link'; entry: ManifestEntry & { kind: 'symlink' }; replaces: boolean };

interface Plan {
  steps: Step[];
  /** Entries already in place and ours (recorded again, nothing to do). */
  kept: ManifestEntry[];
  notes: string[];
}

export function manifestPath(binDir: string): string {
  return join(binDir, MANIFEST_NAME);
}

export function readManifest(binDir: string): InstallManifest | undefined {
  const text = readTextIfExists(manifestPath(binDir));
  if (text === undefined) return undefined;
  try {
    const m = JSON.parse(text) as InstallManifest;
    if (m.schema !== 1 || !Array.isArray(m.entries)) throw new Error('unknown schema');
    return m;
  } catch (err) {
    throw new InstallError(
      `${manifestPath(binDir)} is not a weft install manifest (${(err as Error).message}); remove it by hand`,
      'conflict',
    );
  }
}

function resolved(opts: InstallOptions) {
  const conflistName = opts.conflistName ?? DEFAULT_CONFLIST_NAME;
  if (
    conflistName !== basename(conflistName) ||
    !conflistName.endsWith('.conflist') ||
    conflistName.startsWith('.')
  ) {
    throw new InstallError(
      `--conflist must be a file name ending in .conflist, got "${conflistName}"`,
      'usage',
    );
  }
  const subnet = opts.subnet ?? DEFAULT_POD_SUBNET;
  if (!isPodSubnet(subnet))
    throw new InstallError(`--subnet must be an IPv4 CIDR between /8 and /30, got "${subnet}"`, 'usage');
  return {
    source: resolve(opts.source),
    shim: opts.shim === undefined ? undefined : resolve(opts.shim),
    binDir: resolve(opts.binDir ?? DEFAULT_BIN_DIR),
    confDir: resolve(opts.confDir ?? DEFAULT_CONF_DIR),
    conflistName,
    subnet,
    writeConflist: opts.writeConflist ?? true,
    force: opts.force ?? false,
    version: opts.version ?? 'unknown',
  };
}

function plan(o: ReturnType<typeof resolved>, previous: InstallManifest | undefined): Plan {
  const steps: Step[] = [];
  const kept: ManifestEntry[] = [];
  const notes: string[] = [];
  const conflicts: string[] = [];
  const ownedBefore = new Set((previous?.entries ?? []).map((e) => e.path));

  for (const dir of [o.binDir, o.confDir]) {
    for (const missing of missingDirs(dir)) {
      if (!steps.some((s) => s.entry.path === missing))
        steps.push({ op: 'mkdir', entry: { kind: 'dir', path: missing } });
    }
    if (existsSync(dir) && !statSync(dir).isDirectory()) conflicts.push(`${dir} is not a directory`);
  }

  // The binaries. Same bytes already there: ours (re-running install is a no-op).
  const files: [string, string][] = [[BINARY_NAME, o.source]];
  if (o.shim) files.push([SHIM_NAME, o.shim]);
  for (const [name, from] of files) {
    const path = join(o.binDir, name);
    const digest = sha256File(from);
    const at = pathState(path);
    const entry = { kind: 'file', path, sha256: digest } as const;
    if (at.kind === 'file' && at.size === statSync(from).size && sha256File(path) === digest) kept.push(entry);
    else if (at.kind === 'absent') steps.push({ op: 'copy', entry, from, mode: 0o755, replaces: false });
    else if (at.kind === 'other') conflicts.push(`${path} is neither a file nor a link`);
    else if (ownedBefore.has(path) || o.force) steps.push({ op: 'copy', entry, from, mode: 0o755, replaces: true });
    else conflicts.push(`${path} exists and was not installed by weft`);
  }

  for (const name of LINK_NAMES) {
    if (o.shim && name === SHIM_NAME) continue;
    const path = join(o.binDir, name);
    const at = pathState(path);
    const entry = { kind: 'symlink', path, target: BINARY_NAME } as const;
    if (at.kind === 'symlink' && at.target === BINARY_NAME) kept.push(entry);
    else if (at.kind === 'absent') steps.push({ op: 'link', entry, replaces: false });
    else if (at.kind === 'other') conflicts.push(`${path} is neither a file nor a link`);
    else if (ownedBefore.has(path) || o.force) steps.push({ op: 'link', entry, replaces: true });
    else conflicts.push(`${path} exists and was not installed by weft`);
  }

  // Last, so a runtime never sees a network whose plugins are not there yet.
  if (o.writeConflist && !conflicts.some((c) => c.startsWith(o.confDir))) {
    const conflist = join(o.confDir, o.conflistName);
    const p = planConflist(o.confDir, o.conflistName, o.subnet);
    if (p.action === 'write')
      steps.push({
        op: 'write',
        entry: { kind: 'file', path: conflist, sha256: sha256(p.content) },
        content: p.content,
        replaces: false,
      });
    else notes.push(p.reason);
  }

  if (conflicts.length) {
    throw new InstallError(
      `install would overwrite files it does not own (use --force to replace them):\n  ${conflicts.join('\n  ')}`,
      'conflict',
    );
  }
  return { steps, kept, notes };
}

/** `dir` and those of its ancestors that do not exist yet, outermost first. */
function missingDirs(dir: string): string[] {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d) && d !== dirname(d); d = dirname(d)) missing.unshift(d);
  return missing;
}

/** Paths recorded by an earlier install that this run does not touch but that are still there. */
function carriedOver(previous: InstallManifest | undefined, planned: Set<string>): ManifestEntry[] {
  return (previous?.entries ?? []).filter((e) => !planned.has(e.path) && pathState(e.path).kind !== 'absent');
}

function writeManifest(binDir: string, m: InstallManifest): void {
  writeFileAtomic(manifestPath(binDir), JSON.stringify(m, null, 2) + '\n', 0o644);
}

export function install(opts: InstallOptions): ChangeReport {
  const o = resolved(opts);
  try {
    accessSync(o.source, constants.R_OK | constants.X_OK);
  } catch {
    throw new InstallError(`cannot read and execute ${o.source}`, 'usage');
  }
  const previous = existsSync(o.binDir) ? readManifest(o.binDir) : undefined;
  const { steps, kept, notes } = plan(o, previous);
  const planned = new Set([...steps.map((s) => s.entry.path), ...kept.map((e) => e.path)]);
  const inOrder = (list: ManifestEntry[]) =>
    // dirs first, then binary, links, conflist: the order the steps were planned in
    list.sort((a, b) => order(a) - order(b));
  const entries = inOrder([...carriedOver(previous, planned), ...kept, ...steps.map((s) => s.entry)]);
  const manifest: InstallManifest = {
    schema: 1,
    version: o.version,
    state: 'installing',
    binDir: o.binDir,
    confDir: o.confDir,
    entries,
  };

  if (
    steps.length === 0 &&
    previous?.state === 'complete' &&
    previous.version === o.version &&
    sameEntries(previous.entries, entries)
  ) {
    return { changed: [], unchanged: [...planned], notes };
  }

  const undo: Array<() => void> = [];
  const backups: string[] = [];
  try {
    const mkdirFirst = steps.filter((s) => s.op === 'mkdir');
    for (const s of mkdirFirst) {
      mkdirSync(s.entry.path, { mode: 0o755 });
      undo.push(() => rmdirSync(s.entry.path));
    }
    writeManifest(o.binDir, manifest);
    undo.push(() => (previous ? writeManifest(o.binDir, previous) : unlinkSync(manifestPath(o.binDir))));

    for (const s of steps) {
      if (s.op === 'mkdir') continue;
      const path = s.entry.path;
      if (s.replaces) {
        // Keep the old file under a temp name until the whole install has succeeded.
        const backup = tempBeside(path);
        linkSync(path, backup);
        backups.push(backup);
        undo.push(() => renameSync(backup, path));
      } else {
        undo.push(() => rmSync(path, { force: true }));
      }
      if (s.op === 'copy') copyFileAtomic(s.from, path, s.mode);
      else if (s.op === 'write') writeFileAtomic(path, s.content, 0o644);
      else symlinkAtomic(s.entry.target, path);
    }
    writeManifest(o.binDir, { ...manifest, state: 'complete' });
  } catch (err) {
    for (const u of undo.reverse()) {
      try {
        u();
      } catch {
        /* best effort: keep undoing the rest */
      }
    }
    throw new InstallError(`install failed and was rolled back: ${(err as Error).message}`, 'io');
  }
  for (const b of backups) rmSync(b, { force: true });
  return {
    changed: steps.map((s) => s.entry.path),
    unchanged: kept.map((e) => e.path),
    notes,
  };
}

function order(e: ManifestEntry): number {
  if (e.kind === 'dir') return 0;
  if (e.kind === 'symlink') return 2;
  return basename(e.path) === BINARY_NAME ? 1 : 3;
}

function sameEntries(a: ManifestEntry[], b: ManifestEntry[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Removes what install recorded and nothing else; `binDir` locates the manifest. */
export function uninstall(opts: { binDir?: string } = {}): ChangeReport {
  const binDir = resolve(opts.binDir ?? DEFAULT_BIN_DIR);
  const manifest = readManifest(binDir);
  if (!manifest)
    return {
      changed: [],
      unchanged: [],
      notes: [`nothing installed by weft in ${binDir} (no ${MANIFEST_NAME})`],
    };
  const removed: string[] = [];
  const left: string[] = [];
  const notes: string[] = [];
  // Backwards: the conflist goes first, so no runtime picks weft while its binaries disappear.
  for (const e of [...manifest.entries].reverse()) {
    if (e.kind === 'dir') continue;
    if (e.kind === 'chain') {
      const r = unchain(e);
      removed.push(...r.changed);
      left.push(...r.unchanged);
      notes.push(...r.notes);
      continue;
    }
    const at = pathState(e.path);
    if (at.kind === 'absent') continue;
    const stillOurs =
      e.kind === 'symlink'
        ? at.kind === 'symlink' && at.target === e.target
        : at.kind === 'file' && sha256File(e.path) === e.sha256;
    if (stillOurs) {
      unlinkSync(e.path);
      removed.push(e.path);
    } else {
      left.push(e.path);
      notes.push(`${e.path} changed since install; left in place`);
    }
  }
  unlinkSync(manifestPath(binDir));
  for (const e of [...manifest.entries].reverse()) {
    if (e.kind !== 'dir') continue;
    try {
      rmdirSync(e.path);
      removed.push(e.path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') notes.push(`${e.path} holds other files; left in place`);
      else if (code !== 'ENOENT') throw err;
    }
  }
  return { changed: removed, unchanged: left, notes };
}

export interface ChainInstallOptions extends InstallOptions, Omit<ChainOptions, 'confDir'>, Omit<ReadyOptions, 'binDir'> {}

/**
 * `weft install --chain-after NETWORK`: plans the conflist change first (refusing before anything
 * is touched), installs the binaries as `install` does (no example conflist), waits until weft is
 * ready (its plugin in the bin dir; with requireAgent, the agent answering /v1/healthz), and only
 * then rewrites the conflist and records the change in the manifest for `weft uninstall`.
 */
export async function installChained(opts: ChainInstallOptions): Promise<ChainReport> {
  const confDir = resolve(opts.confDir ?? DEFAULT_CONF_DIR);
  const binDir = resolve(opts.binDir ?? DEFAULT_BIN_DIR);
  const chainOpts: ChainOptions = {
    confDir,
    chainAfter: opts.chainAfter,
    chainingMode: opts.chainingMode,
    replace: opts.replace,
    weftKeys: opts.weftKeys,
  };
  const first = asInstallError(() => planChain(chainOpts));
  const report = install({ ...opts, confDir, binDir, writeConflist: false });
  const ready = await waitReady({ binDir, requireAgent: opts.requireAgent, agentSocket: opts.agentSocket, waitSeconds: opts.waitSeconds }).catch(
    (err: unknown) => {
      throw err instanceof ChainError ? new InstallError(err.message, err.code === 'not-ready' ? 'not-ready' : 'conflict') : err;
    },
  );
  report.notes.push(...ready);
  // Planned again right before writing: the file may have changed while the agent was awaited.
  const p = first.action === 'unchanged' && !opts.requireAgent ? first : asInstallError(() => planChain(chainOpts));
  report.notes.push(...p.notes);
  const manifest = readManifest(binDir)!;
  const others = manifest.entries.filter((e) => !(e.kind === 'chain' && (e.path === p.file || (p.action === 'rewrite' && e.path === p.target))));
  const recorded = manifest.entries.find((e): e is ChainManifestEntry => e.kind === 'chain' && e.path === p.file);
  let entry: ChainManifestEntry;
  if (p.action === 'unchanged') {
    if (recorded) return { ...report, chain: { action: 'unchanged', file: p.file, network: p.network } };
    entry = entryForUnchanged(p); // chained before this manifest existed: adopted, so uninstall knows it
  } else {
    try {
      entry = applyChain(p);
    } catch (err) {
      throw new InstallError(`could not rewrite ${p.file}: ${(err as Error).message} (nothing changed in ${confDir})`, 'io');
    }
    report.changed.push(p.target);
  }
  // A chain entry that was recorded for the same network keeps its backup (the original).
  const merged: ChainManifestEntry = recorded?.backup && !entry.backup ? { ...entry, backup: recorded.backup, original: recorded.original } : entry;
  writeFileAtomic(
    manifestPath(binDir),
    JSON.stringify({ ...manifest, entries: [...others, merged] }, null, 2) + '\n',
    0o644,
  );
  return { ...report, chain: { action: p.action === 'unchanged' ? 'adopted' : 'rewritten', file: merged.path, network: p.network } };
}

export interface ChainReport extends ChainReportBase {
  chain: { action: 'rewritten' | 'unchanged' | 'adopted'; file: string; network: string };
}
type ChainReportBase = ChangeReport;

function asInstallError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ChainError) throw new InstallError(err.message, err.code === 'not-ready' ? 'not-ready' : err.code);
    throw err;
  }
}
