// Bundles pod-setup.ts the way the weft binary is bundled and runs it: node libs/netlink/bench/run.mjs [iterations]
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// Inside the repo, so the loader finds the netlink package's prebuilt binding in node_modules.
const out = join(here, '..', 'dist', 'bench', 'pod-setup.cjs');
await build({
  entryPoints: [join(here, 'pod-setup.ts')],
  outfile: out,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  logLevel: 'warning',
  banner: { js: 'globalThis.__benchT0 = performance.now();' },
  alias: { 'node-gyp-build': join(here, 'node-gyp-build-shim.cjs') },
});
const env = { ...process.env, WEFT_NATIVE_DIR: join(here, '..', '..', 'native', 'build', 'Release') };
delete env.NODE_EXTRA_CA_CERTS; // CNI runtimes do not set it; it costs ~50 ms of start-up
const run = (n) => execFileSync(process.execPath, [out, String(n)], { env, encoding: 'utf8' });
// Warm: many iterations in one process. Cold: fresh processes doing one ADD each, as CNI runs.
process.stdout.write(
  `--- one process, ${process.argv[2] ?? 20} iterations ---\n${run(process.argv[2] ?? 20)}`,
);
for (let i = 0; i < 3; i++) process.stdout.write(`--- fresh process #${i + 1} ---\n${run(1)}`);
