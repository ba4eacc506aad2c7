/** Bundles the stand-alone `weft-eni` entry into `dir` (tests run it as a real, killable program). */
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';

export async function bundleWeftEni(dir: string): Promise<string> {
  const out = join(dir, 'weft-eni');
  await build({
    entryPoints: [join(__dirname, '..', 'cli.ts')],
    outfile: out,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    banner: { js: '#!/usr/bin/env node' },
    logLevel: 'error',
  });
  chmodSync(out, 0o755);
  return out;
}
