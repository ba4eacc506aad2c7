import { isBuiltin } from 'node:module';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

/**
 * Loads a program that bundle.mjs built as a separate chunk instead of into weft.cjs. Why: V8 reads
 * and compiles the whole main script at every start even though unused programs are never
 * evaluated, so one program bundling a large SDK slowed every per-pod `weft-cni` exec (measured:
 * an 8.9 MB weft.cjs made weft-cni start in ~45 ms instead of ~21 ms, code cache included).
 *
 * In the single executable a chunk is the asset `chunks/<name>.js` (the CJS source wrapped in the
 * module function) plus `chunks/<name>.cache` (V8 code cache made at build time by the same node
 * binary), compiled on demand. Under node it is the file chunks/<name>.cjs beside weft.cjs.
 * Chunks are complete bundles: they need only Node's built-in modules.
 *
 * WEFT_TRACE_STARTUP=1 reports on stderr whether the code cache was used.
 */
export function loadChunk(name: string): unknown {
  const started = process.hrtime.bigint();
  const sea = seaModule();
  if (!sea) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(join(__dirname, 'chunks', `${name}.cjs`));
  }
  const source = sea.getAsset(`chunks/${name}.js`, 'utf8');
  let cachedData: Buffer | undefined;
  try {
    cachedData = Buffer.from(sea.getAsset(`chunks/${name}.cache`));
  } catch {
    cachedData = undefined; // built without code cache
  }
  const filename = join(dirname(process.execPath), 'chunks', `${name}.cjs`);
  const script = new Script(source, { filename, cachedData });
  const moduleFunction = script.runInThisContext() as (...args: unknown[]) => void;
  const module = { exports: {} as unknown };
  moduleFunction(module.exports, builtinRequire, module, filename, dirname(filename));
  if (process.env.WEFT_TRACE_STARTUP) {
    const cache = !cachedData
      ? 'no code cache'
      : script.cachedDataRejected
        ? 'code cache REJECTED'
        : 'code cache used';
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    process.stderr.write(`weft: chunk ${name}: ${cache}, loaded in ${ms.toFixed(1)} ms\n`);
  }
  return module.exports;
}

/**
 * What a chunk's leftover require() calls get: built-ins, and for anything else the same
 * MODULE_NOT_FOUND a missing optional dependency gives (esbuild leaves `try { require('x') }`
 * probes of optional packages in place). The SEA's own require would print a warning on stderr.
 */
function builtinRequire(id: string): unknown {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  if (isBuiltin(id)) return require(id);
  throw Object.assign(new Error(`Cannot find module '${id}' (not bundled into weft)`), {
    code: 'MODULE_NOT_FOUND',
  });
}
builtinRequire.resolve = (id: string): string => {
  if (isBuiltin(id)) return id;
  throw Object.assign(new Error(`Cannot find module '${id}' (not bundled into weft)`), {
    code: 'MODULE_NOT_FOUND',
  });
};

interface SeaModule {
  isSea(): boolean;
  getAsset(key: string): ArrayBuffer;
  getAsset(key: string, encoding: string): string;
}

function seaModule(): SeaModule | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sea = require('node:sea') as SeaModule;
    return sea.isSea() ? sea : undefined;
  } catch {
    return undefined;
  }
}
