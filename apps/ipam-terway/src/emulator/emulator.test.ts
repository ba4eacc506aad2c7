import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EcsCloud } from '../cloud/ecs-cloud';
import { MetadataClient } from '../cloud/metadata';
import { CloudApiError } from '../errors';
import { EcsEmulator } from './ecs-emulator';

const fastBackoff = { baseMs: 5, capMs: 40, maxAttempts: 6 };

function newEmulator(): EcsEmulator {
  return new EcsEmulator({
    regionId: 'cn-hangzhou',
    vpcId: 'vpc-we1',
    vSwitches: [
      { id: 'vsw-we-a', zoneId: 'cn-hangzhou-k', cidr: '10.20.1.0/24', ipv6Cidr: '2408:4005:3::/64' },
      { id: 'vsw-we-b', zoneId: 'cn-hangzhou-k', cidr: '10.20.2.0/24' },
    ],
    securityGroups: ['sg-we1'],
    instances: [
      { id: 'i-we1', instanceType: 'ecs.g7.large', zoneId: 'cn-hangzhou-k', vSwitchId: 'vsw-we-a' },
    ],
    attachDelayMs: 30,
    detachDelayMs: 20,
  });
}

function cloudFor(
  emu: EcsEmulator,
  extra: Partial<ConstructorParameters<typeof EcsCloud>[0]> = {},
): EcsCloud {
  return new EcsCloud({
    regionId: 'cn-hangzhou',
    accessKeyId: 'weft-test-ak',
    accessKeySecret: 'weft-test-secret',
    endpoint: emu.endpoint,
    protocol: 'http',
    backoff: fastBackoff,
    ...extra,
  });
}

describe('ECS emulator driven by the official SDK', () => {
  let emu: EcsEmulator;
  beforeAll(async () => {
    emu = await newEmulator().start();
  });
  afterAll(async () => {
    await emu.close();
  });

  it('creates, attaches (eventually), assigns, describes in one call, unassigns, detaches, deletes', async () => {
    const cloud = cloudFor(emu);
    const eni = await cloud.createEni({
      vSwitchId: 'vsw-we-a',
      securityGroupIds: ['sg-we1'],
      tags: { 'weft.io/instance-id': 'i-we1', owner: 'a b!' },
      secondaryIpCount: 2,
      ipv6Count: 1,
      description: "weft's ENI (test)",
      clientToken: 'tok-1',
    });
    expect(eni.id).toMatch(/^eni-/);
    expect(eni.mac).toMatch(/^00:16:3e(:[0-9a-f]{2}){3}$/);
    expect(eni.secondaryIps).toHaveLength(2);
    expect(eni.ipv6).toHaveLength(1);
    // The same client token gives the same ENI back.
    const again = await cloud.createEni({
      vSwitchId: 'vsw-we-a',
      securityGroupIds: ['sg-we1'],
      tags: {},
      secondaryIpCount: 2,
      ipv6Count: 1,
      description: '',
      clientToken: 'tok-1',
    });
    expect(again.id).toBe(eni.id);

    await cloud.attachEni(eni.id, 'i-we1');
    const [attaching] = await cloud.describeEnis({ eniIds: [eni.id] });
    expect(attaching!.status).toBe('Attaching');
    await emu.model.settle();
    const onInstance = await cloud.describeEnis({ instanceId: 'i-we1' });
    expect(onInstance.map((e) => e.type).sort()).toEqual(['Primary', 'Secondary']);
    const mine = onInstance.find((e) => e.id === eni.id)!;
    expect(mine.status).toBe('InUse');
    expect(mine.tags).toEqual({ 'weft.io/instance-id': 'i-we1', owner: 'a b!' });

    const ips = await cloud.assignIpv4(eni.id, 3, 'tok-2');
    expect(ips).toHaveLength(3);
    // ecs.g7.large allows 6 IPv4 per ENI: primary + 2 + 3 = 6, so one more is refused, not retried.
    const calls = cloud.stats.AssignPrivateIpAddresses.calls;
    await expect(cloud.assignIpv4(eni.id, 1, 'tok-3')).rejects.toMatchObject({
      code: 'InvalidOperation.Ipv4CountExceeded',
    });
    expect(cloud.stats.AssignPrivateIpAddresses.calls).toBe(calls + 1);

    await cloud.unassignIpv4(eni.id, ips);
    const v6 = await cloud.assignIpv6(eni.id, 2, 'tok-4');
    expect(v6).toHaveLength(2);
    await cloud.unassignIpv6(eni.id, v6);
    await cloud.detachEni(eni.id, 'i-we1');
    await emu.model.settle();
    await cloud.deleteEni(eni.id);
    expect(await cloud.describeEnis({ eniIds: [eni.id] })).toEqual([]);
    expect(emu.rejectedSignatures).toBe(0);
  });

  it('verifies signatures: a wrong secret is refused and not retried', async () => {
    const bad = cloudFor(emu, { accessKeySecret: 'wrong' });
    const before = emu.rejectedSignatures;
    const err = await bad.describeEnis({ instanceId: 'i-we1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CloudApiError);
    expect((err as CloudApiError).code).toBe('SignatureDoesNotMatch');
    expect(bad.stats.DescribeNetworkInterfaces.calls).toBe(1);
    expect(emu.rejectedSignatures).toBe(before + 1);
  });

  it('accepts the legacy RPC signature (HMAC-SHA1 with "secret&")', async () => {
    const v2 = cloudFor(emu, { signatureAlgorithm: 'v2' });
    const enis = await v2.describeEnis({ instanceId: 'i-we1' });
    expect(enis.length).toBeGreaterThanOrEqual(1);
    const wrong = cloudFor(emu, { signatureAlgorithm: 'v2', accessKeySecret: 'nope' });
    await expect(wrong.describeEnis({})).rejects.toMatchObject({ code: 'SignatureDoesNotMatch' });
  });

  it('retries throttling and 5xx with backoff, never business errors', async () => {
    const cloud = cloudFor(emu);
    emu.injectFault({ action: 'DescribeNetworkInterfaces', kind: 'throttle', times: 2 });
    emu.injectFault({ action: 'DescribeNetworkInterfaces', kind: 'server-error', times: 2 });
    await cloud.describeEnis({ instanceId: 'i-we1' });
    expect(cloud.stats.DescribeNetworkInterfaces).toMatchObject({
      calls: 5,
      retries: 4,
      throttled: 2,
      serverErrors: 2,
    });

    emu.injectFault({ action: 'CreateNetworkInterface', kind: 'ip-not-enough', times: 1 });
    const err = await cloud
      .createEni({
        vSwitchId: 'vsw-we-b',
        securityGroupIds: ['sg-we1'],
        tags: {},
        secondaryIpCount: 0,
        ipv6Count: 0,
        description: '',
        clientToken: 'x',
      })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'InvalidVSwitchId.IpNotEnough', retryable: false });
    expect(cloud.stats.CreateNetworkInterface.calls).toBe(1);

    emu.injectFault({ action: 'DescribeInstanceTypes', kind: 'server-error' });
    await expect(cloud.describeInstanceType('ecs.g7.large')).rejects.toMatchObject({
      code: 'ServiceUnavailable',
    });
    expect(cloud.stats.DescribeInstanceTypes.calls).toBe(fastBackoff.maxAttempts);
    emu.clearFaults();
    expect(await cloud.describeInstanceType('ecs.g7.large')).toEqual({
      instanceType: 'ecs.g7.large',
      eniQuantity: 3,
      ipv4PerEni: 6,
      ipv6PerEni: 6,
    });
  });

  it('keeps each API under its token-bucket limit', async () => {
    const cloud = cloudFor(emu, {
      rateLimits: { DescribeNetworkInterfaces: 300 },
      burst: { DescribeNetworkInterfaces: 2 },
    });
    const start = emu.callsOf('DescribeNetworkInterfaces').length;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 12 }, () => cloud.describeEnis({ instanceId: 'i-we1' })));
    const elapsed = performance.now() - t0;
    expect(emu.callsOf('DescribeNetworkInterfaces').length - start).toBe(12);
    // 300/min = 5/s with a bucket of 2: 12 calls need at least (12-2)/5 s.
    expect(elapsed).toBeGreaterThanOrEqual(1_900);
    const recent = emu
      .callsOf('DescribeNetworkInterfaces')
      .slice(start)
      .map((c) => c.at);
    let worst = 0;
    for (let i = 0; i < recent.length; i++)
      worst = Math.max(worst, recent.filter((t) => t >= recent[i]! && t < recent[i]! + 1000).length);
    expect(worst).toBeLessThanOrEqual(2 + 5);
  });

  it('serves instance metadata only with a token', async () => {
    const plain = await fetch(`${emu.url}/latest/meta-data/instance-id`);
    expect(plain.status).toBe(401);
    const md = new MetadataClient(emu.url);
    const id = await md.identity();
    expect(id).toMatchObject({
      instanceId: 'i-we1',
      instanceType: 'ecs.g7.large',
      regionId: 'cn-hangzhou',
      zoneId: 'cn-hangzhou-k',
    });
    const eni = await md.eni(id.primaryMac);
    expect(eni).toMatchObject({ vSwitchId: 'vsw-we-a', vSwitchCidr: '10.20.1.0/24', gateway: '10.20.1.253' });
    expect(eni.privateIpv4s).toContain(eni.primaryIp);
    expect(await md.macs()).toContain(id.primaryMac);
  });
});
