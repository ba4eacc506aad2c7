import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * Loads a native addon by name (`weft_native`, `netlink`).
 *
 * Inside the single executable the addons travel as SEA assets, listed in the asset
 * `native-manifest.json` (name -> asset key, sha256, size; written at build time so start-up never
 * hashes). dlopen needs a file, so the asset is written once to a content-addressed file
 * `<name>-<sha256 prefix>.node` in the first usable cache directory and loaded from there; later
 * processes find it already written. Outside a SEA (tests, `node dist/bin/weft.cjs`) the addon is
 * looked up on disk instead.
 *
 * The cache is loaded as code by root, so it is trusted only if nobody else can write it: the
 * directory and file must be ours and not group/world-writable, and the file's bytes must equal the
 * asset (a corrupt, truncated or tampered file is rewritten). Writes go to a unique temporary file,
 * fsync'ed and renamed into place, so 100 CNI processes starting at once each either find a complete
 * file or put one there; none ever dlopens half a file.
 */

export const NATIVE_MANIFEST_ASSET = 'native-manifest.json';

export interface NativeManifestEntry {
  /** SEA asset key holding the `.node` bytes. */
  asset: string;
  sha256: string;
  size: number;
}
export type NativeManifest = Record<string, NativeManifestEntry>;

interface SeaModule {
  isSea(): boolean;
  getAsset(key: string): ArrayBuffer;
}

const loaded = new Map<string, unknown>();

/**
 * Where a SEA writes its addons, in order of preference: an explicit override, the state dir, the
 * run dir (tmpfs: survives a read-only /var/lib), then a per-user temp dir.
 */
export function nativeCacheDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const uid = process.geteuid?.() ?? 0;
  return [
    env.WEFT_NATIVE_CACHE_DIR,
    '/var/lib/weft/native',
    '/run/weft/native',
    join(tmpdir(), `weft-native-${uid}`),
  ].filter((d): d is string => !!d);
}

// Where non-SEA runs look for `<name>.node`, in order.
function candidateFiles(name: string): string[] {
  const here = typeof __dirname === 'string' ? __dirname : process.cwd();
  // Bundle: dist/bin/native (copied by bundle.mjs; from a chunk in dist/bin/chunks, ../native).
  // Sources: libs/native/build/Release.
  const dirs = [
    process.env.WEFT_NATIVE_DIR,
    join(here, 'native'),
    join(here, '..', 'native'),
    join(here, '..', 'build', 'Release'),
  ];
  const files = dirs.filter((d): d is string => !!d).map((d) => join(d, `${name}.node`));
  if (name === 'netlink') {
    // The netlink package ships a prebuilt N-API binary; outside a SEA use it where npm put it.
    try {
      files.push(
        join(
          dirname(require.resolve('netlink/package.json')),
          'prebuilds',
          `${process.platform}-${process.arch}`,
          'node.napi.node',
        ),
      );
    } catch {
      /* not resolvable from here (bundle moved away from node_modules): the copies above must serve */
    }
  }
  return files;
}

function seaModule(): SeaModule | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sea = require('node:sea') as SeaModule;
    return sea.isSea() ? sea : undefined;
  } catch {
    return undefined; // Node without node:sea: never a SEA
  }
}

let manifest: NativeManifest | undefined;
function seaManifest(sea: SeaModule): NativeManifest {
  manifest ??= JSON.parse(
    Buffer.from(sea.getAsset(NATIVE_MANIFEST_ASSET)).toString('utf8'),
  ) as NativeManifest;
  return manifest;
}

/** Throws unless `path` is a directory (not a link) that only this user can write. */
function assertPrivateDir(path: string): void {
  const st = lstatSync(path);
  if (!st.isDirectory()) throw new Error(`${path} is not a directory`);
  if (st.uid !== (process.geteuid?.() ?? st.uid))
    throw new Error(`${path} is owned by uid ${st.uid}, not us`);
  if (st.mode & 0o022)
    throw new Error(`${path} is writable by group or others (mode ${(st.mode & 0o777).toString(8)})`);
  // Whoever can write the parent can swap the directory itself, unless the sticky bit (/tmp) stops them.
  const parent = lstatSync(dirname(path));
  if (parent.mode & 0o022 && !(parent.mode & 0o1000))
    throw new Error(`${dirname(path)} is writable by group or others without the sticky bit`);
}

function ensureDir(dir: string): void {
  if (!existsSync(dir)) {
    mkdirSync(dirname(dir), { recursive: true, mode: 0o755 });
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // a concurrent process made it
    }
  }
  assertPrivateDir(dir);
}

/** True if `file` is a regular file of ours, not writable by others, holding exactly `bytes`. */
function holdsExactly(file: string, bytes: Buffer): boolean {
  let st;
  try {
    st = lstatSync(file);
  } catch {
    return false;
  }
  if (!st.isFile() || st.size !== bytes.length || st.mode & 0o022) return false;
  if (st.uid !== (process.geteuid?.() ?? st.uid)) return false;
  return readFileSync(file).equals(bytes);
}

function writeAtomically(file: string, bytes: Buffer): void {
  const tmp = join(dirname(file), `.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', 0o500);
  try {
    for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, file); // atomic replace: readers see the old complete file or the new one
  } catch (err) {
    unlinkSync(tmp);
    throw err;
  }
}

/** Writes (or reuses) the content-addressed copy of an addon in `dir`; returns its path. */
export function materializeAddon(dir: string, name: string, bytes: Buffer, sha256: string): string {
  ensureDir(dir);
  const file = join(dir, `${name}-${sha256.slice(0, 16)}.node`);
  if (!holdsExactly(file, bytes)) writeAtomically(file, bytes);
  return file;
}

export function dlopen<T>(file: string): T {
  const mod = { exports: {} as T };
  process.dlopen(mod, file);
  return mod.exports;
}

/**
 * Materializes the addon in the first of `dirs` where that works and `load` accepts the file
 * (a failing dlopen is usually a noexec mount: the next directory may do). Returns what `load`
 * returned and the file used.
 */
export function materializeAndLoad<T>(
  dirs: string[],
  name: string,
  bytes: Buffer,
  sha256: string,
  load: (file: string) => T = dlopen,
): { exports: T; file: string } {
  const failures: string[] = [];
  for (const dir of dirs) {
    try {
      const file = materializeAddon(dir, name, bytes, sha256);
      return { exports: load(file), file };
    } catch (err) {
      failures.push(`${dir}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new Error(`cannot load native addon ${name}:\n  ${failures.join('\n  ')}`);
}

function loadFromSea<T>(sea: SeaModule, name: string): T {
  const entry = seaManifest(sea)[name];
  if (!entry) throw new Error(`native addon ${name} is not in this executable`);
  const bytes = Buffer.from(sea.getAsset(entry.asset));
  if (bytes.length !== entry.size)
    throw new Error(`native addon ${name}: asset is ${bytes.length} bytes, manifest says ${entry.size}`);
  return materializeAndLoad<T>(nativeCacheDirs(), name, bytes, entry.sha256).exports;
}

/**
 * A group of plain files carried as SEA assets under `<group>/` (e.g. the BPF objects, `bpf/`),
 * written once into a content-addressed folder `<cache>/<group>-<hash>/` under their own names,
 * with the same trust rules as the addons. Returns the folder, or undefined when not running as
 * a SEA or the executable carries no such group.
 */
export function seaFileGroup(group: string): string | undefined {
  const sea = seaModule();
  if (!sea) return undefined;
  const entries = Object.entries(seaManifest(sea)).filter(([name]) => name.startsWith(`${group}/`));
  if (entries.length === 0) return undefined;
  const digest = entries
    .map(([name, e]) => `${name}:${e.sha256}`)
    .sort()
    .join(',');
  const id = createHash('sha256').update(digest).digest('hex').slice(0, 16);
  const failures: string[] = [];
  for (const cache of nativeCacheDirs()) {
    const dir = join(cache, `${group}-${id}`);
    try {
      ensureDir(cache);
      ensureDir(dir);
      for (const [name, e] of entries) {
        const bytes = Buffer.from(sea.getAsset(e.asset));
        if (bytes.length !== e.size) throw new Error(`${name}: asset is ${bytes.length} bytes, manifest says ${e.size}`);
        const file = join(dir, name.slice(group.length + 1));
        if (!holdsExactly(file, bytes)) writeAtomically(file, bytes);
      }
      return dir;
    } catch (err) {
      failures.push(`${dir}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new Error(`cannot write the ${group} files of this executable:\n  ${failures.join('\n  ')}`);
}

export function loadAddon<T>(name: string): T {
  if (loaded.has(name)) return loaded.get(name) as T;
  const sea = seaModule();
  let exports: T;
  if (sea) {
    exports = loadFromSea<T>(sea, name);
  } else {
    const file = candidateFiles(name).find((f) => existsSync(f));
    if (!file) {
      throw new Error(
        `native addon ${name} not found (build it with "npm run build"); looked in ${candidateFiles(name).map(dirname).join(', ')}`,
      );
    }
    exports = dlopen<T>(file);
  }
  loaded.set(name, exports);
  return exports;
}
