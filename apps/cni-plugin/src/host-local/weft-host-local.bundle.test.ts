/**
 * The shipped `weft-host-local` executable against the reference `/usr/lib/cni/host-local` on one
 * data dir, and under real process concurrency. IPAM needs no namespace and no root: every run
 * uses its own temp dataDir.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireCommands } from '@weft/testkit';
import { inPool } from '../testing/cni-run';

const ROOT = resolve(__dirname, '../../../..');
const WEFT = join(ROOT, 'dist/bin/weft-host-local');
const REFERENCE = '/usr/lib/cni/host-local';
const NETWORK = 'whnet';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  plugin: string,
  command: string,
  stdin: string,
  containerId = '',
  ifname = 'eth0',
): Promise<Run> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    CNI_COMMAND: command,
    CNI_PATH: '/usr/lib/cni',
  };
  if (containerId)
    Object.assign(env, { CNI_CONTAINERID: containerId, CNI_IFNAME: ifname, CNI_NETNS: '/proc/self/ns/net' });
  return new Promise((resolvePromise, reject) => {
    const child = spawn(plugin, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

const scratch: string[] = [];
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'wh-bundle-'));
  scratch.push(dir);
  return dir;
}

function netConf(
  dir: string,
  ranges: unknown,
  cniVersion = '1.0.0',
  extra: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    cniVersion,
    name: NETWORK,
    type: 'host-local',
    ipam: { type: 'host-local', dataDir: dir, ranges },
    ...extra,
  });
}

const ipFiles = (dir: string) =>
  readdirSync(join(dir, NETWORK)).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip.'));

function addressOf(r: Run): string {
  expect(r.code, `ADD failed: ${r.stdout} ${r.stderr}`).toBe(0);
  const ips = (JSON.parse(r.stdout) as { ips: Array<{ address: string }> }).ips;
  expect(ips).toHaveLength(1);
  return ips[0]!.address;
}

beforeAll(() => {
  execFileSync('flock', ['/tmp/weft-bundle.lock', 'node', 'apps/cni-plugin/bundle.mjs'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
}, 180_000);

afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe('weft-host-local beside the reference host-local', () => {
  it('shares one data dir: alternating ADDs get distinct addresses in order, alternating DELs leak nothing', async (ctx) => {
    requireCommands(ctx, REFERENCE, WEFT);
    const dir = dataDir();
    const conf = netConf(dir, [[{ subnet: '10.91.0.0/24' }]]);
    const plugins = [WEFT, REFERENCE];

    const addresses: string[] = [];
    for (let i = 0; i < 20; i++)
      addresses.push(addressOf(await run(plugins[i % 2]!, 'ADD', conf, `wh-c${i}`)));
    // One round-robin cursor shared by both: .2, .3, ... whichever plugin ran.
    expect(addresses).toEqual(Array.from({ length: 20 }, (_, i) => `10.91.0.${i + 2}/24`));
    for (let i = 0; i < 20; i++) {
      const file = join(dir, NETWORK, `10.91.0.${i + 2}`);
      expect(readFileSync(file, 'utf8')).toBe(`wh-c${i}\r\neth0`);
      expect(statSync(file).mode & 0o777).toBe(0o644);
    }
    expect(readFileSync(join(dir, NETWORK, 'last_reserved_ip.0'), 'utf8')).toBe('10.91.0.21');

    for (let i = 0; i < 20; i++) {
      const r = await run(plugins[(i + 1) % 2]!, 'DEL', conf, `wh-c${i}`);
      expect(r.code, r.stdout).toBe(0);
    }
    expect(ipFiles(dir)).toEqual([]);
    expect(existsSync(join(dir, NETWORK, 'lock'))).toBe(true);
    // Both keep using the cursor after the DELs.
    expect(addressOf(await run(REFERENCE, 'ADD', conf, 'wh-after1'))).toBe('10.91.0.22/24');
    expect(addressOf(await run(WEFT, 'ADD', conf, 'wh-after2'))).toBe('10.91.0.23/24');
    expect(readFileSync(join(dir, NETWORK, 'last_reserved_ip.0'), 'utf8')).toBe('10.91.0.23');
  });

  it('serializes with the reference through the same flock: 60 mixed concurrent ADDs, distinct addresses', async (ctx) => {
    requireCommands(ctx, REFERENCE, WEFT);
    const dir = dataDir();
    const conf = netConf(dir, [[{ subnet: '10.99.0.0/24' }]]);
    const ids = Array.from({ length: 60 }, (_, i) => `wh-m${i}`);
    const adds = await inPool(
      60,
      ids.map((id, i) => () => run(i % 2 ? REFERENCE : WEFT, 'ADD', conf, id)),
    );
    const addresses = adds.map(addressOf);
    expect(new Set(addresses).size).toBe(60);
    expect(ipFiles(dir)).toHaveLength(60);
    const dels = await inPool(
      60,
      ids.map((id, i) => () => run(i % 2 ? WEFT : REFERENCE, 'DEL', conf, id)),
    );
    expect(dels.filter((r) => r.code !== 0)).toEqual([]);
    expect(ipFiles(dir)).toEqual([]);
  }, 120_000);

  it('answers ADD like the reference for a dual-stack config with routes', async (ctx) => {
    requireCommands(ctx, REFERENCE, WEFT);
    const dir = dataDir();
    const ranges = [
      [{ subnet: '10.92.0.0/24', gateway: '10.92.0.254' }],
      [{ subnet: 'fd00:92::/64', rangeStart: 'fd00:92::10', rangeEnd: 'fd00:92::20' }],
    ];
    const routes = [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd00:92::1' }];
    const conf = (d: string) =>
      JSON.stringify({
        cniVersion: '1.0.0',
        name: NETWORK,
        type: 'host-local',
        ipam: { type: 'host-local', dataDir: d, ranges, routes },
      });
    const ours = JSON.parse((await run(WEFT, 'ADD', conf(dir), 'wh-same')).stdout) as Record<string, unknown>;
    const theirs = JSON.parse((await run(REFERENCE, 'ADD', conf(dataDir()), 'wh-same')).stdout) as Record<
      string,
      unknown
    >;
    delete theirs.dns; // the reference prints an empty "dns": {} when no resolvConf is set
    expect(ours).toEqual(theirs);
  });

  it('gives 100 concurrent ADDs 100 distinct addresses, then 100 concurrent DELs leave nothing', async (ctx) => {
    requireCommands(ctx, WEFT);
    const dir = dataDir();
    const conf = netConf(dir, [[{ subnet: '10.93.0.0/24' }]]);
    const ids = Array.from({ length: 100 }, (_, i) => `wh-p${i}`);
    const adds = await inPool(
      100,
      ids.map((id) => () => run(WEFT, 'ADD', conf, id)),
    );
    const addresses = adds.map(addressOf);
    expect(new Set(addresses).size).toBe(100);
    expect(ipFiles(dir)).toHaveLength(100);
    for (const [i, address] of addresses.entries()) {
      expect(readFileSync(join(dir, NETWORK, address.split('/')[0]!), 'utf8')).toBe(`${ids[i]}\r\neth0`);
    }
    const dels = await inPool(
      100,
      ids.map((id) => () => run(WEFT, 'DEL', conf, id)),
    );
    expect(dels.filter((r) => r.code !== 0)).toEqual([]);
    expect(ipFiles(dir)).toEqual([]);
  }, 120_000);

  it("GC frees what no valid attachment holds, including the reference plugin's reservations", async (ctx) => {
    requireCommands(ctx, REFERENCE, WEFT);
    const dir = dataDir();
    const ranges = [[{ subnet: '10.94.0.0/24' }]];
    const conf = netConf(dir, ranges); // 1.0.0: the newest the Debian reference (plugins 1.1.1) speaks
    for (const [plugin, id] of [
      [WEFT, 'wh-keep'],
      [REFERENCE, 'wh-ref-keep'],
      [WEFT, 'wh-stale'],
      [REFERENCE, 'wh-ref-stale'],
    ] as const) {
      addressOf(await run(plugin, 'ADD', conf, id));
    }
    const gcConf = netConf(dir, ranges, '1.1.0', {
      'cni.dev/valid-attachments': [
        { containerID: 'wh-keep', ifname: 'eth0' },
        { containerID: 'wh-ref-keep', ifname: 'eth0' },
      ],
    });
    const r = await run(WEFT, 'GC', gcConf);
    expect(r.code, r.stdout).toBe(0);
    expect(ipFiles(dir).sort()).toEqual(['10.94.0.2', '10.94.0.3']);
    // The reference still finds its own reservation afterwards.
    expect(
      (
        await run(
          REFERENCE,
          'CHECK',
          JSON.stringify({ ...JSON.parse(conf), prevResult: { cniVersion: '1.0.0', ips: [] } }),
          'wh-ref-keep',
        )
      ).code,
    ).toBe(0);
  });

  it('STATUS succeeds while addresses are left and fails with code 50 when the range is full', async (ctx) => {
    requireCommands(ctx, WEFT);
    const dir = dataDir();
    const conf = netConf(dir, [[{ subnet: '10.95.0.0/29' }]], '1.1.0');
    expect((await run(WEFT, 'STATUS', conf)).code).toBe(0);
    for (let i = 0; i < 5; i++) addressOf(await run(WEFT, 'ADD', conf, `wh-s${i}`));
    const full = await run(WEFT, 'STATUS', conf);
    expect(full.code).toBe(1);
    expect(JSON.parse(full.stdout)).toEqual({
      cniVersion: '1.1.0',
      code: 50,
      msg: 'no IP addresses available in range set: 10.95.0.1-10.95.0.6',
    });
    const add = await run(WEFT, 'ADD', conf, 'wh-one-too-many');
    expect(add.code).toBe(1);
    expect(JSON.parse(add.stdout)).toMatchObject({
      code: 100,
      msg: 'failed to allocate for range 0: no IP addresses available in range set: 10.95.0.1-10.95.0.6',
    });
  });

  it('refuses a bad config with a spec error and creates nothing', async (ctx) => {
    requireCommands(ctx, WEFT);
    const dir = dataDir();
    const r = await run(
      WEFT,
      'ADD',
      netConf(dir, [[{ subnet: '10.96.0.0/24', rangeStart: '10.97.0.1' }]]),
      'wh-bad',
    );
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({
      cniVersion: '1.0.0',
      code: 7,
      msg: 'invalid range set 0: RangeStart 10.97.0.1 not in network 10.96.0.0/24',
    });
    expect(readdirSync(dir)).toEqual([]);
  });
});
