/**
 * A cloud + daemon for tests and the benchmark: the ECS emulator on loopback, the daemon
 * started against it through the real SDK and metadata client, state and socket in a temp dir.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EcsCloud } from '../cloud/ecs-cloud';
import { EniDaemonClient } from '../daemon/api';
import { defaultConfig, type EniDaemonConfig } from '../daemon/config';
import { EniDaemon } from '../daemon/daemon';
import type { HostNetwork } from '../daemon/host-network';
import { TAG_INSTANCE } from '../daemon/pool';
import type { PoolState } from '../daemon/store';
import { EcsEmulator, type EcsEmulatorOptions } from '../emulator/ecs-emulator';

export const TEST_AK = { accessKeyId: 'weft-test-ak', accessKeySecret: 'weft-test-secret' };
export const INSTANCE_ID = 'i-weft0001';

export function emulatorOptions(o: Partial<EcsEmulatorOptions> = {}): EcsEmulatorOptions {
  return {
    regionId: 'cn-hangzhou',
    vpcId: 'vpc-weft',
    vSwitches: [
      { id: 'vsw-we-a', zoneId: 'cn-hangzhou-k', cidr: '10.30.0.0/22', ipv6Cidr: '2408:4005:30::/64' },
      { id: 'vsw-we-b', zoneId: 'cn-hangzhou-k', cidr: '10.31.0.0/22', ipv6Cidr: '2408:4005:31::/64' },
    ],
    securityGroups: ['sg-weft'],
    instances: [
      { id: INSTANCE_ID, instanceType: 'ecs.g7.4xlarge', zoneId: 'cn-hangzhou-k', vSwitchId: 'vsw-we-a' },
    ],
    attachDelayMs: 150,
    detachDelayMs: 100,
    ...o,
  };
}

export function daemonConfig(
  emu: EcsEmulator,
  dir: string,
  o: Partial<EniDaemonConfig> = {},
): EniDaemonConfig {
  return {
    ...defaultConfig(),
    socketPath: join(dir, 'eni.sock'),
    stateDir: join(dir, 'state'),
    metadataEndpoint: emu.url,
    vSwitches: { 'cn-hangzhou-k': ['vsw-we-a', 'vsw-we-b'] },
    securityGroupIds: ['sg-weft'],
    eniTags: { 'weft.io/cluster': 'test' },
    configureHost: false,
    minPoolSize: 0,
    maxPoolSize: 1000,
    reclaimIntervalMs: 3_600_000,
    gcIntervalMs: 3_600_000,
    allocateTimeoutMs: 30_000,
    attachTimeoutMs: 10_000,
    ...o,
    ecs: { endpoint: emu.endpoint, protocol: 'http', ...TEST_AK, ...o.ecs },
  };
}

export class TestEnv {
  daemon: EniDaemon | undefined;
  readonly client: EniDaemonClient;
  private constructor(
    readonly emu: EcsEmulator,
    readonly dir: string,
    public config: EniDaemonConfig,
    private readonly host?: HostNetwork,
  ) {
    this.client = new EniDaemonClient(config.socketPath);
  }

  static async create(
    prefix: string,
    o: {
      emulator?: Partial<EcsEmulatorOptions>;
      daemon?: Partial<EniDaemonConfig>;
      host?: HostNetwork;
      start?: boolean;
    } = {},
  ): Promise<TestEnv> {
    const emu = await new EcsEmulator(emulatorOptions(o.emulator)).start();
    const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
    const env = new TestEnv(emu, dir, daemonConfig(emu, dir, o.daemon), o.host);
    if (o.start !== false) {
      try {
        await env.startDaemon();
      } catch (err) {
        await env.dispose();
        throw err;
      }
    }
    return env;
  }

  async startDaemon(): Promise<EniDaemon> {
    this.daemon = await EniDaemon.start(this.config, { host: this.host });
    return this.daemon;
  }

  async stopDaemon(): Promise<void> {
    await this.daemon?.stop();
    this.daemon = undefined;
  }

  get cloud(): EcsCloud {
    return this.daemon!.cloud as EcsCloud;
  }

  async dispose(): Promise<void> {
    await this.stopDaemon().catch(() => undefined);
    await this.emu.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Waits until `cond` holds (polling), failing after `ms`. */
export async function eventually(
  cond: () => boolean | Promise<boolean>,
  ms = 10_000,
  /** What is waited for; a function is asked at the timeout (e.g. for a child's stderr by then). */
  what: string | (() => string) = 'condition',
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * The invariant after any sequence of events: the cloud's view of this instance's weft ENIs
 * and the daemon's records are the same set of ENIs and addresses; every allocation owns its
 * addresses and no address has two owners; no detached weft ENI is left behind.
 * Returns what disagrees (empty: all agree).
 */
export function findDisagreements(emu: EcsEmulator, state: PoolState, instanceId = INSTANCE_ID): string[] {
  const problems: string[] = [];
  const cloudEnis = [...emu.model.enis.values()].filter((e) => e.tags[TAG_INSTANCE] === instanceId);
  for (const e of cloudEnis) if (e.status === 'Available') problems.push(`orphaned ENI ${e.id}`);
  const localIds = new Set(Object.keys(state.enis));
  for (const e of cloudEnis)
    if (!localIds.has(e.id)) problems.push(`ENI ${e.id} in the cloud, not in the records`);
  for (const id of localIds)
    if (!cloudEnis.some((e) => e.id === id)) problems.push(`ENI ${id} in the records, not in the cloud`);
  for (const e of cloudEnis) {
    const cloudIps = new Set([e.primaryIp, ...e.secondaryIps, ...e.ipv6]);
    const localIps = new Set(
      Object.values(state.ips)
        .filter((r) => r.eniId === e.id)
        .map((r) => r.ip),
    );
    for (const ip of cloudIps)
      if (!localIps.has(ip)) problems.push(`${ip} on ${e.id} in the cloud, not in the records (leak)`);
    for (const ip of localIps)
      if (!cloudIps.has(ip)) problems.push(`${ip} on ${e.id} in the records, not in the cloud`);
  }
  const owners = new Map<string, string>();
  for (const [key, a] of Object.entries(state.allocations)) {
    for (const ip of [a.ipv4, a.ipv6]) {
      if (!ip) continue;
      if (owners.has(ip)) problems.push(`${ip} allocated to ${owners.get(ip)} and ${key}`);
      owners.set(ip, key);
      const r = state.ips[ip];
      if (r?.state !== 'allocated' || r.owner !== key || r.eniId !== a.eniId)
        problems.push(`${ip} of ${key} has record ${JSON.stringify(r)}`);
    }
  }
  for (const r of Object.values(state.ips)) {
    if (r.state === 'allocated' && owners.get(r.ip) !== r.owner)
      problems.push(`${r.ip} allocated without an allocation`);
    if (r.state === 'releasing') problems.push(`${r.ip} stuck releasing`);
  }
  return problems;
}
