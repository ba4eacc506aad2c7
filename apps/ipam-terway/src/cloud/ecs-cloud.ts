/**
 * The ENI operations over the official ECS SDK (@alicloud/ecs20140526), with a token bucket
 * per API and exponential backoff with jitter. Throttling, 5xx and transport errors are
 * retried; business errors (bad state, vSwitch out of addresses, ...) are not.
 */
import type * as $Ecs from '@alicloud/ecs20140526';
import type * as $OpenApi from '@alicloud/openapi-client';
import { DEFAULT_BACKOFF, withBackoff, type BackoffOptions } from '../backoff';
import { CloudApiError } from '../errors';
import { TokenBucket } from '../limiter';
import {
  DEFAULT_RATE_LIMITS,
  ECS_ACTIONS,
  type CloudEni,
  type CreateEniRequest,
  type DescribeFilter,
  type EcsAction,
  type EniCloud,
  type InstanceTypeLimits,
} from './types';

export interface EcsCloudOptions {
  regionId: string;
  accessKeyId: string;
  accessKeySecret: string;
  /** host[:port] of the ECS endpoint, e.g. "ecs-vpc.cn-hangzhou.aliyuncs.com" or "127.0.0.1:8080". */
  endpoint: string;
  protocol?: 'http' | 'https';
  /** Calls per minute for each API; missing ones take Terway's defaults. */
  rateLimits?: Partial<Record<EcsAction, number>>;
  /** Bucket size per API; defaults to one second's worth. */
  burst?: Partial<Record<EcsAction, number>>;
  backoff?: BackoffOptions;
  /** "v2" selects the legacy RPC signature (HMAC-SHA1 over the query); default is ACS3-HMAC-SHA256. */
  signatureAlgorithm?: 'v2' | 'ACS3-HMAC-SHA256';
  readTimeoutMs?: number;
}

/** Calls, retries and throttles per API, for metrics and the benchmark. */
export interface ApiStats {
  calls: number;
  retries: number;
  throttled: number;
  serverErrors: number;
  failures: number;
}

type SdkClient = InstanceType<typeof $Ecs.default>;

let sdk: { ecs: typeof $Ecs; openApi: typeof $OpenApi } | undefined;

/**
 * The SDK, loaded when the first EcsCloud is made: initialising its ~2000 model classes costs
 * ~0.2 s, which every `weft-eni` IPAM plugin call (one per pod ADD/DEL) would pay for nothing.
 */
function loadSdk(): { ecs: typeof $Ecs; openApi: typeof $OpenApi } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  sdk ??= { ecs: require('@alicloud/ecs20140526'), openApi: require('@alicloud/openapi-client') };
  return sdk;
}

const ecsSdk = (): typeof $Ecs => loadSdk().ecs;

function sdkClass(): typeof $Ecs.default {
  // The CJS module: its `default` is the client class (plus every model as a named export).
  const m = loadSdk().ecs as unknown as { default?: typeof $Ecs.default };
  return (m.default ?? m) as typeof $Ecs.default;
}

export class EcsCloud implements EniCloud {
  readonly stats: Record<EcsAction, ApiStats>;
  private readonly client: SdkClient;
  private readonly buckets: Record<EcsAction, TokenBucket>;
  private readonly backoff: BackoffOptions;
  private readonly regionId: string;

  constructor(opts: EcsCloudOptions) {
    this.regionId = opts.regionId;
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
    const Client = sdkClass();
    this.client = new Client(
      new (loadSdk().openApi.Config)({
        accessKeyId: opts.accessKeyId,
        accessKeySecret: opts.accessKeySecret,
        regionId: opts.regionId,
        endpoint: opts.endpoint,
        protocol: opts.protocol ?? 'https',
        readTimeout: opts.readTimeoutMs ?? 10_000,
        connectTimeout: 5_000,
        ...(opts.signatureAlgorithm === 'v2' ? { signatureAlgorithm: 'v2' } : {}),
      }),
    );
    const stats = {} as Record<EcsAction, ApiStats>;
    const buckets = {} as Record<EcsAction, TokenBucket>;
    for (const action of ECS_ACTIONS) {
      stats[action] = { calls: 0, retries: 0, throttled: 0, serverErrors: 0, failures: 0 };
      buckets[action] = new TokenBucket({
        ratePerMinute: opts.rateLimits?.[action] ?? DEFAULT_RATE_LIMITS[action],
        burst: opts.burst?.[action],
      });
    }
    this.stats = stats;
    this.buckets = buckets;
  }

  /** Every call goes through here: limit, call, classify, back off. */
  private async call<T>(action: EcsAction, fn: () => Promise<T>): Promise<T> {
    const s = this.stats[action];
    try {
      return await withBackoff(
        async () => {
          await this.buckets[action].take();
          s.calls++;
          try {
            return await fn();
          } catch (err) {
            const e = toCloudError(action, err);
            if (e.throttled) s.throttled++;
            else if (e.httpStatus >= 500) s.serverErrors++;
            throw e;
          }
        },
        (err) => err instanceof CloudApiError && err.retryable,
        this.backoff,
        () => s.retries++,
      );
    } catch (err) {
      s.failures++;
      throw err;
    }
  }

  async createEni(req: CreateEniRequest): Promise<CloudEni> {
    const res = await this.call('CreateNetworkInterface', () =>
      this.client.createNetworkInterface(
        new (ecsSdk().CreateNetworkInterfaceRequest)({
          regionId: this.regionId,
          vSwitchId: req.vSwitchId,
          securityGroupIds: req.securityGroupIds,
          tag: Object.entries(req.tags).map(([key, value]) => ({ key, value })),
          secondaryPrivateIpAddressCount: req.secondaryIpCount > 0 ? req.secondaryIpCount : undefined,
          ipv6AddressCount: req.ipv6Count > 0 ? req.ipv6Count : undefined,
          description: req.description,
          clientToken: req.clientToken,
        }),
      ),
    );
    const b = res.body!;
    const primaryIp = b.privateIpAddress ?? '';
    const allIps = (b.privateIpSets?.privateIpSet ?? []).map((p) => p.privateIpAddress ?? '');
    return {
      id: b.networkInterfaceId ?? '',
      mac: b.macAddress ?? '',
      status: b.status ?? 'Available',
      type: b.type ?? 'Secondary',
      vSwitchId: b.vSwitchId ?? req.vSwitchId,
      zoneId: b.zoneId ?? '',
      instanceId: '',
      primaryIp,
      secondaryIps: allIps.filter((ip) => ip && ip !== primaryIp),
      ipv6: (b.ipv6Sets?.ipv6Set ?? []).map((s) => s.ipv6Address ?? '').filter(Boolean),
      securityGroupIds: b.securityGroupIds?.securityGroupId ?? [],
      tags: Object.fromEntries((b.tags?.tag ?? []).map((t) => [t.tagKey ?? '', t.tagValue ?? ''])),
    };
  }

  async attachEni(eniId: string, instanceId: string): Promise<void> {
    await this.call('AttachNetworkInterface', () =>
      this.client.attachNetworkInterface(
        new (ecsSdk().AttachNetworkInterfaceRequest)({
          regionId: this.regionId,
          networkInterfaceId: eniId,
          instanceId,
        }),
      ),
    );
  }

  async detachEni(eniId: string, instanceId: string): Promise<void> {
    await this.call('DetachNetworkInterface', () =>
      this.client.detachNetworkInterface(
        new (ecsSdk().DetachNetworkInterfaceRequest)({
          regionId: this.regionId,
          networkInterfaceId: eniId,
          instanceId,
        }),
      ),
    );
  }

  async deleteEni(eniId: string): Promise<void> {
    await this.call('DeleteNetworkInterface', () =>
      this.client.deleteNetworkInterface(
        new (ecsSdk().DeleteNetworkInterfaceRequest)({ regionId: this.regionId, networkInterfaceId: eniId }),
      ),
    );
  }

  async describeEnis(filter: DescribeFilter): Promise<CloudEni[]> {
    const out: CloudEni[] = [];
    let nextToken: string | undefined;
    do {
      const res = await this.call('DescribeNetworkInterfaces', () =>
        this.client.describeNetworkInterfaces(
          new (ecsSdk().DescribeNetworkInterfacesRequest)({
            regionId: this.regionId,
            instanceId: filter.instanceId,
            networkInterfaceId: filter.eniIds,
            status: filter.status,
            tag: filter.tags
              ? Object.entries(filter.tags).map(([key, value]) => ({ key, value }))
              : undefined,
            maxResults: 100,
            nextToken,
          }),
        ),
      );
      const body = res.body!;
      for (const n of body.networkInterfaceSets?.networkInterfaceSet ?? []) {
        const primaryIp = n.privateIpAddress ?? '';
        out.push({
          id: n.networkInterfaceId ?? '',
          mac: n.macAddress ?? '',
          status: n.status ?? '',
          type: n.type ?? '',
          vSwitchId: n.vSwitchId ?? '',
          zoneId: n.zoneId ?? '',
          instanceId: n.instanceId ?? '',
          primaryIp,
          secondaryIps: (n.privateIpSets?.privateIpSet ?? [])
            .filter((p) => !p.primary && p.privateIpAddress)
            .map((p) => p.privateIpAddress!),
          ipv6: (n.ipv6Sets?.ipv6Set ?? []).map((s) => s.ipv6Address ?? '').filter(Boolean),
          securityGroupIds: n.securityGroupIds?.securityGroupId ?? [],
          tags: Object.fromEntries((n.tags?.tag ?? []).map((t) => [t.tagKey ?? '', t.tagValue ?? ''])),
        });
      }
      nextToken = body.nextToken || undefined;
    } while (nextToken);
    return out;
  }

  async assignIpv4(eniId: string, count: number, clientToken: string): Promise<string[]> {
    const res = await this.call('AssignPrivateIpAddresses', () =>
      this.client.assignPrivateIpAddresses(
        new (ecsSdk().AssignPrivateIpAddressesRequest)({
          regionId: this.regionId,
          networkInterfaceId: eniId,
          secondaryPrivateIpAddressCount: count,
          clientToken,
        }),
      ),
    );
    return res.body?.assignedPrivateIpAddressesSet?.privateIpSet?.privateIpAddress ?? [];
  }

  async unassignIpv4(eniId: string, ips: string[]): Promise<void> {
    await this.call('UnassignPrivateIpAddresses', () =>
      this.client.unassignPrivateIpAddresses(
        new (ecsSdk().UnassignPrivateIpAddressesRequest)({
          regionId: this.regionId,
          networkInterfaceId: eniId,
          privateIpAddress: ips,
        }),
      ),
    );
  }

  async assignIpv6(eniId: string, count: number, clientToken: string): Promise<string[]> {
    const res = await this.call('AssignIpv6Addresses', () =>
      this.client.assignIpv6Addresses(
        new (ecsSdk().AssignIpv6AddressesRequest)({
          regionId: this.regionId,
          networkInterfaceId: eniId,
          ipv6AddressCount: count,
          clientToken,
        }),
      ),
    );
    return res.body?.ipv6Sets?.ipv6Address ?? [];
  }

  async unassignIpv6(eniId: string, ips: string[]): Promise<void> {
    await this.call('UnassignIpv6Addresses', () =>
      this.client.unassignIpv6Addresses(
        new (ecsSdk().UnassignIpv6AddressesRequest)({
          regionId: this.regionId,
          networkInterfaceId: eniId,
          ipv6Address: ips,
        }),
      ),
    );
  }

  async describeInstanceType(instanceType: string): Promise<InstanceTypeLimits> {
    const res = await this.call('DescribeInstanceTypes', () =>
      this.client.describeInstanceTypes(
        new (ecsSdk().DescribeInstanceTypesRequest)({ instanceTypes: [instanceType] }),
      ),
    );
    const t = res.body?.instanceTypes?.instanceType?.find((x) => x.instanceTypeId === instanceType);
    if (!t)
      throw new CloudApiError('DescribeInstanceTypes', 'InvalidInstanceType.NotFound', instanceType, 404);
    return {
      instanceType,
      eniQuantity: t.eniQuantity ?? 1,
      ipv4PerEni: t.eniPrivateIpAddressQuantity ?? 1,
      ipv6PerEni: t.eniIpv6AddressQuantity ?? 0,
    };
  }
}

/** Maps the SDK's ThrottlingError/ClientError/ServerError and transport errors to one type. */
export function toCloudError(action: string, err: unknown): CloudApiError {
  if (err instanceof CloudApiError) return err;
  const e = err as { code?: unknown; statusCode?: unknown; message?: unknown; data?: { RequestId?: string } };
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 0;
  const rawCode = typeof e?.code === 'string' ? e.code : '';
  // Transport errors carry errno-style codes (ECONNREFUSED, ...) and no HTTP status.
  const code = status === 0 ? `Transport.${rawCode || 'Error'}` : rawCode || `Http${status}`;
  return new CloudApiError(action, code, String(e?.message ?? err), status, e?.data?.RequestId);
}
