/**
 * The emulated part of an Alibaba Cloud region: one VPC, its vSwitches, instances and ENIs.
 * Operations validate like ECS does (states, limits, capacity) and throw `EmulatedApiError`
 * with ECS's error codes. Attach/detach are eventually consistent: they finish after a delay.
 */
import { randomBytes } from 'node:crypto';
import type { InstanceTypeLimits } from '../cloud/types';
import { bigIntToIpv6, intToIpv4, ipv6ToBigInt, parseIpv4Cidr, type Ipv4Cidr } from '../ip-math';
import { EMULATED_INSTANCE_TYPES } from './instance-types';

export class EmulatedApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly httpStatus = 400,
  ) {
    super(message);
  }
}

export interface VSwitchSpec {
  id: string;
  zoneId: string;
  cidr: string;
  /** A /64 for IPv6, e.g. "2408:4005:1::/64". */
  ipv6Cidr?: string;
  /** Cap on addresses handed out (to emulate a nearly full vSwitch); default: the whole CIDR. */
  capacity?: number;
}

export interface InstanceSpec {
  id: string;
  instanceType: string;
  zoneId: string;
  vSwitchId: string;
}

export interface ModelOptions {
  regionId: string;
  vpcId: string;
  vSwitches: VSwitchSpec[];
  securityGroups: string[];
  instances: InstanceSpec[];
  instanceTypes?: Record<string, InstanceTypeLimits>;
  attachDelayMs?: number;
  detachDelayMs?: number;
  /** ECS caps how many addresses one Assign call may ask for; batching relies on it. */
  maxAssignPerCall?: number;
}

export interface EmulatedEni {
  id: string;
  mac: string;
  vSwitchId: string;
  zoneId: string;
  type: 'Primary' | 'Secondary';
  status: 'Available' | 'Attaching' | 'InUse' | 'Detaching';
  instanceId: string;
  deviceIndex: number;
  primaryIp: string;
  secondaryIps: string[];
  ipv6: string[];
  securityGroupIds: string[];
  tags: Record<string, string>;
  description: string;
  creationTime: string;
}

interface VSwitchState {
  spec: VSwitchSpec;
  cidr: Ipv4Cidr;
  gateway: string;
  used: Set<number>;
  v6Base?: bigint;
  v6Next: bigint;
  capacity: number;
}

/** Hooks that make attach/detach and IP changes visible on a "node" (real links in tests). */
export interface NodeHooks {
  attached?(eni: EmulatedEni, vswitch: { cidr: string; gateway: string }): Promise<void>;
  detached?(eni: EmulatedEni): Promise<void>;
  ipsChanged?(eni: EmulatedEni, added: string[], removed: string[]): Promise<void>;
}

export class CloudModel {
  readonly regionId: string;
  readonly vpcId: string;
  readonly enis = new Map<string, EmulatedEni>();
  readonly instances = new Map<string, InstanceSpec>();
  readonly instanceTypes: Record<string, InstanceTypeLimits>;
  readonly securityGroups: Set<string>;
  hooks: NodeHooks = {};
  attachDelayMs: number;
  detachDelayMs: number;
  readonly maxAssignPerCall: number;
  private readonly vswitches = new Map<string, VSwitchState>();
  /** ClientToken → result, so that a retried create/assign returns what the first one did. */
  private readonly idempotent = new Map<string, unknown>();
  private readonly pending = new Set<Promise<void>>();

  constructor(opts: ModelOptions) {
    this.regionId = opts.regionId;
    this.vpcId = opts.vpcId;
    this.instanceTypes = opts.instanceTypes ?? EMULATED_INSTANCE_TYPES;
    this.securityGroups = new Set(opts.securityGroups);
    this.attachDelayMs = opts.attachDelayMs ?? 300;
    this.detachDelayMs = opts.detachDelayMs ?? 200;
    this.maxAssignPerCall = opts.maxAssignPerCall ?? 10;
    for (const v of opts.vSwitches) {
      const cidr = parseIpv4Cidr(v.cidr);
      // VPC reserves the network address and the last three; the gateway is the 3rd from last (.253 in a /24).
      const gateway = intToIpv4(cidr.network + cidr.size - 3);
      const v6Base = v.ipv6Cidr ? ipv6ToBigInt(v.ipv6Cidr.split('/')[0]!) : undefined;
      this.vswitches.set(v.id, {
        spec: v,
        cidr,
        gateway,
        used: new Set(),
        v6Base,
        v6Next: 0x100n,
        capacity: Math.min(v.capacity ?? Infinity, cidr.size - 4),
      });
    }
    for (const inst of opts.instances) {
      if (!this.instanceTypes[inst.instanceType])
        throw new Error(`unknown instance type ${inst.instanceType}`);
      this.instances.set(inst.id, inst);
      const primary = this.newEni(inst.vSwitchId, ['sg-primary'], {}, 'primary ENI');
      primary.type = 'Primary';
      primary.status = 'InUse';
      primary.instanceId = inst.id;
      primary.deviceIndex = 0;
    }
  }

  vswitch(id: string): {
    cidr: string;
    gateway: string;
    ipv6Cidr?: string;
    ipv6Gateway?: string;
    free: number;
  } {
    const v = this.vswitches.get(id);
    if (!v) throw new EmulatedApiError('InvalidVSwitchId.NotFound', `vSwitch ${id} not found`, 404);
    return {
      cidr: v.spec.cidr,
      gateway: v.gateway,
      ipv6Cidr: v.spec.ipv6Cidr,
      ipv6Gateway: v.v6Base !== undefined ? bigIntToIpv6(v.v6Base + 1n) : undefined,
      free: v.capacity - v.used.size,
    };
  }

  /** Tests shrink a vSwitch to emulate exhaustion. */
  setVSwitchCapacity(id: string, capacity: number): void {
    const v = this.vswitches.get(id);
    if (!v) throw new Error(`no vSwitch ${id}`);
    v.capacity = capacity;
  }

  limitsOf(instanceId: string): InstanceTypeLimits {
    const inst = this.instances.get(instanceId);
    if (!inst)
      throw new EmulatedApiError('InvalidInstanceId.NotFound', `instance ${instanceId} not found`, 404);
    return this.instanceTypes[inst.instanceType]!;
  }

  /** Waits for attach/detach transitions still in flight (tests). */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  private takeIpv4(v: VSwitchState, count: number): string[] {
    if (v.capacity - v.used.size < count) {
      throw new EmulatedApiError(
        'InvalidVSwitchId.IpNotEnough',
        `vSwitch ${v.spec.id} has not enough free IP addresses`,
        403,
      );
    }
    const out: string[] = [];
    for (let off = 1; off < v.cidr.size - 3 && out.length < count; off++) {
      if (!v.used.has(off)) {
        v.used.add(off);
        out.push(intToIpv4(v.cidr.network + off));
      }
    }
    return out;
  }

  private releaseIpv4(vswitchId: string, ips: string[]): void {
    const v = this.vswitches.get(vswitchId)!;
    for (const ip of ips) {
      const parts = ip.split('.').map(Number);
      const n = ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
      v.used.delete(n - v.cidr.network);
    }
  }

  private takeIpv6(v: VSwitchState, count: number): string[] {
    if (v.v6Base === undefined) {
      throw new EmulatedApiError(
        'InvalidVSwitchId.Ipv6NotTurnOn',
        `vSwitch ${v.spec.id} has no IPv6 CIDR`,
        403,
      );
    }
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(bigIntToIpv6(v.v6Base + v.v6Next++));
    return out;
  }

  private newEni(
    vSwitchId: string,
    sgs: string[],
    tags: Record<string, string>,
    description: string,
  ): EmulatedEni {
    const v = this.vswitches.get(vSwitchId);
    if (!v) throw new EmulatedApiError('InvalidVSwitchId.NotFound', `vSwitch ${vSwitchId} not found`, 404);
    const [primaryIp] = this.takeIpv4(v, 1);
    const mac = `00:16:3e:${randomBytes(3).toString('hex').match(/../g)!.join(':')}`;
    const eni: EmulatedEni = {
      id: `eni-${randomBytes(10).toString('hex')}`,
      mac,
      vSwitchId,
      zoneId: v.spec.zoneId,
      type: 'Secondary',
      status: 'Available',
      instanceId: '',
      deviceIndex: -1,
      primaryIp: primaryIp!,
      secondaryIps: [],
      ipv6: [],
      securityGroupIds: sgs,
      tags,
      description,
      creationTime: new Date().toISOString(),
    };
    this.enis.set(eni.id, eni);
    return eni;
  }

  private once<T>(token: string | undefined, scope: string, fn: () => T): T {
    if (!token) return fn();
    const key = `${scope}/${token}`;
    if (this.idempotent.has(key)) return this.idempotent.get(key) as T;
    const result = fn();
    this.idempotent.set(key, result);
    return result;
  }

  private eni(id: string | undefined): EmulatedEni {
    const e = id ? this.enis.get(id) : undefined;
    if (!e) throw new EmulatedApiError('InvalidEniId.NotFound', `ENI ${id} not found`, 404);
    return e;
  }

  private ipv4Limit(e: EmulatedEni): number {
    return e.instanceId ? this.limitsOf(e.instanceId).ipv4PerEni : 50;
  }

  private ipv6Limit(e: EmulatedEni): number {
    return e.instanceId ? this.limitsOf(e.instanceId).ipv6PerEni : 50;
  }

  createEni(p: {
    vSwitchId: string;
    securityGroupIds: string[];
    tags: Record<string, string>;
    secondaryIpCount: number;
    ipv6Count: number;
    description: string;
    clientToken?: string;
  }): EmulatedEni {
    return this.once(p.clientToken, 'CreateNetworkInterface', () => {
      if (p.securityGroupIds.length === 0)
        throw new EmulatedApiError('MissingParameter', 'SecurityGroupId is mandatory');
      for (const sg of p.securityGroupIds) {
        if (!this.securityGroups.has(sg))
          throw new EmulatedApiError('InvalidSecurityGroupId.NotFound', `${sg} not found`, 404);
      }
      const v = this.vswitches.get(p.vSwitchId);
      if (!v)
        throw new EmulatedApiError('InvalidVSwitchId.NotFound', `vSwitch ${p.vSwitchId} not found`, 404);
      if (v.capacity - v.used.size < 1 + p.secondaryIpCount) {
        throw new EmulatedApiError(
          'InvalidVSwitchId.IpNotEnough',
          `vSwitch ${p.vSwitchId} has not enough free IP addresses`,
          403,
        );
      }
      const eni = this.newEni(p.vSwitchId, p.securityGroupIds, p.tags, p.description);
      eni.secondaryIps = this.takeIpv4(v, p.secondaryIpCount);
      if (p.ipv6Count > 0) eni.ipv6 = this.takeIpv6(v, p.ipv6Count);
      return eni;
    });
  }

  attachEni(eniId: string, instanceId: string): void {
    const e = this.eni(eniId);
    const limits = this.limitsOf(instanceId);
    const inst = this.instances.get(instanceId)!;
    if (e.status !== 'Available') {
      throw new EmulatedApiError('InvalidOperation.InvalidEniState', `ENI ${eniId} is ${e.status}`, 403);
    }
    if (e.zoneId !== inst.zoneId)
      throw new EmulatedApiError('InvalidParameter.Zone', 'ENI and instance zones differ', 403);
    const attached = [...this.enis.values()].filter((x) => x.instanceId === instanceId);
    if (attached.length >= limits.eniQuantity) {
      throw new EmulatedApiError(
        'InvalidOperation.EniCountExceeded',
        `instance ${instanceId} has ${limits.eniQuantity} ENIs`,
        403,
      );
    }
    if (1 + e.secondaryIps.length > limits.ipv4PerEni) {
      throw new EmulatedApiError(
        'InvalidOperation.Ipv4CountExceeded',
        `ENI has more IPs than ${inst.instanceType} allows`,
        403,
      );
    }
    const used = new Set(attached.map((x) => x.deviceIndex));
    let idx = 1;
    while (used.has(idx)) idx++;
    e.status = 'Attaching';
    e.instanceId = instanceId;
    e.deviceIndex = idx;
    this.later(this.attachDelayMs, async () => {
      await this.hooks.attached?.(e, this.vswitch(e.vSwitchId));
      e.status = 'InUse';
    });
  }

  detachEni(eniId: string, instanceId: string): void {
    const e = this.eni(eniId);
    if (e.type === 'Primary')
      throw new EmulatedApiError('InvalidOperation.DetachPrimaryEniNotAllowed', 'primary ENI', 403);
    if (e.status !== 'InUse' || e.instanceId !== instanceId) {
      throw new EmulatedApiError('InvalidOperation.InvalidEniState', `ENI ${eniId} is ${e.status}`, 403);
    }
    e.status = 'Detaching';
    this.later(this.detachDelayMs, async () => {
      await this.hooks.detached?.(e);
      e.status = 'Available';
      e.instanceId = '';
      e.deviceIndex = -1;
    });
  }

  deleteEni(eniId: string): void {
    const e = this.eni(eniId);
    if (e.status !== 'Available') {
      throw new EmulatedApiError('InvalidOperation.InvalidEniState', `ENI ${eniId} is ${e.status}`, 403);
    }
    this.releaseIpv4(e.vSwitchId, [e.primaryIp, ...e.secondaryIps]);
    this.enis.delete(eniId);
  }

  describeEnis(f: {
    instanceId?: string;
    eniIds?: string[];
    status?: string;
    vSwitchId?: string;
    tags?: Record<string, string>;
  }): EmulatedEni[] {
    return [...this.enis.values()].filter(
      (e) =>
        (!f.instanceId || e.instanceId === f.instanceId) &&
        (!f.eniIds?.length || f.eniIds.includes(e.id)) &&
        (!f.status || e.status === f.status) &&
        (!f.vSwitchId || e.vSwitchId === f.vSwitchId) &&
        Object.entries(f.tags ?? {}).every(([k, v]) => e.tags[k] === v),
    );
  }

  assignIpv4(eniId: string, count: number, clientToken?: string): string[] {
    return this.once(clientToken, `Assign/${eniId}`, () => {
      const e = this.eni(eniId);
      if (!(count >= 1 && count <= this.maxAssignPerCall)) {
        throw new EmulatedApiError(
          'InvalidParam.SecondaryPrivateIpAddressCount',
          `count ${count} not in 1..${this.maxAssignPerCall}`,
        );
      }
      if (e.status !== 'Available' && e.status !== 'InUse') {
        throw new EmulatedApiError('InvalidOperation.InvalidEniState', `ENI ${eniId} is ${e.status}`, 403);
      }
      if (1 + e.secondaryIps.length + count > this.ipv4Limit(e)) {
        throw new EmulatedApiError(
          'InvalidOperation.Ipv4CountExceeded',
          `ENI ${eniId} would exceed ${this.ipv4Limit(e)} IPs`,
          403,
        );
      }
      const ips = this.takeIpv4(this.vswitches.get(e.vSwitchId)!, count);
      e.secondaryIps.push(...ips);
      this.notifyIps(e, ips, []);
      return ips;
    });
  }

  unassignIpv4(eniId: string, ips: string[]): void {
    const e = this.eni(eniId);
    for (const ip of ips) {
      if (!e.secondaryIps.includes(ip))
        throw new EmulatedApiError('InvalidIp.NotFound', `${ip} is not on ${eniId}`, 404);
    }
    e.secondaryIps = e.secondaryIps.filter((ip) => !ips.includes(ip));
    this.releaseIpv4(e.vSwitchId, ips);
    this.notifyIps(e, [], ips);
  }

  assignIpv6(eniId: string, count: number, clientToken?: string): string[] {
    return this.once(clientToken, `Assign6/${eniId}`, () => {
      const e = this.eni(eniId);
      if (e.status !== 'Available' && e.status !== 'InUse') {
        throw new EmulatedApiError('InvalidOperation.InvalidEniState', `ENI ${eniId} is ${e.status}`, 403);
      }
      if (e.ipv6.length + count > this.ipv6Limit(e)) {
        throw new EmulatedApiError(
          'InvalidOperation.Ipv6CountExceeded',
          `ENI ${eniId} would exceed its IPv6 limit`,
          403,
        );
      }
      const ips = this.takeIpv6(this.vswitches.get(e.vSwitchId)!, count);
      e.ipv6.push(...ips);
      return ips;
    });
  }

  unassignIpv6(eniId: string, ips: string[]): void {
    const e = this.eni(eniId);
    for (const ip of ips) {
      if (!e.ipv6.includes(ip))
        throw new EmulatedApiError('InvalidIp.NotFound', `${ip} is not on ${eniId}`, 404);
    }
    e.ipv6 = e.ipv6.filter((ip) => !ips.includes(ip));
  }

  private notifyIps(e: EmulatedEni, added: string[], removed: string[]): void {
    if (!this.hooks.ipsChanged) return;
    this.track(this.hooks.ipsChanged(e, added, removed).catch(() => undefined));
  }

  private later(ms: number, fn: () => Promise<void>): void {
    this.track(new Promise<void>((r) => setTimeout(r, ms)).then(fn).catch(() => undefined));
  }

  private track(p: Promise<void>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }
}
