// Builds the shipped artefacts into dist/bin/:
//   weft.cjs       all programs in one CJS file (multi-call on the invoked name), runs under `node`
//   native/        the addons the bundle loads when run under node (weft_native.node, netlink.node)
//   chunks/        programs built apart from weft.cjs (CHUNKED_PROGRAMS), see src/chunk-loader.ts
//   weft           the single executable (SEA): weft.cjs + chunks + both addons inside a copy of node
//   weft-cni       the shim (shim/weft-cni-shim.c, C): forwards each request to weft-agent's CNI
//                  server, or runs it with `weft` when no agent answers; also a SEA asset
//   weft-host-local, weft-eni, weft-agent   links to weft (to weft.cjs with --no-sea)
//
// Usage: node apps/cni-plugin/bundle.mjs [--out DIR] [--no-sea] [--sea-variant plain|codecache|snapshot]
//                                        [--sea-name NAME]   (NAME != weft: an extra binary, links untouched)
//                                        [--single-file]   (all programs inside weft.cjs, lazily evaluated)
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import process from 'node:process';
import { parseArgs } from 'node:util';
import { buildSea, SEA_VARIANTS } from './sea/build-sea.mjs';

/** Start-up variant of the shipped binary: the fastest measured by scripts/bench-startup.sh. */
export const DEFAULT_SEA_VARIANT = 'codecache';
export const PROGRAM_NAMES = ['weft-cni', 'weft-host-local', 'weft-eni', 'weft-agent'];
/** Programs that are links to weft; weft-cni is the shim. */
const LINKED_PROGRAMS = PROGRAM_NAMES.filter((n) => n !== 'weft-cni');
/** Where the shim travels inside the single executable (`weft install` writes it out). */
export const SHIM_ASSET = 'shim/weft-cni';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const loaderFile = join(root, 'libs/native/src/load-addon.ts');
// The BPF objects travel with the programs: copied to bpf/ beside weft.cjs, and SEA assets.
const bpfObjects = ['from-container.o', 'to-container.o'].map((f) => join(root, 'bpf/build', f));
const nativeAddons = {
  weft_native: join(root, 'libs/native/build/Release/weft_native.node'),
  netlink: join(root, 'node_modules/netlink/prebuilds/linux-x64/node.napi.node'),
};

const { values: opts } = parseArgs({
  options: {
    out: { type: 'string', default: join(root, 'dist', 'bin') },
    'no-sea': { type: 'boolean', default: false },
    'sea-variant': { type: 'string', default: DEFAULT_SEA_VARIANT },
    'sea-name': { type: 'string', default: 'weft' },
    'single-file': { type: 'boolean', default: false },
  },
});
if (!SEA_VARIANTS[opts['sea-variant']])
  throw new Error(`--sea-variant: one of ${Object.keys(SEA_VARIANTS).join(', ')}`);
const out = resolve(opts.out);
mkdirSync(join(out, 'native'), { recursive: true });

// The netlink package loads its binding with node-gyp-build relative to its own directory, which
// does not exist in a bundle or a SEA: route it through our loader (SEA asset or copied file).
const netlinkAddonPlugin = {
  name: 'netlink-addon-via-load-addon',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]netlink[\\/]dist[\\/]raw\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const binding = /require\(['"]node-gyp-build['"]\)\(__dirname \+ ['"]\/\.\.['"]\)/;
      if (!binding.test(source))
        throw new Error(
          `${args.path}: netlink no longer loads its binding via node-gyp-build; update bundle.mjs`,
        );
      const replaced = source.replace(binding, `require(${JSON.stringify(loaderFile)}).loadAddon('netlink')`);
      return { contents: replaced, loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

// PROGRAMS lines of main.ts: `'name': async () => (await import('./path')).entry,`
const mainFile = join(root, 'apps/cni-plugin/src/main.ts');
const programImports = new Map(
  [
    ...readFileSync(mainFile, 'utf8').matchAll(
      /['"]?([\w-]+)['"]?\s*:\s*async\s*\(\)\s*=>\s*\(\s*await\s+import\(\s*['"]([^'"]+)['"]\s*\)\s*\)/g,
    ),
  ].map((m) => [m[2], m[1]]),
);
const chunks = new Map(); // program name -> resolved entry file

// Each program is its own chunk: V8 compiles all of the main script at every start, even programs
// that never run, so one program bundling a big SDK would slow every other one down (measured:
// weft-cni 42 ms with the ENI SDK in weft.cjs, 21 ms chunked). In weft.cjs a program's import
// becomes a call to the chunk loader. --single-file keeps them all in weft.cjs instead.
const chunkPlugin = {
  name: 'separate-program-chunks',
  setup(b) {
    b.onResolve({ filter: /.*/ }, async (args) => {
      if (args.kind !== 'dynamic-import' || args.importer !== mainFile || opts['single-file'])
        return undefined;
      // Named after the program when the PROGRAMS line has the usual shape, else after the path.
      const name = programImports.get(args.path) ?? args.path.replace(/[^\w-]+/g, '_');
      const entry = await b.resolve(args.path, { kind: 'entry-point', resolveDir: args.resolveDir });
      if (entry.errors.length) return { errors: entry.errors };
      chunks.set(name, entry.path);
      return { path: name, namespace: 'weft-chunk' };
    });
    b.onLoad({ filter: /.*/, namespace: 'weft-chunk' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(join(root, 'apps/cni-plugin/src/chunk-loader.ts'))}).loadChunk(${JSON.stringify(args.path)});`,
      loader: 'js',
      resolveDir: root,
    }));
  },
};

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  define: { __WEFT_BUILD__: JSON.stringify(buildInfo()) },
  logLevel: 'warning',
};
// Built into a staging dir and moved into place at the end, so programs run from `out` meanwhile
// (other tests, a running agent) never read half-written files.
const staging = join(out, `.staging-${process.pid}`);
rmSync(staging, { recursive: true, force: true });
process.on('exit', () => rmSync(staging, { recursive: true, force: true })); // also when a step fails
const stagedBundle = join(staging, 'weft.cjs');
const stagedChunk = (name) => join(staging, 'chunks', `${name}.cjs`);
await build({
  ...common,
  entryPoints: [mainFile],
  outfile: stagedBundle,
  banner: { js: '#!/usr/bin/env node' },
  plugins: [netlinkAddonPlugin, chunkPlugin],
});
chmodSync(stagedBundle, 0o755);
mkdirSync(join(staging, 'chunks'), { recursive: true });
for (const [name, entry] of chunks) {
  await build({ ...common, entryPoints: [entry], outfile: stagedChunk(name), plugins: [netlinkAddonPlugin] });
}
for (const file of [stagedBundle, ...[...chunks.keys()].map(stagedChunk)]) {
  if (readFileSync(file, 'utf8').includes('node-gyp-build'))
    throw new Error(`${file} still requires node-gyp-build`);
}

// Copy the addons next to the bundle, under the lock build-native.sh is run with, so a concurrent
// rebuild (which deletes build/Release first) is never half-read.
for (const [name, file] of Object.entries(nativeAddons)) {
  const dest = join(out, 'native', `${name}.node`);
  copyUnderNativeLock(file, `${dest}.tmp`);
  renameSync(`${dest}.tmp`, dest);
}

// The shim: plain C, only libc. Static where the toolchain can (no loader work at every exec).
const stagedShim = join(staging, 'weft-cni');
const shimSource = join(root, 'apps/cni-plugin/shim/weft-cni-shim.c');
const cc = (extra) =>
  execFileSync('cc', ['-O2', '-s', '-Wall', '-Wextra', '-Werror', ...extra, '-o', stagedShim, shimSource], {
    stdio: 'pipe',
  });
try {
  cc(['-static']);
} catch {
  cc([]);
}

mkdirSync(join(out, 'bpf'), { recursive: true });
for (const file of bpfObjects) {
  if (!existsSync(file)) throw new Error(`${file} is missing: build the BPF objects with "make -C bpf"`);
  const dest = join(out, 'bpf', file.split('/').pop());
  copyFileSync(file, `${dest}.tmp`);
  renameSync(`${dest}.tmp`, dest);
}

const seaName = opts['sea-name'];
if (!opts['no-sea']) {
  const addons = Object.fromEntries(
    Object.keys(nativeAddons).map((n) => [n, join(out, 'native', `${n}.node`)]),
  );
  const started = Date.now();
  const chunkFiles = Object.fromEntries([...chunks.keys()].map((n) => [n, stagedChunk(n)]));
  const sea = buildSea({
    bundleFile: stagedBundle,
    outFile: join(out, seaName),
    addons,
    chunks: chunkFiles,
    files: {
      ...Object.fromEntries(bpfObjects.map((f) => [`bpf/${f.split('/').pop()}`, f])),
      [SHIM_ASSET]: stagedShim,
    },
    variant: opts['sea-variant'],
  });
  const kb = (n) => `${(n / 1024).toFixed(0)} KiB`;
  process.stdout.write(
    `${sea.outFile}: ${(sea.bytes / 1048576).toFixed(1)} MiB (bundle ${kb(statSync(stagedBundle).size)}, ` +
      `${chunks.size ? `chunks ${[...chunks.keys()].join(', ')}, ` : ''}blob ${kb(sea.blobBytes)}, ${opts['sea-variant']}) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );
} else if (seaName === 'weft') {
  rmSync(join(out, 'weft'), { force: true }); // a stale SEA must not shadow the fresh bundle
}

// Chunks first: a new weft.cjs must never meet the old chunks.
const oldChunks = join(out, `.chunks-old-${process.pid}`);
if (existsSync(join(out, 'chunks'))) renameSync(join(out, 'chunks'), oldChunks);
if (chunks.size > 0) renameSync(join(staging, 'chunks'), join(out, 'chunks'));
renameSync(stagedBundle, join(out, 'weft.cjs'));
if (seaName === 'weft') renameSync(stagedShim, join(out, 'weft-cni')); // replaces the link of older builds
rmSync(oldChunks, { recursive: true, force: true });
rmSync(staging, { recursive: true, force: true });

if (seaName === 'weft') {
  const target = opts['no-sea'] ? 'weft.cjs' : 'weft';
  for (const name of opts['no-sea'] ? [...LINKED_PROGRAMS, 'weft'] : LINKED_PROGRAMS)
    replaceWithLink(join(out, name), target);
}

function replaceWithLink(path, target) {
  const tmp = `${path}.link-tmp`;
  rmSync(tmp, { force: true });
  symlinkSync(target, tmp);
  renameSync(tmp, path);
}

function copyUnderNativeLock(from, to) {
  const missing = () =>
    new Error(
      `native addon missing at ${from}: run "flock /tmp/weft-native.lock bash scripts/build-native.sh"`,
    );
  try {
    execFileSync('flock', ['-w', '120', '/tmp/weft-native.lock', 'cp', from, to], { stdio: 'pipe' });
  } catch (err) {
    if (!existsSync(from)) throw missing();
    process.stderr.write(
      `bundle: copying ${from} without /tmp/weft-native.lock (${String(err.stderr ?? err.message).trim()})\n`,
    );
    copyFileSync(from, to);
  }
}

function buildInfo() {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
  } catch {
    /* not a git checkout */
  }
  return { version: pkg.version, commit, builtAt: new Date().toISOString().slice(0, 10) };
}
