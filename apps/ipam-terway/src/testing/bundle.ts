/**
 * Bundles the stand-alone `weft-eni` entry into `dir` (tests run it as a real, killable program).
 * The daemon drives the node over rtnetlink, so the bundle needs the two native addons: they are
 * copied to `dir/native/` (where @weft/native's loader looks beside a bundle), and the netlink
 * package's own binding lookup (node-gyp-build relative to its directory, which a bundle does not
 * have) is routed through that loader, as apps/cni-plugin/bundle.mjs does for the shipped binary.
 */
import { build, type Plugin } from 'esbuild';
import { chmodSync, copyFileSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../../../..');
const LOADER = join(ROOT, 'libs/native/src/load-addon.ts');
const ADDONS = {
  weft_native: join(ROOT, 'libs/native/build/Release/weft_native.node'),
  netlink: join(ROOT, 'node_modules/netlink/prebuilds/linux-x64/node.napi.node'),
};

const netlinkAddon: Plugin = {
  name: 'netlink-addon-via-load-addon',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]netlink[\\/]dist[\\/]raw\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const binding = /require\(['"]node-gyp-build['"]\)\(__dirname \+ ['"]\/\.\.['"]\)/;
      if (!binding.test(source))
        throw new Error(`${args.path}: netlink no longer loads its binding via node-gyp-build`);
      const contents = source.replace(binding, `require(${JSON.stringify(LOADER)}).loadAddon('netlink')`);
      return { contents, loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

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
    plugins: [netlinkAddon],
  });
  chmodSync(out, 0o755);
  mkdirSync(join(dir, 'native'), { recursive: true });
  for (const [name, file] of Object.entries(ADDONS)) copyFileSync(file, join(dir, 'native', `${name}.node`));
  return out;
}
