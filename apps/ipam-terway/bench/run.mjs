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
  });
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  execFileSync(process.execPath, [out], { stdio: 'inherit', env });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
