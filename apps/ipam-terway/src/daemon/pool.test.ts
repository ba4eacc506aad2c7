import { afterEach, describe, expect, it } from 'vitest';
import { EniIpamError } from '../errors';
import { expectAgreement } from '../testing/agreement';
import { eventually, INSTANCE_ID, TEST_AK, TestEnv } from '../testing/env';

const req = (i: number, ifname = 'eth0') => ({
  containerId: `c${i}`,
  ifname,
  netns: `/var/run/netns/we-none-${i}`,
  podNamespace: 'default',
  podName: `p${i}`,
});

let env: TestEnv | undefined;
afterEach(async () => {
  await env?.dispose();
  env = undefined;
});

describe('ENI pool against the emulator (SDK, metadata, socket API)', () => {
  it('warms up to min_pool_size with one ENI create and no extra calls', async () => {
    env = await TestEnv.create('we-warm', { daemon: { minPoolSize: 10, maxPoolSize: 20 } });
    await eventually(async () => (await env!.client.status()).idle >= 10, 10_000, 'warm pool');
    const st = await env.client.status();
    expect(st).toMatchObject({ idle: 10, enis: 1, maxEni: 7, perEni: 30, allocatable: 210 });
    // One ENI made with its 10 addresses in the same call: no Assign needed.
    expect(env.cloud.stats.CreateNetworkInterface.calls).toBe(1);
    expect(env.cloud.stats.AssignPrivateIpAddresses.calls).toBe(0);
    const eni = [...env.emu.model.enis.values()].find((e) => e.type === 'Secondary')!;
    expect(eni.tags).toMatchObject({
      'weft.io/instance-id': INSTANCE_ID,
      'weft.io/managed-by': 'weft',
      'weft.io/cluster': 'test',
    });
    expect(eni.securityGroupIds).toEqual(['sg-weft']);
    expect(eni.vSwitchId).toBe('vsw-we-a');
    expectAgreement(env.emu, await env.client.state());
  });

  it('allocates idempotently, releases, and gives the vSwitch gateway and prefix', async () => {
    env = await TestEnv.create('we-idem', { daemon: { minPoolSize: 2 } });
    const a = await env.client.allocate(req(1));
    const again = await env.client.allocate(req(1));
    expect(again).toEqual(a);
    expect(a.ipv4).toMatchObject({ prefixLength: 22, gateway: '10.30.3.253' });
    expect(a.eni.id).toMatch(/^eni-/);
    const b = await env.client.allocate(req(1, 'net1'));
    expect(b.ipv4!.address).not.toBe(a.ipv4!.address);
    expect(await env.client.check({ containerId: 'c1', ifname: 'eth0' })).toEqual(a);
    expect(await env.client.release({ containerId: 'c1', ifname: 'eth0' })).toEqual({ released: true });
    expect(await env.client.release({ containerId: 'c1', ifname: 'eth0' })).toEqual({ released: false });
    await expect(env.client.check({ containerId: 'c1', ifname: 'eth0' })).rejects.toMatchObject({
      cniCode: 3,
    });
    await expect(env.client.allocate({ ...req(2), ifname: 'bad/name' })).rejects.toMatchObject({
      cniCode: 7,
    });
    expectAgreement(env.emu, await env.client.state());
  });

  it('serves 100 concurrent ADDs from a warm pool of 10: distinct addresses, bounded ENIs, limits kept', async () => {
    const limits = {
      AssignPrivateIpAddresses: 120,
      CreateNetworkInterface: 60,
      DescribeNetworkInterfaces: 240,
    };
    env = await TestEnv.create('we-100', {
      daemon: {
        minPoolSize: 10,
        maxPoolSize: 200,
        ecs: { ...TEST_AK, protocol: 'http', rateLimits: limits },
      },
    });
    await eventually(async () => (await env!.client.status()).idle >= 10, 10_000, 'warm pool');
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => env!.client.allocate(req(i))));
    const ips = new Set(results.map((r) => r.ipv4!.address));
    expect(ips.size).toBe(100);
    const st = await env.client.status();
    expect(st.enis).toBeLessThanOrEqual(st.maxEni);
    // 100 addresses + warm pool of 10 over ENIs of 30: at most 4 ENIs are needed.
    expect(st.enis).toBeLessThanOrEqual(4);
    for (const [action, perMin] of Object.entries(limits)) {
      const burst = Math.max(1, Math.floor(perMin / 60));
      // Token bucket: in any 1 s window at most burst + rate·1s calls.
      expect(env.emu.maxCallsInWindow(action, 1000), action).toBeLessThanOrEqual(
        burst + Math.ceil(perMin / 60),
      );
    }
    await eventually(async () => (await env!.client.status()).idle >= 10, 10_000, 'pool topped up');
    expectAgreement(env.emu, await env.client.state());
  });

  it('completes under throttling and 5xx bursts without losing or leaking an address', async () => {
    env = await TestEnv.create('we-fault', { daemon: { minPoolSize: 0 } });
    env.emu.injectFault({ action: 'AssignPrivateIpAddresses', kind: 'throttle', times: 4 });
    env.emu.injectFault({ action: 'AssignPrivateIpAddresses', kind: 'server-error-after-commit', times: 2 });
    env.emu.injectFault({ action: 'CreateNetworkInterface', kind: 'server-error', times: 2 });
    env.emu.injectFault({ action: 'CreateNetworkInterface', kind: 'server-error-after-commit', times: 1 });
    env.emu.injectFault({ action: 'DescribeNetworkInterfaces', kind: 'throttle', times: 3 });
    const results = await Promise.all(Array.from({ length: 45 }, (_, i) => env!.client.allocate(req(i))));
    expect(new Set(results.map((r) => r.ipv4!.address)).size).toBe(45);
    const s = env.cloud.stats;
    expect(
      s.AssignPrivateIpAddresses.throttled + s.DescribeNetworkInterfaces.throttled,
    ).toBeGreaterThanOrEqual(4);
    expect(s.CreateNetworkInterface.serverErrors).toBeGreaterThanOrEqual(3);
    await env.daemon!.pool.stop().catch(() => undefined);
    await env.emu.model.settle();
    // 45 addresses need 2 ENIs of 30; the commit-then-5xx create must not have made a third.
    expect([...env.emu.model.enis.values()].filter((e) => e.type === 'Secondary')).toHaveLength(2);
    expectAgreement(env.emu, env.daemon!.pool.state);
  });

  it('fails fast with code 11 when the vSwitches are exhausted', async () => {
    env = await TestEnv.create('we-exh', { daemon: { minPoolSize: 0 } });
    env.emu.model.setVSwitchCapacity('vsw-we-a', 1); // the primary ENI holds it
    env.emu.model.setVSwitchCapacity('vsw-we-b', 0);
    const t0 = Date.now();
    const err = await env.client.allocate(req(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EniIpamError);
    expect(err).toMatchObject({ cniCode: 11 });
    expect((err as Error).message).toContain('InvalidVSwitchId.IpNotEnough');
    expect((err as Error).message).toContain('vsw-we-a, vsw-we-b');
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect((await env.client.status()).allocatable).toBe(0);
    // The second vSwitch is tried when the first is full.
    expect(env.emu.callsOf('CreateNetworkInterface').length).toBe(2);
  });

  it('fails with code 11 when the instance has no ENI left, without creating more', async () => {
    env = await TestEnv.create('we-full', {
      emulator: {
        instances: [
          { id: INSTANCE_ID, instanceType: 'ecs.g7.large', zoneId: 'cn-hangzhou-k', vSwitchId: 'vsw-we-a' },
        ],
      },
      daemon: { maxEni: 1 },
    });
    const got = await Promise.all(Array.from({ length: 6 }, (_, i) => env!.client.allocate(req(i))));
    expect(new Set(got.map((g) => g.ipv4!.address)).size).toBe(6);
    await expect(env.client.allocate(req(99))).rejects.toMatchObject({
      cniCode: 11,
      message: expect.stringContaining('node is full'),
    });
    expect(env.emu.callsOf('CreateNetworkInterface').length).toBe(1);
  });

  it('reclaims idle addresses above max_pool_size in batches', async () => {
    env = await TestEnv.create('we-recl', { daemon: { minPoolSize: 0, maxPoolSize: 3, idleTimeoutMs: 0 } });
    await Promise.all(Array.from({ length: 25 }, (_, i) => env!.client.allocate(req(i))));
    for (let i = 0; i < 25; i++) await env.client.release({ containerId: `c${i}`, ifname: 'eth0' });
    const released = await env.daemon!.pool.reclaim();
    expect(released).toBe(22);
    expect((await env.client.status()).idle).toBe(3);
    expect(env.cloud.stats.UnassignPrivateIpAddresses.calls).toBeGreaterThanOrEqual(3);
    expectAgreement(env.emu, await env.client.state());
  });

  it('keeps records across a restart and reconciles changes made behind its back', async () => {
    env = await TestEnv.create('we-restart', { daemon: { minPoolSize: 4 } });
    const a = await env.client.allocate(req(1));
    await eventually(async () => (await env!.client.status()).idle >= 4, 10_000, 'warm');
    await env.stopDaemon();
    // While the daemon is down: someone adds two addresses, removes an idle one.
    const eni = env.emu.model.enis.get(a.eni.id)!;
    env.emu.model.assignIpv4(eni.id, 2);
    const idleVictim = eni.secondaryIps.find((ip) => ip !== a.ipv4!.address)!;
    env.emu.model.unassignIpv4(eni.id, [idleVictim]);
    await env.startDaemon();
    expect(await env.client.check({ containerId: 'c1', ifname: 'eth0' })).toEqual(a);
    const state = await env.client.state();
    expect(state.ips[idleVictim]).toBeUndefined();
    expectAgreement(env.emu, state);
    // One Describe for the instance at start (no per-vSwitch calls, no orphan sweep needed).
    expect(env.cloud.stats.DescribeNetworkInterfaces.calls).toBe(1);
  });

  it('GC releases every allocation not in the valid list', async () => {
    env = await TestEnv.create('we-gc');
    await Promise.all([1, 2, 3].map((i) => env!.client.allocate(req(i))));
    const { released } = await env.client.gc([{ containerId: 'c2', ifname: 'eth0' }]);
    expect(released.sort()).toEqual(['c1/eth0', 'c3/eth0']);
    expect(Object.keys((await env.client.state()).allocations)).toEqual(['c2/eth0']);
    // Dead netns: the recorded paths do not exist.
    expect(await env.daemon!.pool.gcDeadNetns(0)).toEqual(['c2/eth0']);
  });

  it('gives dual-stack pods an IPv4 and an IPv6 address from the same ENI', async () => {
    env = await TestEnv.create('we-dual', { daemon: { ipStack: 'dual', minPoolSize: 2 } });
    const a = await env.client.allocate(req(1));
    expect(a.ipv4?.address).toMatch(/^10\.30\./);
    expect(a.ipv6?.address).toMatch(/^2408:4005:30::/);
    expect(a.ipv6).toMatchObject({ prefixLength: 64, gateway: '2408:4005:30::1' });
    const more = await Promise.all(Array.from({ length: 35 }, (_, i) => env!.client.allocate(req(i + 10))));
    expect(new Set(more.map((m) => m.ipv6!.address)).size).toBe(35);
    expectAgreement(env.emu, await env.client.state());
  });

  it('cleans up ENIs whose creation or attach was interrupted', async () => {
    const backoff = { baseMs: 10, capMs: 50, maxAttempts: 4 };
    env = await TestEnv.create('we-orphan', {
      daemon: { minPoolSize: 0, attachTimeoutMs: 2_000, ecs: { ...TEST_AK, protocol: 'http', backoff } },
    });
    // Attach keeps failing: the new ENI is deleted rather than leaked, and the ADD gets code 11.
    env.emu.injectFault({ action: 'AttachNetworkInterface', kind: 'server-error' });
    await expect(env.client.allocate(req(1))).rejects.toMatchObject({ cniCode: 11 });
    await env.daemon!.pool.stop();
    await env.emu.model.settle();
    expect([...env.emu.model.enis.values()].filter((e) => e.type === 'Secondary')).toEqual([]);
    env.emu.clearFaults();
    await env.stopDaemon();

    // A crash between CreateNetworkInterface and the record of its result: the intent is on disk,
    // the ENI exists in the cloud with our tags. The restart finds it by tag and deletes it.
    const { readFileSync, writeFileSync } = await import('node:fs');
    const file = `${env.config.stateDir}/eni-pool.json`;
    const state = JSON.parse(readFileSync(file, 'utf8'));
    state.createIntents = { 'tok-crash': { vSwitchId: 'vsw-we-a', at: Date.now() } };
    writeFileSync(file, JSON.stringify(state));
    const orphan = env.emu.model.createEni({
      vSwitchId: 'vsw-we-a',
      securityGroupIds: ['sg-weft'],
      secondaryIpCount: 3,
      ipv6Count: 0,
      description: '',
      tags: {
        'weft.io/instance-id': INSTANCE_ID,
        'weft.io/managed-by': 'weft',
        'weft.io/create-token': 'tok-crash',
      },
    });
    await env.startDaemon();
    expect(env.emu.model.enis.has(orphan.id)).toBe(false);
    expect(env.cloud.stats.DeleteNetworkInterface.calls).toBe(1);
    const a = await env.client.allocate(req(2));
    expect(a.ipv4).toBeDefined();
    expectAgreement(env.emu, await env.client.state());
  });
});
