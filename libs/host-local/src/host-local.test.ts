import { spawn } from 'node:child_process';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  existsSync,
  mkdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CniError } from '@weft/cni';
import { requireCommands } from '@weft/testkit';
import {
  allocate,
  check,
  gc,
  HOST_LOCAL_ERR_NO_ADDRESS,
  HOST_LOCAL_ERR_NOT_RECORDED,
  HOST_LOCAL_ERR_REQUESTED_ADDRESS,
  release,
  status,
  usage,
} from './host-local';

let dataDir: string;
const NETWORK = 'whnet';
let small: ReturnType<typeof conf>; // .2-.6 usable, .1 is the gateway

beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'wh-'));
  small = conf({ ranges: [[{ subnet: '10.77.0.0/29' }]] });
});
afterEach(() => {
  rmSync(dataDir, { recursive: true, force: true });
});

// Never let a test fall back to the real /var/lib/cni/networks.
const conf = (ipam: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  ...(dataDir ? {} : expectDataDir()),
  cniVersion: '1.1.0',
  name: NETWORK,
  type: 'weft-host-local',
  ipam: { type: 'weft-host-local', dataDir, ...ipam },
  ...extra,
});
function expectDataDir(): never {
  throw new Error('test bug: conf() used before beforeEach made the temp dataDir');
}
const netDir = () => join(dataDir, NETWORK);
const ipFiles = () =>
  readdirSync(netDir())
    .filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip.'))
    .sort();
const addressOf = (r: { ips?: Array<{ address: string }> }) => r.ips!.map((i) => i.address);

async function rejection(p: Promise<unknown>): Promise<CniError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CniError);
    return err as CniError;
  }
  throw new Error('expected a CniError');
}

describe('allocate', () => {
  it('hands out the first address after the gateway and writes the reference store format', async () => {
    const result = await allocate(small, { containerId: 'c1', ifname: 'eth0' });
    expect(result).toEqual({ cniVersion: '1.1.0', ips: [{ address: '10.77.0.2/29', gateway: '10.77.0.1' }] });
    expect(readFileSync(join(netDir(), '10.77.0.2'), 'utf8')).toBe('c1\r\neth0');
    expect(readFileSync(join(netDir(), 'last_reserved_ip.0'), 'utf8')).toBe('10.77.0.2');
    expect(existsSync(join(netDir(), 'lock'))).toBe(true);
  });

  it('round-robins: a released address is not reused until the range wraps', async () => {
    const got: string[] = [];
    for (const id of ['a', 'b', 'c'])
      got.push(...addressOf(await allocate(small, { containerId: id, ifname: 'eth0' })));
    await release(small, { containerId: 'a', ifname: 'eth0' });
    for (const id of ['d', 'e', 'f'])
      got.push(...addressOf(await allocate(small, { containerId: id, ifname: 'eth0' })));
    expect(got).toEqual([
      '10.77.0.2/29',
      '10.77.0.3/29',
      '10.77.0.4/29',
      '10.77.0.5/29',
      '10.77.0.6/29',
      '10.77.0.2/29',
    ]);
  });

  it('fails with code 100 when the range is exhausted and leaves the store as it was', async () => {
    for (let i = 0; i < 5; i++) await allocate(small, { containerId: `c${i}`, ifname: 'eth0' });
    const before = ipFiles();
    const err = await rejection(allocate(small, { containerId: 'late', ifname: 'eth0' }));
    expect(err.code).toBe(HOST_LOCAL_ERR_NO_ADDRESS);
    expect(err.msg).toBe(
      'failed to allocate for range 0: no IP addresses available in range set: 10.77.0.1-10.77.0.6',
    );
    expect(ipFiles()).toEqual(before);
  });

  it('gives one address per range set (dual stack) and rolls all back when one set is full', async () => {
    const dual = conf({
      ranges: [[{ subnet: '10.78.0.0/24' }], [{ subnet: 'fd00:78::/126' }]],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
    });
    const r = await allocate(dual, { containerId: 'd1', ifname: 'eth0' });
    expect(r.ips).toEqual([
      { address: '10.78.0.2/24', gateway: '10.78.0.1' },
      { address: 'fd00:78::2/126', gateway: 'fd00:78::1' },
    ]);
    expect(r.routes).toEqual([{ dst: '0.0.0.0/0' }, { dst: '::/0' }]);
    await allocate(dual, { containerId: 'd2', ifname: 'eth0' }); // takes fd00:78::3, the last one
    const err = await rejection(allocate(dual, { containerId: 'd3', ifname: 'eth0' }));
    expect(err.msg).toContain('failed to allocate for range 1');
    expect(existsSync(join(netDir(), '10.78.0.4'))).toBe(false); // the IPv4 address of d3 was given back
  });

  it('answers a repeated ADD with the same addresses instead of leaking new ones', async () => {
    const first = await allocate(small, { containerId: 'same', ifname: 'eth0' });
    const again = await allocate(small, { containerId: 'same', ifname: 'eth0' });
    expect(again).toEqual(first);
    expect(ipFiles()).toEqual(['10.77.0.2']);
    const otherIf = await allocate(small, { containerId: 'same', ifname: 'net1' });
    expect(addressOf(otherIf)).toEqual(['10.77.0.3/29']);
  });

  it('honours IP= in CNI_ARGS, refuses the gateway and a taken address', async () => {
    const r = await allocate(small, {
      containerId: 'pick',
      ifname: 'eth0',
      args: 'IgnoreUnknown=1;IP=10.77.0.5',
    });
    expect(addressOf(r)).toEqual(['10.77.0.5/29']);
    const gw = await rejection(
      allocate(small, { containerId: 'gw', ifname: 'eth0', args: { IP: '10.77.0.1' } }),
    );
    expect(gw.code).toBe(HOST_LOCAL_ERR_REQUESTED_ADDRESS);
    expect(gw.msg).toBe("failed to allocate for range 0: requested ip 10.77.0.1 is subnet's gateway");
    const taken = await rejection(
      allocate(small, { containerId: 'x', ifname: 'eth0', args: { IP: '10.77.0.5' } }),
    );
    expect(taken.msg).toBe(
      'failed to allocate for range 0: requested IP address 10.77.0.5 is not available in range set 10.77.0.1-10.77.0.6',
    );
    const outside = await rejection(
      allocate(small, { containerId: 'y', ifname: 'eth0', args: { IP: '10.99.0.5' } }),
    );
    expect(outside.msg).toBe('failed to allocate all requested IPs: 10.99.0.5');
    expect(ipFiles()).toEqual(['10.77.0.5']);
  });

  it('honours runtimeConfig.ips (the "ips" capability)', async () => {
    const r = await allocate(
      { ...small, runtimeConfig: { ips: ['10.77.0.6/29'] } },
      { containerId: 'rt', ifname: 'eth0' },
    );
    expect(addressOf(r)).toEqual(['10.77.0.6/29']);
  });

  it('adds DNS from resolvConf', async () => {
    const resolv = join(dataDir, 'resolv.conf');
    writeFileSync(
      resolv,
      '# comment\nnameserver 10.0.0.53\nnameserver fd00::53\ndomain example.test\nsearch a.test b.test\noptions ndots:2 edns0\n',
    );
    const r = await allocate(conf({ ranges: [[{ subnet: '10.79.0.0/24' }]], resolvConf: resolv }), {
      containerId: 'dns',
      ifname: 'eth0',
    });
    expect(r.dns).toEqual({
      nameservers: ['10.0.0.53', 'fd00::53'],
      domain: 'example.test',
      search: ['a.test', 'b.test'],
      options: ['ndots:2', 'edns0'],
    });
  });

  it('refuses a bad config without creating anything on disk', async () => {
    for (const bad of [
      conf({ ranges: [[{ subnet: '10.0.0.0/33' }]] }),
      conf({ ranges: [[{ subnet: '10.0.0.0/24', rangeStart: '10.0.1.1' }]] }),
      conf({ ranges: [[{ subnet: '10.0.0.0/16' }], [{ subnet: '10.0.3.0/24' }]] }),
    ]) {
      const err = await rejection(allocate(bad, { containerId: 'bad', ifname: 'eth0' }));
      expect(err.code).toBe(7);
    }
    const hostile = await rejection(allocate(small, { containerId: 'evil\r\neth9', ifname: 'eth0' }));
    expect(hostile.code).toBe(4);
    expect(readdirSync(dataDir)).toEqual([]);
  });
});

describe('release', () => {
  it('frees only the addresses of that container and interface; DEL is idempotent', async () => {
    await allocate(small, { containerId: 'k', ifname: 'eth0' });
    await allocate(small, { containerId: 'k', ifname: 'net1' });
    expect(await release(small, { containerId: 'k', ifname: 'eth0' })).toEqual(['10.77.0.2']);
    expect(ipFiles()).toEqual(['10.77.0.3']);
    expect(await release(small, { containerId: 'k', ifname: 'eth0' })).toEqual([]);
    expect(await release(small, { containerId: 'never', ifname: 'eth0' })).toEqual([]);
  });

  it('succeeds without creating the store when nothing was ever allocated', async () => {
    expect(await release(small, { containerId: 'ghost', ifname: 'eth0' })).toEqual([]);
    expect(existsSync(netDir())).toBe(false);
  });

  it('releases reservations written by old versions (container ID only)', async () => {
    mkdirSync(netDir(), { recursive: true });
    writeFileSync(join(netDir(), '10.77.0.4'), 'oldtimer');
    writeFileSync(join(netDir(), '10.77.0.5'), 'other\r\neth0');
    expect(await release(small, { containerId: 'oldtimer', ifname: 'eth0' })).toEqual(['10.77.0.4']);
    expect(ipFiles()).toEqual(['10.77.0.5']);
  });

  it('reads "id\\nifname" as written by hand or other tools', async () => {
    mkdirSync(netDir(), { recursive: true });
    writeFileSync(join(netDir(), '10.77.0.4'), 'lf\neth0\n');
    expect(await release(small, { containerId: 'lf', ifname: 'eth0' })).toEqual(['10.77.0.4']);
  });
});

describe('check', () => {
  it('passes while the addresses are recorded and fails once they are gone', async () => {
    const r = await allocate(small, { containerId: 'chk', ifname: 'eth0' });
    await expect(
      check(small, { containerId: 'chk', ifname: 'eth0', prevResult: r }),
    ).resolves.toBeUndefined();
    // An address of another IPAM in prevResult is not ours to check.
    await expect(
      check(small, {
        containerId: 'chk',
        ifname: 'eth0',
        prevResult: { ips: [...r.ips!, { address: '192.168.1.1/24' }] },
      }),
    ).resolves.toBeUndefined();
    const wrong = await rejection(
      check(small, {
        containerId: 'chk',
        ifname: 'eth0',
        prevResult: { ips: [{ address: '10.77.0.6/29' }] },
      }),
    );
    expect(wrong.code).toBe(HOST_LOCAL_ERR_NOT_RECORDED);
    await release(small, { containerId: 'chk', ifname: 'eth0' });
    const gone = await rejection(check(small, { containerId: 'chk', ifname: 'eth0' }));
    expect(gone.msg).toBe('host-local: Failed to find address added by container chk');
  });
});

describe('gc', () => {
  it('frees every address not held by a valid attachment and keeps the bookkeeping files', async () => {
    await allocate(small, { containerId: 'keep', ifname: 'eth0' });
    await allocate(small, { containerId: 'keep', ifname: 'eth1' });
    await allocate(small, { containerId: 'gone', ifname: 'eth0' });
    writeFileSync(join(netDir(), '10.77.0.6'), 'legacy');
    const freed = await gc(small, [
      { containerID: 'keep', ifname: 'eth0' },
      { containerID: 'legacy', ifname: 'eth0' },
    ]);
    expect(freed.sort()).toEqual(['10.77.0.3', '10.77.0.4']);
    expect(ipFiles()).toEqual(['10.77.0.2', '10.77.0.6']);
    expect(existsSync(join(netDir(), 'lock'))).toBe(true);
    expect(existsSync(join(netDir(), 'last_reserved_ip.0'))).toBe(true);
    expect(await gc(small, [])).toEqual(expect.arrayContaining(['10.77.0.2', '10.77.0.6']));
    expect(ipFiles()).toEqual([]);
  });
});

describe('status', () => {
  it('is fine while addresses are left and fails with 50 when a range set is full', async () => {
    await expect(status(small)).resolves.toBeUndefined();
    for (let i = 0; i < 5; i++) await allocate(small, { containerId: `s${i}`, ifname: 'eth0' });
    expect(usage(small)).toEqual([{ rangeSet: '10.77.0.1-10.77.0.6', capacity: 5n, used: 5n }]);
    const err = await rejection(status(small));
    expect(err.code).toBe(50);
    expect(err.msg).toBe('no IP addresses available in range set: 10.77.0.1-10.77.0.6');
    await release(small, { containerId: 's0', ifname: 'eth0' });
    await expect(status(small)).resolves.toBeUndefined();
  });
});

describe('concurrency in one process', () => {
  it('serializes parallel allocations on the flock: distinct addresses', async () => {
    const wide = conf({ ranges: [[{ subnet: '10.80.0.0/24' }]] });
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => allocate(wide, { containerId: `p${i}`, ifname: 'eth0' })),
    );
    const addresses = results.flatMap(addressOf);
    expect(new Set(addresses).size).toBe(40);
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => release(wide, { containerId: `p${i}`, ifname: 'eth0' })),
    );
    expect(ipFiles()).toEqual([]);
  });
});

describe('the store lock', () => {
  it('waits for a flock(2) held by another process, and gives up with code 11 after lockTimeoutMs', async (ctx) => {
    requireCommands(ctx, 'flock');
    mkdirSync(netDir(), { recursive: true });
    // util-linux flock(1) takes the same flock(2) lock as the reference plugin.
    const holder = spawn('flock', [join(netDir(), 'lock'), '-c', 'echo held; sleep 0.7'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((resolve) => holder.on('exit', resolve));
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));

    const timedOut = await rejection(
      allocate(small, { containerId: 'impatient', ifname: 'eth0' }, { lockTimeoutMs: 100 }),
    );
    expect(timedOut.code).toBe(11);
    expect(timedOut.retryable).toBe(true);

    const started = Date.now();
    const r = await allocate(small, { containerId: 'patient', ifname: 'eth0' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(addressOf(r)).toEqual(['10.77.0.2/29']);
    await exited;
  });
});
