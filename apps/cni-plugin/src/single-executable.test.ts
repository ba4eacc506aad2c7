/**
 * The shipped artefact: dist/bin-style build by bundle.mjs into a temp dir, then the single
 * executable copied alone into an empty directory and run there by its names.
 */
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  chmodSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildInto, cannotBuildSea, copyAlone, run, runAsync } from './sea-fixture';

const scratch = mkdtempSync(join(tmpdir(), 'wi-sea-'));
const out = join(scratch, 'dist');
const alone = join(scratch, 'alone');
const cache = join(scratch, 'native-cache');
let weft = '';
const whyNot = cannotBuildSea();

beforeAll(async () => {
  if (whyNot) return;
  await buildInto(out);
  weft = copyAlone(join(out, 'weft'), alone);
  for (const name of ['weft-cni', 'weft-host-local', 'not-a-weft-program'])
    symlinkSync('weft', join(alone, name));
}, 180_000); // the real build, on a machine that may be busy
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function needsSea(ctx: { skip: () => void }): void {
  if (whyNot) {
    console.log(`SKIPPED: ${whyNot}`);
    ctx.skip();
  }
}

describe('single executable, alone in an empty directory', () => {
  it('is a single executable and carries both native addons', (ctx) => {
    needsSea(ctx);
    expect(readdirSync(alone).sort()).toEqual(['not-a-weft-program', 'weft', 'weft-cni', 'weft-host-local']);
    expect(run(weft, ['version']).stdout).toMatch(
      /^weft \d+\.\d+\.\d+ \(commit \S+, built \S+, node v20\.\d+\.\d+, single executable\)\n$/,
    );

    const r = run(weft, ['__selftest-native'], { WEFT_NATIVE_CACHE_DIR: cache });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const result = JSON.parse(r.stdout) as {
      weft_native: { functions: number };
      netlink: { links: number };
      mapped: string[];
    };
    expect(result.weft_native.functions).toBeGreaterThan(0);
    expect(result.netlink.links).toBeGreaterThan(0);
    // Loaded from the cache the asset was written to, not from the repository.
    expect(result.mapped.sort()).toEqual([
      expect.stringMatching(/native-cache\/netlink-[0-9a-f]{16}\.node$/),
      expect.stringMatching(/native-cache\/weft_native-[0-9a-f]{16}\.node$/),
    ]);
  });

  it('dispatches on the name it is run as', (ctx) => {
    needsSea(ctx);
    const version = run(join(alone, 'weft-host-local'), [], { CNI_COMMAND: 'VERSION' });
    expect(JSON.parse(version.stdout)).toMatchObject({
      supportedVersions: expect.arrayContaining(['1.0.0']),
    });

    const unknown = run(join(alone, 'not-a-weft-program'));
    expect(unknown.status).toBe(2);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toMatch(/invoked as "not-a-weft-program", which is not one of: .*weft-cni/);
  });

  it('keeps CNI semantics for plugin names: no CLI help on stdout', (ctx) => {
    needsSea(ctx);
    const r = run(join(alone, 'weft-cni'), ['--help']);
    expect(r.stdout).not.toMatch(/usage: weft/);
    expect(r.status).not.toBe(0); // no CNI_COMMAND: a spec error
    expect(() => JSON.parse(r.stdout)).not.toThrow();
  });

  it('has a weft CLI with help, version, and a clear error when the agent is not running', (ctx) => {
    needsSea(ctx);
    const help = run(weft, ['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/usage: weft <command>/);
    expect(help.stdout).toMatch(/install/);
    expect(help.stdout).not.toMatch(/__selftest/);

    const bare = run(weft);
    expect(bare.status).toBe(2);
    expect(bare.stderr).toMatch(/usage: weft/);

    const socket = join(scratch, 'no-agent.sock');
    for (const verb of [['status'], ['endpoint', 'list'], ['bpf', 'policy', 'get', 'x'], ['observe']]) {
      const r = run(weft, [...verb, '--socket', socket]);
      expect(r.status, verb.join(' ')).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`weft ${verb.slice(0, verb[0] === 'bpf' ? 3 : verb.length).join(' ')}: weft-agent is not running (no socket at ${socket})\n`);
    }
    expect(run(weft, ['policy']).stderr).toMatch(/expected one of: get, trace/);
    expect(run(weft, ['frobnicate']).stderr).toMatch(/unknown command "frobnicate"/);
  });

  it('survives 100 processes loading the addons at once into an empty cache', async (ctx) => {
    needsSea(ctx);
    const fresh = join(scratch, 'parallel-cache');
    const runs = await Promise.all(
      Array.from({ length: 100 }, () =>
        runAsync(weft, ['__selftest-native'], { WEFT_NATIVE_CACHE_DIR: fresh }),
      ),
    );
    const failed = runs.filter((r) => r.status !== 0);
    expect(failed.map((r) => r.stderr)).toEqual([]);
    // Exactly one complete copy of each addon, no temporary leftovers.
    expect(readdirSync(fresh).sort()).toEqual([
      expect.stringMatching(/^netlink-/),
      expect.stringMatching(/^weft_native-/),
    ]);
  }, 120_000);

  it('repairs a truncated cached addon', (ctx) => {
    needsSea(ctx);
    const dir = join(scratch, 'repair-cache');
    expect(run(weft, ['__selftest-native'], { WEFT_NATIVE_CACHE_DIR: dir }).status).toBe(0);
    const cached = join(
      dir,
      readdirSync(dir).find((f) => f.startsWith('weft_native-'))!,
    );
    const size = readFileSync(cached).length;
    chmodSync(cached, 0o700);
    truncateSync(cached, 4096);
    const again = run(weft, ['__selftest-native'], { WEFT_NATIVE_CACHE_DIR: dir });
    expect(again.stderr).toBe('');
    expect(readFileSync(cached).length).toBe(size);
  });

  it('installs itself into temp dirs, idempotently, and uninstalls cleanly', (ctx) => {
    needsSea(ctx);
    const target = join(scratch, 'target');
    const dirs = ['--bin-dir', join(target, 'opt/cni/bin'), '--conf-dir', join(target, 'etc/cni/net.d')];
    const first = run(weft, ['install', ...dirs]);
    expect(first.stderr).toBe('');
    expect(first.stdout).toMatch(/installed .*opt\/cni\/bin\/weft\n/);
    expect(readdirSync(join(target, 'opt/cni/bin')).sort()).toEqual([
      '.weft-install.json',
      'weft',
      'weft-agent',
      'weft-cni',
      'weft-eni',
      'weft-host-local',
    ]);
    expect(readdirSync(join(target, 'etc/cni/net.d'))).toEqual(['10-weft.conflist']);

    const installed = run(join(target, 'opt/cni/bin/weft-host-local'), [], { CNI_COMMAND: 'VERSION' });
    expect(JSON.parse(installed.stdout)).toHaveProperty('cniVersion');

    const second = run(weft, ['install', ...dirs]);
    expect(second.stdout).not.toMatch(/^installed/m);
    expect(second.stdout).toMatch(/unchanged .*weft-cni/);

    const removed = run(join(target, 'opt/cni/bin/weft'), [
      'uninstall',
      '--bin-dir',
      join(target, 'opt/cni/bin'),
    ]);
    expect(removed.stderr).toBe('');
    // Every directory install created is gone again, the temp dir `target` included.
    expect(existsSync(target)).toBe(false);
    expect(readdirSync(scratch)).not.toContain('target');
  });

  it('rejects unknown install options, and --chain-after of a network that does not exist, changing nothing', (ctx) => {
    needsSea(ctx);
    expect(run(weft, ['install', '--bogus']).status).toBe(2);
    const confDir = join(scratch, 'never-conf');
    const chain = run(weft, ['install', '--chain-after', 'flannel', '--bin-dir', join(scratch, 'never'), '--conf-dir', confDir]);
    expect(chain.status).not.toBe(0);
    expect(chain.stderr).toMatch(/flannel|no network/i);
    expect(existsSync(join(scratch, 'never'))).toBe(false);
    expect(existsSync(confDir) && readdirSync(confDir).length > 0).toBe(false);
  });
});

describe('the node bundle', () => {
  it('is a small dispatcher with one chunk per program, netlink routed through our loader', (ctx) => {
    needsSea(ctx);
    const main = readFileSync(join(out, 'weft.cjs'), 'utf8');
    expect(main.length).toBeLessThan(64 * 1024);
    expect(readdirSync(join(out, 'chunks'))).toEqual(expect.arrayContaining(['weft-cni.cjs', 'weft.cjs']));
    for (const chunk of readdirSync(join(out, 'chunks'))) {
      expect(readFileSync(join(out, 'chunks', chunk), 'utf8')).not.toMatch(/node-gyp-build/);
    }
    expect(readFileSync(join(out, 'chunks', 'weft.cjs'), 'utf8')).toMatch(/\.loadAddon\("netlink"\)/);
  });

  it('uses the build-time code cache of a chunk in the SEA', (ctx) => {
    needsSea(ctx);
    const r = run(weft, ['version'], { WEFT_TRACE_STARTUP: '1' });
    expect(r.stderr).toMatch(/^weft: chunk weft: code cache used, loaded in [\d.]+ ms$/m);
  });

  it('runs under node from its own directory, with the addons copied beside it', (ctx) => {
    needsSea(ctx);
    const r = run(process.execPath, [join(out, 'weft.cjs'), '__selftest-native']);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout).mapped.every((f: string) => f.startsWith(join(out, 'native')))).toBe(true);
  });

  it('--single-file: all programs in weft.cjs, evaluated only when run, SEA and node both work', async (ctx) => {
    needsSea(ctx);
    const single = join(scratch, 'single');
    await buildInto(single, '--single-file');
    expect(existsSync(join(single, 'chunks'))).toBe(false);
    const bundle = readFileSync(join(single, 'weft.cjs'), 'utf8');
    expect(bundle).not.toMatch(/node-gyp-build/);
    // esbuild wraps dynamically imported ESM in lazy initialisers: defined, not run, at start-up.
    for (const program of ['cni_main', 'weft_cli']) {
      expect(bundle).toMatch(new RegExp(`var init_${program} = __esm\\(`));
      const calls = bundle.match(new RegExp(`init_${program}\\(\\)`, 'g')) ?? [];
      const deferred =
        bundle.match(
          new RegExp(`Promise\\.resolve\\(\\)\\.then\\(\\(\\) => \\(init_${program}\\(\\)`, 'g'),
        ) ?? [];
      expect(calls.length).toBe(deferred.length);
    }
    const sea = copyAlone(join(single, 'weft'), join(scratch, 'single-alone'));
    expect(run(sea, ['__selftest-native'], { WEFT_NATIVE_CACHE_DIR: cache }).status).toBe(0);
    expect(run(process.execPath, [join(single, 'weft.cjs'), 'version']).stdout).toMatch(/node bundle/);
  }, 120_000);
});
