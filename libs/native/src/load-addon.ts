import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * Native addons travel inside the single executable as SEA assets (`<name>.node`). On first use the
 * asset is written once to a content-addressed file under /var/lib/weft/native and dlopen'ed from
 * there; later processes find it already written. Outside a SEA (tests, `node dist/weft.cjs`) the
 * addon is found next to the bundle, via WEFT_NATIVE_DIR, or in the workspace build folder.
 */
const loaded = new Map<string, unknown>();

const NATIVE_CACHE_DIRS = ['/var/lib/weft/native', join(tmpdir(), 'weft-native')];

// Where non-SEA runs look for `<name>.node`, in order.
function candidateFiles(name: string): string[] {
  const here = typeof __dirname === 'string' ? __dirname : process.cwd();
  const dirs = [process.env.WEFT_NATIVE_DIR, here, join(here, 'native'), join(here, '..', 'build', 'Release')];
  const files = dirs.filter((d): d is string => !!d).map((d) => join(d, `${name}.node`));
  if (name === 'netlink') {
    // The netlink package ships a prebuilt N-API binary; outside a SEA use it where npm put it.
    try {
      files.push(join(dirname(require.resolve('netlink/package.json')), 'prebuilds', 'linux-x64', 'node.napi.node'));
    } catch {
      /* not installed: only the bundled copy can serve */
    }
  }
  return files;
}

function seaAsset(name: string): ArrayBuffer | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sea = require('node:sea') as { isSea(): boolean; getAsset(key: string): ArrayBuffer };
    return sea.isSea() ? sea.getAsset(`${name}.node`) : undefined;
  } catch {
    return undefined;
  }
}

function materialize(name: string, bytes: Buffer): string {
  const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  let lastError: unknown;
  for (const dir of NATIVE_CACHE_DIRS) {
    const file = join(dir, `${name}-${digest}.node`);
    if (existsSync(file)) return file;
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, bytes, { mode: 0o500 });
      renameSync(tmp, file); // atomic: concurrent CNI invocations never see a half-written addon
      return file;
    } catch (err) {
      lastError = err;
    }
  }
  throw new Error(`cannot write native addon ${name}: ${String(lastError)}`);
}

export function loadAddon<T>(name: string): T {
  const cached = loaded.get(name);
  if (cached) return cached as T;
  const asset = seaAsset(name);
  let file: string | undefined;
  if (asset) file = materialize(name, Buffer.from(asset));
  else file = candidateFiles(name).find((f) => existsSync(f));
  if (!file) {
    throw new Error(`native addon ${name} not found (build it with "npm run build"); looked in ${candidateFiles(name).map(dirname).join(', ')}`);
  }
  const mod = { exports: {} as T };
  process.dlopen(mod, file);
  loaded.set(name, mod.exports);
  return mod.exports;
}
