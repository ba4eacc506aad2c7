// Bundles bench/eni-bench.ts (TypeScript, workspace imports) and runs it.
import { build } from 'esbuild';
import process from 'node:process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'we-bench-'));
try {
  const out = join(dir, 'eni-bench.cjs');
  await build({
    entryPoints: [join(here, 'eni-bench.ts')],
    outfile: out,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    logLevel: 'error',
    // The netlink package finds its binding relative to itself, which a bundle moves away from.
    alias: { 'node-gyp-build': join(here, '../../../libs/netlink/bench/node-gyp-build-shim.cjs') },
  });
  // Both addons as the build put them beside weft.cjs (npm run build): the bundle lives in a temp dir.
  const env = { ...process.env, WEFT_NATIVE_DIR: join(here, '../../../dist/bin/native') };
  delete env.NODE_EXTRA_CA_CERTS;
  execFileSync(process.execPath, [out], { stdio: 'inherit', env });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
