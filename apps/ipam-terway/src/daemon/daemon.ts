/**
 * `weft-eni daemon`: instance identity from metadata, ENI limits from DescribeInstanceTypes,
 * the pool reconciled with the cloud and the records, then the API on the unix socket, the
 * idle-reclaim and GC loops, and (optionally) the node's `weft.io/ip` capacity.
 */
import type { Server } from 'node:http';
import { jitter, withBackoff } from '../backoff';
import { EcsCloud } from '../cloud/ecs-cloud';
import { MetadataClient, type InstanceIdentity } from '../cloud/metadata';
import type { EniCloud } from '../cloud/types';
import { serveEniApi } from './api';
import { CapacityPublisher } from './capacity';
import type { EniDaemonConfig } from './config';
import { NetlinkHostNetwork, RecordingHostNetwork, type HostNetwork } from './host-network';
import { silentLog, type Log } from './log';
import { EniPool } from './pool';

export interface EniDaemonOverrides {
  log?: Log;
  /** Use this instead of the SDK client (tests of the pool logic only). */
  cloud?: EniCloud;
  host?: HostNetwork;
}

export class EniDaemon {
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;

  private constructor(
    readonly config: EniDaemonConfig,
    readonly identity: InstanceIdentity,
    readonly cloud: EniCloud,
    readonly pool: EniPool,
    readonly server: Server,
    readonly capacity: CapacityPublisher | undefined,
    private readonly log: Log,
  ) {}

  static async start(config: EniDaemonConfig, o: EniDaemonOverrides = {}): Promise<EniDaemon> {
    const log = o.log ?? silentLog;
    const md = new MetadataClient(config.metadataEndpoint);
    const identity = await withBackoff(
      () => md.identity(),
      () => true,
      { baseMs: 200, capMs: 5_000, maxAttempts: 10 },
    );
    const cloud =
      o.cloud ??
      new EcsCloud({
        regionId: identity.regionId,
        accessKeyId: config.ecs.accessKeyId,
        accessKeySecret: config.ecs.accessKeySecret,
        endpoint: config.ecs.endpoint ?? `ecs-vpc.${identity.regionId}.aliyuncs.com`,
        protocol: config.ecs.protocol,
        signatureAlgorithm: config.ecs.signatureAlgorithm,
        rateLimits: config.ecs.rateLimits,
        burst: config.ecs.burst,
        backoff: config.ecs.backoff,
      });
    const limits = await cloud.describeInstanceType(identity.instanceType);
    const vSwitches = config.vSwitches[identity.zoneId] ?? config.vSwitches['*'] ?? [identity.vSwitchId];
    const host =
      o.host ??
      (config.configureHost ? new NetlinkHostNetwork(config.nodeNetns) : new RecordingHostNetwork());
    const dual = config.ipStack === 'dual';
    const pool = new EniPool({
      cloud,
      host,
      instanceId: identity.instanceId,
      limits,
      vSwitches,
      config,
      log,
      async eniRouting(mac) {
        const m = await md.eni(mac);
        return {
          gateway: m.gateway,
          cidr: m.vSwitchCidr,
          ...(dual && m.ipv6Gateway && m.vSwitchIpv6Cidr
            ? { gateway6: m.ipv6Gateway, cidr6: m.vSwitchIpv6Cidr }
            : {}),
        };
      },
    });
    await pool.start();
    const server = await serveEniApi(pool, config.socketPath, log);
    const capacity = config.kubernetes
      ? new CapacityPublisher(config.kubernetes, () => pool.status().allocatable, log)
      : undefined;
    const d = new EniDaemon(config, identity, cloud, pool, server, capacity, log);
    pool.startReclaimLoop(config.reclaimIntervalMs);
    d.every(config.gcIntervalMs, () => pool.gcDeadNetns().then(() => undefined));
    if (capacity) {
      await capacity
        .publish()
        .catch((err: unknown) => log.warn('capacity publish failed', { err: String(err) }));
      d.every(Math.min(config.gcIntervalMs, 10_000), () => capacity.publish().then(() => undefined));
    }
    log.info('ENI daemon serving', {
      socket: config.socketPath,
      instance: identity.instanceId,
      vSwitches,
      maxEni: pool.maxEni,
    });
    return d;
  }

  private every(ms: number, fn: () => Promise<void>): void {
    const loop = () => {
      if (this.stopped) return;
      this.timers.push(
        setTimeout(
          () => {
            fn()
              .catch((err: unknown) => this.log.warn('periodic task failed', { err: String(err) }))
              .finally(loop);
          },
          jitter(ms, 0.2),
        ),
      );
    };
    loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
    await this.pool.stop();
  }
}
