// Turns the CJS bundle into one self-contained executable with Node's single-executable
// applications (SEA): sea-config.json -> `node --experimental-sea-config` (the preparation blob)
// -> a copy of this very node binary -> postject injects the blob as NODE_SEA_BLOB.
//
// The blob must be made by the same node binary it is injected into, so both use process.execPath.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import process from 'node:process';

const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
/** Asset listing the addons (name -> asset key, sha256, size); read by libs/native load-addon.ts. */
export const NATIVE_MANIFEST_ASSET = 'native-manifest.json';

/** Start-up variants this Node (>= 20.12) supports for our bundle; see scripts/bench-startup.sh. */
export const SEA_VARIANTS = {
  plain: { useCodeCache: false, useSnapshot: false },
  codecache: { useCodeCache: true, useSnapshot: false },
  snapshot: { useCodeCache: false, useSnapshot: true },
};

/**
 * @param {object} o
 * @param {string} o.bundleFile   the CJS bundle (main script of the SEA)
 * @param {string} o.outFile      the executable to write (replaced atomically)
 * @param {Record<string, string>} o.addons  addon name -> path of its `.node` file
 * @param {Record<string, string>} [o.chunks] program name -> its chunk file (`chunks/<program>.cjs`)
 * @param {Record<string, string>} [o.files] `<group>/<name>` -> path of a plain file (BPF objects:
 *   `bpf/from-container.o`), listed in the manifest like the addons; see seaFileGroup in libs/native
 * @param {keyof typeof SEA_VARIANTS} [o.variant]
 * @returns {{ outFile: string, bytes: number, blobBytes: number }}
 */
export function buildSea({ bundleFile, outFile, addons, chunks = {}, files = {}, variant = 'codecache' }) {
  const options = SEA_VARIANTS[variant];
  if (!options)
    throw new Error(`unknown SEA variant ${variant}; one of ${Object.keys(SEA_VARIANTS).join(', ')}`);
  const work = join(dirname(outFile), `.sea-${basename(outFile)}-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const assets = {};
    for (const [program, file] of Object.entries(chunks)) {
      Object.assign(assets, chunkAssets(work, program, file, options.useCodeCache || options.useSnapshot));
    }
    const manifest = {};
    for (const [name, file] of Object.entries(addons)) {
      // Copy first so the manifest describes exactly the bytes that get embedded, even if
      // someone rebuilds the addon meanwhile.
      const copy = join(work, `${name}.node`);
      copyFileSync(file, copy);
      const bytes = readFileSync(copy);
      assets[`${name}.node`] = copy;
      manifest[name] = {
        asset: `${name}.node`,
        sha256: createHash('sha256').update(bytes).digest('hex'),
        size: bytes.length,
      };
    }
    for (const [name, file] of Object.entries(files)) {
      const copy = join(work, `file-${name.replaceAll('/', '_')}`);
      copyFileSync(file, copy);
      const bytes = readFileSync(copy);
      assets[name] = copy;
      manifest[name] = { asset: name, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
    }
    writeFileSync(join(work, NATIVE_MANIFEST_ASSET), JSON.stringify(manifest));
    assets[NATIVE_MANIFEST_ASSET] = join(work, NATIVE_MANIFEST_ASSET);

    const blob = join(work, 'sea-prep.blob');
    const config = {
      main: bundleFile,
      output: blob,
      disableExperimentalSEAWarning: true,
      ...options,
      assets,
    };
    writeFileSync(join(work, 'sea-config.json'), JSON.stringify(config, null, 2));
    run(process.execPath, ['--experimental-sea-config', join(work, 'sea-config.json')]);

    const exe = join(work, 'exe');
    copyFileSync(process.execPath, exe);
    chmodSync(exe, 0o755);
    const postject = join(
      dirname(createRequire(import.meta.url).resolve('postject/package.json')),
      'dist',
      'cli.js',
    );
    run(process.execPath, [postject, exe, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SENTINEL_FUSE]);
    renameSync(exe, outFile); // atomic: a running `dist/bin/weft-cni` never sees half a binary
    return { outFile, bytes: statSync(outFile).size, blobBytes: statSync(blob).size };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * A chunk travels as `chunks/<program>.js`, its CJS source wrapped in the module function, plus
 * `chunks/<program>.cache`, V8 code cache for that exact text made by this same node binary (the
 * SEA equivalent of useCodeCache for the main script). src/chunk-loader.ts compiles the text with
 * the cache and calls the function; a rejected cache only costs the compile time.
 */
function chunkAssets(work, program, file, withCodeCache) {
  const wrapped = join(work, `chunk-${program}.js`);
  const source = readFileSync(file, 'utf8').replace(/^#!.*\n/, '');
  writeFileSync(wrapped, `(function (exports, require, module, __filename, __dirname) {${source}\n})`);
  const assets = { [`chunks/${program}.js`]: wrapped };
  if (withCodeCache) {
    const cache = join(work, `chunk-${program}.cache`);
    const produce =
      "const vm = require('node:vm'), fs = require('node:fs');" +
      'const [src, out] = process.argv.slice(1);' +
      "fs.writeFileSync(out, new vm.Script(fs.readFileSync(src, 'utf8'), { filename: src }).createCachedData());";
    run(process.execPath, ['-e', produce, wrapped, cache]);
    assets[`chunks/${program}.cache`] = cache;
  }
  return assets;
}

// Runs a build step quietly (postject prints LIEF warnings); shows its output only when it fails.
function run(cmd, args) {
  try {
    execFileSync(cmd, args, { stdio: 'pipe', env: { ...process.env, NODE_OPTIONS: '' } });
  } catch (err) {
    process.stderr.write(String(err.stdout ?? '') + String(err.stderr ?? ''));
    throw new Error(`SEA build step failed: ${basename(cmd)} ${args.join(' ')}`);
  }
}
