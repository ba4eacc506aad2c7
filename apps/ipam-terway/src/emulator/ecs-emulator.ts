/**
 * A local ECS endpoint and metadata service for development and tests. It speaks the ECS RPC
 * protocol as the official SDK sends it (action in `x-acs-action` or `Action`, parameters in
 * the query, flattened lists as `Name.N`), checks every request's signature, and answers in
 * ECS's JSON shapes and error codes. Faults (throttling, 5xx, latency, exhausted vSwitch) are
 * injected per action; every call is logged with its time for rate checks.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CloudModel, EmulatedApiError, type EmulatedEni, type ModelOptions } from './cloud-model';
import { verifySignature } from './signature';

export type FaultKind =
  'throttle' | 'server-error' | 'server-error-after-commit' | 'latency' | 'ip-not-enough';

export interface FaultRule {
  /** ECS action name; omitted = every action. */
  action?: string;
  kind: FaultKind;
  /** How many requests it hits (default: unlimited until cleared). */
  times?: number;
  /** Chance per matching request (default 1). */
  probability?: number;
  latencyMs?: number;
}

export interface CallRecord {
  action: string;
  /** ms on the performance clock. */
  at: number;
  status: number;
  code?: string;
}

export interface EcsEmulatorOptions extends ModelOptions {
  credentials?: Record<string, string>;
  port?: number;
  host?: string;
  /** Server-side quotas per action, calls per minute (none by default). */
  quotas?: Record<string, number>;
}

interface ActiveFault extends FaultRule {
  remaining: number;
}

type Params = Record<string, string>;

function list(p: Params, name: string): string[] {
  const out: string[] = [];
  for (let i = 1; p[`${name}.${i}`] !== undefined; i++) out.push(p[`${name}.${i}`]!);
  // Some callers send a single value without an index.
  if (out.length === 0 && p[name] !== undefined) out.push(p[name]!);
  return out;
}

function tags(p: Params, name = 'Tag'): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 1; p[`${name}.${i}.Key`] !== undefined; i++)
    out[p[`${name}.${i}.Key`]!] = p[`${name}.${i}.Value`] ?? '';
  return out;
}

function int(p: Params, name: string, dflt = 0): number {
  const v = p[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new EmulatedApiError(`InvalidParameter.${name}`, `${name}=${v} is not a count`);
  return n;
}

function required(p: Params, name: string): string {
  const v = p[name];
  if (!v) throw new EmulatedApiError(`MissingParameter.${name}`, `${name} is mandatory for this action`);
  return v;
}

function eniBody(e: EmulatedEni, vpcId: string) {
  return {
    NetworkInterfaceId: e.id,
    MacAddress: e.mac,
    Status: e.status,
    Type: e.type,
    VpcId: vpcId,
    VSwitchId: e.vSwitchId,
    ZoneId: e.zoneId,
    InstanceId: e.instanceId,
    PrivateIpAddress: e.primaryIp,
    Description: e.description,
    CreationTime: e.creationTime,
    PrivateIpSets: {
      PrivateIpSet: [
        { PrivateIpAddress: e.primaryIp, Primary: true },
        ...e.secondaryIps.map((ip) => ({ PrivateIpAddress: ip, Primary: false })),
      ],
    },
    Ipv6Sets: { Ipv6Set: e.ipv6.map((ip) => ({ Ipv6Address: ip })) },
    SecurityGroupIds: { SecurityGroupId: e.securityGroupIds },
    Tags: { Tag: Object.entries(e.tags).map(([TagKey, TagValue]) => ({ TagKey, TagValue })) },
  };
}

export class EcsEmulator {
  readonly model: CloudModel;
  readonly calls: CallRecord[] = [];
  /** Requests refused for a bad signature (they never reach the model). */
  rejectedSignatures = 0;
  private faults: ActiveFault[] = [];
  private readonly credentials: Record<string, string>;
  private readonly quotaState = new Map<
    string,
    { tokens: number; last: number; perMs: number; burst: number }
  >();
  private readonly metadataTokens = new Map<string, number>();
  private server: Server | undefined;
  private readonly seenNonces = new Set<string>();

  constructor(private readonly opts: EcsEmulatorOptions) {
    this.model = new CloudModel(opts);
    this.credentials = opts.credentials ?? { 'weft-test-ak': 'weft-test-secret' };
    for (const [action, perMinute] of Object.entries(opts.quotas ?? {})) {
      const burst = Math.max(1, Math.floor(perMinute / 60));
      this.quotaState.set(action, {
        tokens: burst,
        last: performance.now(),
        perMs: perMinute / 60_000,
        burst,
      });
    }
  }

  get endpoint(): string {
    const a = this.server?.address() as AddressInfo | undefined;
    if (!a) throw new Error('emulator not started');
    return `127.0.0.1:${a.port}`;
  }

  get url(): string {
    return `http://${this.endpoint}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 1_000;
    await new Promise<void>((resolve) =>
      this.server!.listen(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1', resolve),
    );
    return this;
  }

  async close(): Promise<void> {
    await this.model.settle();
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
    this.server = undefined;
  }

  injectFault(rule: FaultRule): void {
    this.faults.push({ ...rule, remaining: rule.times ?? Infinity });
  }

  clearFaults(): void {
    this.faults = [];
  }

  callsOf(action: string): CallRecord[] {
    return this.calls.filter((c) => c.action === action);
  }

  /** Most calls of `action` (all answered calls, errors included) in any window of `windowMs`. */
  maxCallsInWindow(action: string, windowMs: number): number {
    const t = this.callsOf(action).map((c) => c.at);
    let best = 0;
    for (let i = 0, j = 0; j < t.length; j++) {
      while (t[j]! - t[i]! >= windowMs) i++;
      best = Math.max(best, j - i + 1);
    }
    return best;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://emulator');
    if (url.pathname.startsWith('/latest/')) return this.metadata(req, url, res);
    if (url.pathname.startsWith('/__emulator/')) return this.admin(req, url, body, res);
    const query: Params = Object.fromEntries(url.searchParams);
    const isForm = (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
    const form: Params = isForm ? Object.fromEntries(new URLSearchParams(body.toString())) : {};
    const params = { ...query, ...form };
    const action = (req.headers['x-acs-action'] as string | undefined) ?? params.Action ?? '';
    const requestId = randomUUID().toUpperCase();
    const reply = (status: number, payload: object, code?: string) => {
      this.calls.push({ action, at: performance.now(), status, code });
      res.writeHead(status, { 'content-type': 'application/json;charset=utf-8' });
      res.end(JSON.stringify({ RequestId: requestId, ...payload }));
    };
    const fail = (e: EmulatedApiError) =>
      reply(e.httpStatus, { Code: e.code, Message: e.message, HostId: 'ecs.emulator' }, e.code);

    const sig = verifySignature(
      { method: req.method ?? 'GET', pathname: url.pathname, query, headers: req.headers, body, form },
      (ak) => this.credentials[ak],
    );
    if (!sig.ok) {
      this.rejectedSignatures++;
      return fail(
        new EmulatedApiError(sig.code, sig.message, sig.code === 'SignatureDoesNotMatch' ? 400 : 403),
      );
    }
    const nonce = (req.headers['x-acs-signature-nonce'] as string | undefined) ?? params.SignatureNonce;
    if (nonce) {
      if (this.seenNonces.has(nonce))
        return fail(new EmulatedApiError('SignatureNonceUsed', 'nonce was used before'));
      this.seenNonces.add(nonce);
    }

    let commitThenFail = false;
    for (const f of this.faults) {
      if ((f.action && f.action !== action) || f.remaining <= 0) continue;
      if (f.probability !== undefined && Math.random() >= f.probability) continue;
      f.remaining--;
      if (f.kind === 'latency') await new Promise((r) => setTimeout(r, f.latencyMs ?? 200));
      else if (f.kind === 'throttle')
        return fail(new EmulatedApiError('Throttling', 'Request was denied due to request throttling.', 400));
      else if (f.kind === 'server-error')
        return fail(
          new EmulatedApiError(
            'ServiceUnavailable',
            'The request has failed due to a temporary failure of the server.',
            503,
          ),
        );
      else if (f.kind === 'ip-not-enough') {
        return fail(
          new EmulatedApiError(
            'InvalidVSwitchId.IpNotEnough',
            'The specified VSwitch has not enough IP addresses.',
            403,
          ),
        );
      } else if (f.kind === 'server-error-after-commit') commitThenFail = true;
    }
    if (!this.takeQuota(action))
      return fail(
        new EmulatedApiError('Throttling.User', 'Request was denied due to user flow control.', 400),
      );

    try {
      const payload = this.dispatch(action, params);
      if (commitThenFail)
        return fail(
          new EmulatedApiError(
            'InternalError',
            'The request processing has failed due to some unknown error.',
            500,
          ),
        );
      reply(200, payload);
    } catch (err) {
      if (err instanceof EmulatedApiError) return fail(err);
      fail(new EmulatedApiError('InternalError', String(err), 500));
    }
  }

  private takeQuota(action: string): boolean {
    const q = this.quotaState.get(action);
    if (!q) return true;
    const t = performance.now();
    q.tokens = Math.min(q.burst, q.tokens + (t - q.last) * q.perMs);
    q.last = t;
    if (q.tokens < 1) return false;
    q.tokens -= 1;
    return true;
  }

  private dispatch(action: string, p: Params): object {
    const m = this.model;
    if (p.RegionId !== undefined && p.RegionId !== m.regionId && action !== 'DescribeInstanceTypes') {
      throw new EmulatedApiError('InvalidRegionId.NotFound', `region ${p.RegionId}`, 404);
    }
    switch (action) {
      case 'CreateNetworkInterface': {
        const sgs = [...list(p, 'SecurityGroupIds'), ...(p.SecurityGroupId ? [p.SecurityGroupId] : [])];
        const e = m.createEni({
          vSwitchId: required(p, 'VSwitchId'),
          securityGroupIds: sgs,
          tags: tags(p),
          secondaryIpCount: int(p, 'SecondaryPrivateIpAddressCount'),
          ipv6Count: int(p, 'Ipv6AddressCount'),
          description: p.Description ?? '',
          clientToken: p.ClientToken,
        });
        return eniBody(e, m.vpcId);
      }
      case 'AttachNetworkInterface':
        m.attachEni(required(p, 'NetworkInterfaceId'), required(p, 'InstanceId'));
        return {};
      case 'DetachNetworkInterface':
        m.detachEni(required(p, 'NetworkInterfaceId'), required(p, 'InstanceId'));
        return {};
      case 'DeleteNetworkInterface':
        m.deleteEni(required(p, 'NetworkInterfaceId'));
        return {};
      case 'DescribeNetworkInterfaces': {
        const all = m.describeEnis({
          instanceId: p.InstanceId,
          eniIds: list(p, 'NetworkInterfaceId'),
          status: p.Status,
          vSwitchId: p.VSwitchId,
          tags: tags(p),
        });
        const max = Math.min(int(p, 'MaxResults', 10) || 10, 500);
        const start = p.NextToken ? Number(p.NextToken) : 0;
        const page = all.slice(start, start + max);
        return {
          TotalCount: all.length,
          NextToken: start + max < all.length ? String(start + max) : '',
          NetworkInterfaceSets: { NetworkInterfaceSet: page.map((e) => eniBody(e, m.vpcId)) },
        };
      }
      case 'AssignPrivateIpAddresses': {
        const eniId = required(p, 'NetworkInterfaceId');
        const ips = m.assignIpv4(eniId, int(p, 'SecondaryPrivateIpAddressCount', 1), p.ClientToken);
        return {
          AssignedPrivateIpAddressesSet: {
            NetworkInterfaceId: eniId,
            PrivateIpSet: { PrivateIpAddress: ips },
          },
        };
      }
      case 'UnassignPrivateIpAddresses':
        m.unassignIpv4(required(p, 'NetworkInterfaceId'), list(p, 'PrivateIpAddress'));
        return {};
      case 'AssignIpv6Addresses': {
        const eniId = required(p, 'NetworkInterfaceId');
        const ips = m.assignIpv6(eniId, int(p, 'Ipv6AddressCount', 1), p.ClientToken);
        return { NetworkInterfaceId: eniId, Ipv6Sets: { Ipv6Address: ips } };
      }
      case 'UnassignIpv6Addresses':
        m.unassignIpv6(required(p, 'NetworkInterfaceId'), list(p, 'Ipv6Address'));
        return {};
      case 'DescribeInstanceTypes': {
        const wanted = list(p, 'InstanceTypes');
        const types = Object.values(m.instanceTypes).filter(
          (t) => wanted.length === 0 || wanted.includes(t.instanceType),
        );
        return {
          InstanceTypes: {
            InstanceType: types.map((t) => ({
              InstanceTypeId: t.instanceType,
              EniQuantity: t.eniQuantity,
              EniTotalQuantity: t.eniQuantity,
              EniPrivateIpAddressQuantity: t.ipv4PerEni,
              EniIpv6AddressQuantity: t.ipv6PerEni,
            })),
          },
        };
      }
      default:
        throw new EmulatedApiError(
          'InvalidAction.NotFound',
          `action ${action} is not supported by the emulator`,
          404,
        );
    }
  }

  /** The metadata service of the first instance (hardened mode: token required). */
  private metadata(req: IncomingMessage, url: URL, res: ServerResponse): void {
    const send = (status: number, text: string) => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(text);
    };
    if (url.pathname === '/latest/api/token') {
      if (req.method !== 'PUT') return send(405, 'method not allowed');
      const ttl = Number(req.headers['x-aliyun-ecs-metadata-token-ttl-seconds'] ?? 0);
      if (!(ttl >= 1 && ttl <= 21_600)) return send(400, 'bad ttl');
      const token = randomBytes(24).toString('base64url');
      this.metadataTokens.set(token, Date.now() + ttl * 1000);
      return send(200, token);
    }
    const token = req.headers['x-aliyun-ecs-metadata-token'] as string | undefined;
    if (!token || (this.metadataTokens.get(token) ?? 0) < Date.now()) return send(401, 'token required');
    const item = url.pathname.replace(/^\/latest\/meta-data\/?/, '');
    const value = this.metadataItem(item);
    if (value === undefined) return send(404, 'not found');
    send(200, value);
  }

  private metadataItem(item: string): string | undefined {
    const m = this.model;
    const inst = [...m.instances.values()][0];
    if (!inst) return undefined;
    const enis = [...m.enis.values()].filter((e) => e.instanceId === inst.id && e.status === 'InUse');
    const primary = enis.find((e) => e.type === 'Primary');
    const simple: Record<string, string | undefined> = {
      'instance-id': inst.id,
      'instance/instance-type': inst.instanceType,
      'region-id': m.regionId,
      'zone-id': inst.zoneId,
      'vpc-id': m.vpcId,
      'vswitch-id': inst.vSwitchId,
      mac: primary?.mac,
      'private-ipv4': primary?.primaryIp,
      'network/interfaces/macs': enis.map((e) => `${e.mac}/`).join('\n'),
    };
    if (item.replace(/\/$/, '') in simple) return simple[item.replace(/\/$/, '')];
    const mm = /^network\/interfaces\/macs\/([0-9a-f:]{17})\/([a-z0-9-]+)$/.exec(item);
    const eni = mm && enis.find((e) => e.mac === mm[1]);
    if (!mm || !eni) return undefined;
    const v = m.vswitch(eni.vSwitchId);
    const prefix = Number(v.cidr.split('/')[1]);
    const netmask = [24, 16, 8, 0].map((s) => (((0xffffffff << (32 - prefix)) >>> 0) >>> s) & 255).join('.');
    const fields: Record<string, string | undefined> = {
      'network-interface-id': eni.id,
      'vswitch-id': eni.vSwitchId,
      'vswitch-cidr-block': v.cidr,
      'vpc-id': m.vpcId,
      gateway: v.gateway,
      netmask,
      'primary-ip-address': eni.primaryIp,
      'private-ipv4s': JSON.stringify([eni.primaryIp, ...eni.secondaryIps]),
      ipv6s: JSON.stringify(eni.ipv6),
      'ipv6-gateway': v.ipv6Gateway,
      'vswitch-ipv6-cidr-block': v.ipv6Cidr,
    };
    return fields[mm[2]!];
  }

  /** Development aid when run standalone: read state, inject faults over HTTP. */
  private admin(req: IncomingMessage, url: URL, body: Buffer, res: ServerResponse): void {
    const json = (status: number, v: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(v));
    };
    if (url.pathname === '/__emulator/state')
      return json(200, { enis: [...this.model.enis.values()], calls: this.calls.length });
    if (url.pathname === '/__emulator/faults' && req.method === 'POST') {
      this.injectFault(JSON.parse(body.toString()) as FaultRule);
      return json(200, { ok: true });
    }
    if (url.pathname === '/__emulator/faults' && req.method === 'DELETE') {
      this.clearFaults();
      return json(200, { ok: true });
    }
    json(404, { error: 'unknown admin path' });
  }
}
