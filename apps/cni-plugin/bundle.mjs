// Bundles the multi-call entry into dist/bin/weft.cjs and makes the per-name links.
// (The SEA step that turns it into one executable builds on this.)
import { build } from 'esbuild';
import { chmodSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = join(root, 'dist', 'bin');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(root, 'apps/cni-plugin/src/main.ts')],
  outfile: join(out, 'weft.cjs'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  banner: { js: '#!/usr/bin/env node' },
  logLevel: 'warning',
});
chmodSync(join(out, 'weft.cjs'), 0o755);
for (const name of ['weft-cni', 'weft-host-local', 'weft-eni', 'weft-agent', 'weft']) {
  rmSync(join(out, name), { force: true });
  symlinkSync('weft.cjs', join(out, name));
}
