/**
 * The node-local pool of ENIs and their secondary addresses.
 *
 * - Warm pool: at least `minPoolSize` idle addresses, topped up in the background; an ADD that
 *   finds the pool empty waits (FIFO) while the pool grows, and fails with CNI code 11 when
 *   nothing can grow it (instance at its ENI limit, vSwitches exhausted, cloud failing).
 * - Growth: Assign in batches (`batchSize`, ≤ 10) on ready ENIs; a new ENI (with addresses in
 *   the same call) only when every ready ENI is full — never more than `maxEni` in total,
 *   counting those being created.
 * - Reclaim: idle addresses above `maxPoolSize`, idle longer than `idleTimeoutMs`, go back.
 * - Durability: every change is in `state`, saved by `StateFile` before the caller is answered;
 *   `reconcile()` makes the records and the cloud agree after a restart.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { jitter, sleep } from '../backoff';
import type { CloudEni, EniCloud, InstanceTypeLimits } from '../cloud/types';
import { CloudApiError, CNI_CODES, EniIpamError, IP_NOT_ENOUGH } from '../errors';
import type { EniDaemonConfig } from './config';
import type { EniRouting, HostNetwork } from './host-network';
import { silentLog, type Log } from './log';
import {
  allocationKey,
  emptyState,
  StateFile,
  type Allocation,
  type PoolState,
  type StoredEni,
  type StoredIp,
} from './store';

/** Tags weft puts on the ENIs it creates: how a restarted daemon recognises its own. */
export const TAG_INSTANCE = 'weft.io/instance-id';
export const TAG_MANAGED = 'weft.io/managed-by';
export const TAG_CREATE_TOKEN = 'weft.io/create-token';

export interface AllocateRequest {
  containerId: string;
  ifname: string;
  netns: string;
  network?: string;
  /** Exclusive ENI mode: a whole ENI for this pod. */
  exclusive?: boolean;
  podNamespace?: string;
  podName?: string;
  podUid?: string;
}

export interface AddressResult {
  address: string;
  prefixLength: number;
  gateway: string;
}

/** What the IPAM plugin gets back. */
export interface AllocationResult {
  containerId: string;
  ifname: string;
  ipv4?: AddressResult;
  ipv6?: AddressResult;
  eni: { id: string; mac: string; table?: number; vSwitchId: string };
}

export interface PoolStatus {
  ready: boolean;
  enis: number;
  maxEni: number;
  perEni: number;
  idle: number;
  allocated: number;
  waiting: number;
  /** Pod addresses this node can hold at most now (what the scheduler should see). */
  allocatable: number;
  exhaustedVSwitches: string[];
  lastError?: string;
}

export type PoolConfig = Pick<
  EniDaemonConfig,
  | 'minPoolSize'
  | 'maxPoolSize'
  | 'maxEni'
  | 'vSwitchSelectionPolicy'
  | 'securityGroupIds'
  | 'eniTags'
  | 'ipStack'
  | 'batchSize'
  | 'idleTimeoutMs'
  | 'allocateTimeoutMs'
  | 'attachTimeoutMs'
  | 'vSwitchCooldownMs'
  | 'stateDir'
>;

export interface PoolDeps {
  cloud: EniCloud;
  host: HostNetwork;
  instanceId: string;
  limits: InstanceTypeLimits;
  /** vSwitches for new ENIs, in preference order (already filtered to the instance's zone). */
  vSwitches: string[];
  /** Gateway and CIDRs of an attached ENI (from instance metadata). */
  eniRouting(mac: string): Promise<Omit<EniRouting, 'mac'>>;
  config: PoolConfig;
  log?: Log;
}

interface Waiter {
  req: AllocateRequest;
  resolve: (a: Allocation) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface EniRuntime {
  /** Addresses asked for and not answered yet. */
  pending: number;
  busy: boolean;
}

const MAX_PARALLEL_CREATES = 2;

export class EniPool {
  state: PoolState = emptyState();
  readonly store: StateFile;
  private readonly cloud: EniCloud;
  private readonly host: HostNetwork;
  private readonly cfg: PoolConfig;
  private readonly log: Log;
  private readonly runtime = new Map<string, EniRuntime>();
  private readonly waiters: Waiter[] = [];
  private readonly inflightKeys = new Map<string, Promise<Allocation>>();
  private readonly exhausted = new Map<string, number>();
  private creating = 0;
  /** Addresses expected from ENIs being created. */
  private creatingSlots = 0;
  /** Further room on ENIs being created (beyond the addresses they are created with). */
  private creatingRoom = 0;
  private lastError: string | undefined;
  private retryAt = 0;
  private failureStreak = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private started = false;
  private stopped = false;
  private readonly background = new Set<Promise<unknown>>();
  /** ENIs between create and ready in this process. */
  private readonly attachingNow = new Set<string>();

  constructor(private readonly deps: PoolDeps) {
    this.cloud = deps.cloud;
    this.host = deps.host;
    this.cfg = deps.config;
    this.log = deps.log ?? silentLog;
    this.store = new StateFile(deps.config.stateDir, () => this.state);
  }

  get maxEni(): number {
    return Math.max(0, Math.min(this.cfg.maxEni ?? Infinity, this.deps.limits.eniQuantity - 1));
  }

  get perEni(): number {
    const l = this.deps.limits;
    return this.cfg.ipStack === 'dual' ? Math.min(l.ipv4PerEni, l.ipv6PerEni) : l.ipv4PerEni;
  }

  // ---------- queries ----------

  private ipsOf(eniId: string): StoredIp[] {
    return Object.values(this.state.ips).filter((r) => r.eniId === eniId);
  }

  private slotsOf(eniId: string): number {
    let v4 = 0;
    let v6 = 0;
    for (const r of this.ipsOf(eniId)) {
      if (r.state !== 'idle') continue;
      if (r.family === 4) v4++;
      else v6++;
    }
    return this.cfg.ipStack === 'dual' ? Math.min(v4, v6) : v4;
  }

  /** Addresses of the bigger family on the ENI, whatever their state. */
  private usedOn(eniId: string): number {
    let v4 = 0;
    let v6 = 0;
    for (const r of this.ipsOf(eniId)) {
      if (r.family === 4) v4++;
      else v6++;
    }
    return this.cfg.ipStack === 'dual' ? Math.max(v4, v6) : v4;
  }

  /** Shared ENIs in service (exclusive ones are their pod's alone). */
  private readyEnis(): StoredEni[] {
    return Object.values(this.state.enis).filter((e) => e.phase === 'ready' && !e.exclusive);
  }

  private rt(eniId: string): EniRuntime {
    let r = this.runtime.get(eniId);
    if (!r) this.runtime.set(eniId, (r = { pending: 0, busy: false }));
    return r;
  }

  idleSlots(): number {
    return this.readyEnis().reduce((n, e) => n + this.slotsOf(e.id), 0);
  }

  private pendingSlots(): number {
    let n = this.creatingSlots;
    for (const r of this.runtime.values()) n += r.pending;
    return n;
  }

  private eniCount(): number {
    return Object.keys(this.state.enis).length + this.creating;
  }

  private isExhausted(vSwitchId: string): boolean {
    const until = this.exhausted.get(vSwitchId);
    return until !== undefined && until > Date.now();
  }

  status(): PoolStatus {
    const allocated = Object.keys(this.state.allocations).length;
    const idle = this.idleSlots();
    const exhaustedVSwitches = this.deps.vSwitches.filter((v) => this.isExhausted(v));
    const canGrow = exhaustedVSwitches.length < this.deps.vSwitches.length;
    return {
      ready: this.started,
      enis: Object.keys(this.state.enis).length,
      maxEni: this.maxEni,
      perEni: this.perEni,
      idle,
      allocated,
      waiting: this.waiters.length,
      // With room left in a vSwitch the node can grow to its instance limit; without, only what it holds.
      allocatable: canGrow ? this.maxEni * this.perEni : allocated + idle,
      exhaustedVSwitches,
      lastError: this.lastError,
    };
  }

  allocationOf(containerId: string, ifname: string): Allocation | undefined {
    return this.state.allocations[allocationKey(containerId, ifname)];
  }

  result(a: Allocation): AllocationResult {
    const eni = this.state.enis[a.eniId];
    const addr = (
      ip: string | undefined,
      cidr: string | undefined,
      gw: string | undefined,
    ): AddressResult | undefined =>
      ip && cidr && gw ? { address: ip, prefixLength: Number(cidr.split('/')[1]), gateway: gw } : undefined;
    return {
      containerId: a.containerId,
      ifname: a.ifname,
      ipv4: addr(a.ipv4, eni?.cidr, eni?.gateway),
      ipv6: addr(a.ipv6, eni?.cidr6, eni?.gateway6),
      eni: { id: a.eniId, mac: eni?.mac ?? '', table: eni?.table, vSwitchId: eni?.vSwitchId ?? '' },
    };
  }

  // ---------- allocation ----------

  /** Idempotent per (containerId, ifname): a repeated ADD gets the same addresses. */
  allocate(req: AllocateRequest): Promise<Allocation> {
    if (!this.started)
      return Promise.reject(new EniIpamError(CNI_CODES.tryAgainLater, 'ENI pool is still starting'));
    const key = allocationKey(req.containerId, req.ifname);
    const existing = this.state.allocations[key];
    if (existing) return Promise.resolve(existing);
    let p = this.inflightKeys.get(key);
    if (!p) {
      p = (req.exclusive ? this.allocateExclusive(req) : this.doAllocate(req)).finally(() =>
        this.inflightKeys.delete(key),
      );
      this.inflightKeys.set(key, p);
    }
    return p;
  }

  private async doAllocate(req: AllocateRequest): Promise<Allocation> {
    let a = this.take(req);
    if (!a) {
      a = await new Promise<Allocation>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.dropWaiter(w);
          reject(
            new EniIpamError(
              CNI_CODES.tryAgainLater,
              `no ENI address within ${this.cfg.allocateTimeoutMs} ms`,
              this.lastError ?? '',
            ),
          );
        }, this.cfg.allocateTimeoutMs);
        const w: Waiter = { req, resolve, reject, timer };
        this.waiters.push(w);
        this.kick();
      });
    } else {
      this.kick();
    }
    const eni = this.state.enis[a.eniId]!;
    const ips = [a.ipv4, a.ipv6].filter((x): x is string => !!x);
    try {
      if (eni.table !== undefined) await this.host.addPodRules(ips, eni.table);
      await this.store.save();
    } catch (err) {
      // Do not hand out an address whose routing or record failed: put it back.
      this.unassignLocally(allocationKey(a.containerId, a.ifname));
      throw new EniIpamError(CNI_CODES.tryAgainLater, `could not set up ${ips.join(', ')}: ${String(err)}`);
    }
    return a;
  }

  private dropWaiter(w: Waiter): void {
    const i = this.waiters.indexOf(w);
    if (i >= 0) this.waiters.splice(i, 1);
  }

  /** Takes an idle address (pair, in dual stack) synchronously, or returns undefined. */
  private take(req: AllocateRequest): Allocation | undefined {
    // Fill the ENI with the fewest idle slots first: idle addresses gather on few ENIs.
    const candidates = this.readyEnis()
      .map((e) => ({ e, slots: this.slotsOf(e.id) }))
      .filter((c) => c.slots > 0)
      .sort((x, y) => x.slots - y.slots);
    const chosen = candidates[0]?.e;
    if (!chosen) return undefined;
    const oldestIdle = (family: 4 | 6) =>
      this.ipsOf(chosen.id)
        .filter((r) => r.state === 'idle' && r.family === family)
        // Longest idle first: a just-released address may still sit in peers' ARP/conntrack.
        .sort((a, b) => a.idleSince - b.idleSince)[0];
    const v4 = oldestIdle(4);
    const v6 = this.cfg.ipStack === 'dual' ? oldestIdle(6) : undefined;
    if (!v4 || (this.cfg.ipStack === 'dual' && !v6)) return undefined;
    const key = allocationKey(req.containerId, req.ifname);
    const a: Allocation = {
      containerId: req.containerId,
      ifname: req.ifname,
      netns: req.netns,
      network: req.network,
      podNamespace: req.podNamespace,
      podName: req.podName,
      podUid: req.podUid,
      eniId: chosen.id,
      ipv4: v4.ip,
      ipv6: v6?.ip,
      createdAt: Date.now(),
    };
    for (const r of [v4, v6]) {
      if (!r) continue;
      r.state = 'allocated';
      r.owner = key;
    }
    this.state.allocations[key] = a;
    return a;
  }

  private serveWaiters(): void {
    while (this.waiters.length > 0) {
      const w = this.waiters[0]!;
      const a = this.take(w.req);
      if (!a) break;
      this.waiters.shift();
      clearTimeout(w.timer);
      w.resolve(a);
    }
  }

  private failWaiters(err: EniIpamError): void {
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  // ---------- release & GC ----------

  private unassignLocally(key: string): Allocation | undefined {
    const a = this.state.allocations[key];
    if (!a) return undefined;
    delete this.state.allocations[key];
    for (const ip of [a.ipv4, a.ipv6]) {
      const r = ip ? this.state.ips[ip] : undefined;
      if (r && r.owner === key) {
        r.state = 'idle';
        r.owner = undefined;
        r.idleSince = Date.now();
      }
    }
    return a;
  }

  /** Idempotent: releasing what is not allocated succeeds. */
  async release(containerId: string, ifname: string): Promise<boolean> {
    const inflight = this.inflightKeys.get(allocationKey(containerId, ifname));
    if (inflight) await inflight.catch(() => undefined);
    const key = allocationKey(containerId, ifname);
    if (this.state.allocations[key]?.exclusive) return this.releaseExclusive(key);
    const a = this.unassignLocally(key);
    if (!a) return false;
    await this.host.delPodRules([a.ipv4, a.ipv6].filter((x): x is string => !!x)).catch(() => undefined);
    await this.store.save();
    this.serveWaiters();
    return true;
  }

  /**
   * CNI GC: every allocation of `network` (all networks when undefined) that is not in `valid`
   * (keys "containerId/ifname") is released.
   */
  async gc(valid: Set<string>, network?: string): Promise<string[]> {
    const stale = Object.entries(this.state.allocations)
      .filter(
        ([k, a]) =>
          !valid.has(k) && !this.inflightKeys.has(k) && (network === undefined || a.network === network),
      )
      .map(([k]) => k);
    for (const k of stale) {
      const a = this.state.allocations[k]!;
      await this.release(a.containerId, a.ifname);
    }
    return stale;
  }

  /** Releases allocations whose netns is gone (the container died without a DEL). */
  async gcDeadNetns(graceMs = 30_000): Promise<string[]> {
    const dead = Object.entries(this.state.allocations)
      .filter(
        ([k, a]) =>
          a.netns.startsWith('/') &&
          Date.now() - a.createdAt > graceMs &&
          !this.inflightKeys.has(k) &&
          !existsSync(a.netns),
      )
      .map(([k]) => k);
    for (const k of dead) {
      const a = this.state.allocations[k]!;
      await this.release(a.containerId, a.ifname);
    }
    return dead;
  }

  // ---------- growth ----------

  /** Plans and starts cloud operations so that waiters and the warm pool get addresses. */
  kick(): void {
    if (!this.started || this.stopped) return;
    this.serveWaiters();
    let deficit = this.waiters.length + this.cfg.minPoolSize - this.idleSlots() - this.pendingSlots();
    if (deficit <= 0) return;
    const now = Date.now();
    if (now < this.retryAt) {
      // Cloud failing: fail ADDs fast (code 11) rather than queue them behind a backoff.
      if (this.waiters.length > 0 && this.pendingSlots() === 0) this.failWaiters(this.noProgressError());
      this.retryTimer ??= setTimeout(() => {
        this.retryTimer = undefined;
        this.kick();
      }, this.retryAt - now);
      return;
    }
    // Room on ENIs we have (or are bringing up) is used before any new ENI is made; an ENI
    // busy with one batch takes the next batch when it is done.
    let room = 0;
    for (const e of Object.values(this.state.enis)) {
      if (e.exclusive || this.isExhausted(e.vSwitchId)) continue;
      const r = this.rt(e.id);
      let free = Math.max(0, this.perEni - this.usedOn(e.id) - r.pending);
      if (e.phase === 'ready' && !r.busy && free > 0 && deficit > 0) {
        const k = Math.min(this.cfg.batchSize, free, deficit);
        this.track(this.assignOn(e, k));
        deficit -= k;
        free -= k;
      }
      room += free;
    }
    room += this.creatingRoom;
    while (deficit - room > 0 && this.creating < MAX_PARALLEL_CREATES && this.eniCount() < this.maxEni) {
      const vsw = this.pickVSwitch();
      if (!vsw) break;
      const k = Math.min(this.perEni, deficit - room);
      this.track(this.createEni(vsw, k));
      deficit -= k;
    }
    if (this.waiters.length > 0 && this.pendingSlots() === 0 && this.creating === 0) {
      this.failWaiters(this.noProgressError());
    }
  }

  private noProgressError(): EniIpamError {
    const v = this.deps.vSwitches;
    if (v.length > 0 && v.every((x) => this.isExhausted(x))) {
      return new EniIpamError(
        CNI_CODES.tryAgainLater,
        `no free IP address in vSwitch ${v.join(', ')} (${IP_NOT_ENOUGH})`,
        'add vSwitches with free addresses to the ENI config, or free addresses in these',
      );
    }
    if (this.eniCount() >= this.maxEni && this.idleSlots() === 0) {
      return new EniIpamError(
        CNI_CODES.tryAgainLater,
        `node is full: ${this.maxEni} ENIs × ${this.perEni} addresses are all allocated`,
        'the instance type allows no more ENIs; schedule the pod elsewhere',
      );
    }
    return new EniIpamError(CNI_CODES.tryAgainLater, 'cannot get an ENI address now', this.lastError ?? '');
  }

  private pickVSwitch(): string | undefined {
    const usable = this.deps.vSwitches.filter((v) => !this.isExhausted(v));
    if (usable.length === 0) return undefined;
    if (this.cfg.vSwitchSelectionPolicy === 'random')
      return usable[Math.floor(Math.random() * usable.length)];
    return usable[0];
  }

  private track<T>(p: Promise<T>): void {
    const q = p.catch((err: unknown) => this.log.error('pool operation failed', { err: String(err) }));
    this.background.add(q);
    void q.finally(() => this.background.delete(q));
  }

  private noteFailure(err: unknown): void {
    this.lastError = String(err instanceof Error ? err.message : err);
    this.failureStreak++;
    this.retryAt =
      Date.now() + Math.min(30_000, 500 * 2 ** Math.min(this.failureStreak, 6)) * (0.5 + Math.random());
  }

  private noteSuccess(): void {
    this.failureStreak = 0;
    this.retryAt = 0;
  }

  private handleCloudError(err: unknown, vSwitchId: string): void {
    if (err instanceof CloudApiError && err.code === IP_NOT_ENOUGH) {
      this.exhausted.set(vSwitchId, Date.now() + this.cfg.vSwitchCooldownMs);
      this.lastError = err.message;
      this.log.warn('vSwitch exhausted', { vSwitchId });
      return;
    }
    this.noteFailure(err);
  }

  private async assignOn(e: StoredEni, k: number): Promise<void> {
    const r = this.rt(e.id);
    r.busy = true;
    r.pending += k;
    try {
      const slots = this.slotsOf(e.id);
      const idle4 = this.ipsOf(e.id).filter((x) => x.family === 4 && x.state === 'idle').length;
      const idle6 = this.ipsOf(e.id).filter((x) => x.family === 6 && x.state === 'idle').length;
      const want4 = Math.max(0, slots + k - idle4);
      const want6 = this.cfg.ipStack === 'dual' ? Math.max(0, slots + k - idle6) : 0;
      if (want4 > 0) this.addIps(e.id, 4, await this.cloud.assignIpv4(e.id, want4, randomUUID()));
      if (want6 > 0) this.addIps(e.id, 6, await this.cloud.assignIpv6(e.id, want6, randomUUID()));
      this.noteSuccess();
    } catch (err) {
      this.handleCloudError(err, e.vSwitchId);
      // A 5xx may come after the cloud did assign: learn what the ENI really has.
      if (err instanceof CloudApiError && err.retryable) await this.resyncEni(e.id).catch(() => undefined);
    } finally {
      r.pending -= k;
      r.busy = false;
    }
    await this.store.save();
    this.kick();
  }

  private addIps(eniId: string, family: 4 | 6, ips: string[], primary?: string): void {
    for (const ip of ips) {
      if (this.state.ips[ip]) continue;
      this.state.ips[ip] = {
        ip,
        family,
        eniId,
        state: 'idle',
        idleSince: 0,
        ...(ip === primary ? { primary: true } : {}),
      };
    }
  }

  /** Makes the records of one ENI's addresses match the cloud (after an ambiguous failure). */
  private async resyncEni(eniId: string): Promise<void> {
    const [c] = await this.cloud.describeEnis({ eniIds: [eniId] });
    if (c) this.mergeEniIps(c);
  }

  private mergeEniIps(c: CloudEni): void {
    const cloud4 = new Set([c.primaryIp, ...c.secondaryIps]);
    const cloud6 = new Set(c.ipv6);
    this.addIps(c.id, 4, [...cloud4], c.primaryIp);
    this.addIps(c.id, 6, [...cloud6]);
    for (const r of this.ipsOf(c.id)) {
      const present = r.family === 4 ? cloud4.has(r.ip) : cloud6.has(r.ip);
      if (present) {
        // A release that did not finish: the address is still ours, idle again.
        if (r.state === 'releasing') r.state = 'idle';
        continue;
      }
      if (r.owner) {
        this.log.error('allocated address vanished from the cloud', { ip: r.ip, eni: c.id, owner: r.owner });
        delete this.state.allocations[r.owner];
      }
      delete this.state.ips[r.ip];
    }
  }

  private async createEni(vSwitchId: string, k: number): Promise<void> {
    this.creating++;
    this.creatingSlots += k;
    this.creatingRoom += this.perEni - k;
    const token = randomUUID();
    let created: CloudEni | undefined;
    let counted = true;
    try {
      this.state.createIntents[token] = { vSwitchId, at: Date.now() };
      await this.store.save();
      created = await this.cloud.createEni({
        vSwitchId,
        securityGroupIds: this.cfg.securityGroupIds,
        tags: {
          ...this.cfg.eniTags,
          [TAG_INSTANCE]: this.deps.instanceId,
          [TAG_MANAGED]: 'weft',
          [TAG_CREATE_TOKEN]: token,
        },
        secondaryIpCount: k - 1,
        ipv6Count: this.cfg.ipStack === 'dual' ? k : 0,
        description: `weft ENI for ${this.deps.instanceId}`,
        clientToken: token,
      });
      this.attachingNow.add(created.id);
      this.state.enis[created.id] = { id: created.id, mac: created.mac, vSwitchId, phase: 'attaching' };
      delete this.state.createIntents[token];
      this.addIps(created.id, 4, [created.primaryIp, ...created.secondaryIps], created.primaryIp);
      this.addIps(created.id, 6, created.ipv6);
      // From here the ENI is counted by state.enis, not by `creating`.
      this.creating--;
      this.creatingRoom -= this.perEni - k;
      counted = false;
      await this.store.save();
      await this.cloud.attachEni(created.id, this.deps.instanceId);
      await this.finishAttach(created.id);
      this.noteSuccess();
    } catch (err) {
      this.handleCloudError(err, vSwitchId);
      if (created && this.state.enis[created.id]?.phase === 'attaching') await this.abandonEni(created.id);
      if (!created) await this.sweepOrphans().catch(() => undefined);
    } finally {
      if (created) this.attachingNow.delete(created.id);
      if (counted) {
        this.creating--;
        this.creatingRoom -= this.perEni - k;
      }
      this.creatingSlots -= k;
    }
    await this.store.save();
    this.kick();
  }

  /** Waits for InUse, then for the link on the node, then marks the ENI ready. */
  private async finishAttach(eniId: string): Promise<void> {
    const e0 = this.state.enis[eniId];
    if (e0?.exclusive) return this.finishExclusiveAttach(eniId);
    const deadline = Date.now() + this.cfg.attachTimeoutMs;
    for (let wait = 100; ; wait = Math.min(wait * 2, 2_000)) {
      await sleep(wait);
      const [c] = await this.cloud.describeEnis({ eniIds: [eniId] });
      if (!c) throw new Error(`ENI ${eniId} disappeared while attaching`);
      if (c.status === 'InUse') break;
      if (c.status !== 'Attaching') throw new Error(`ENI ${eniId} is ${c.status} after attach`);
      if (Date.now() > deadline)
        throw new Error(`ENI ${eniId} still attaching after ${this.cfg.attachTimeoutMs} ms`);
    }
    const e = this.state.enis[eniId];
    if (!e) return;
    await this.configureEni(e, deadline - Date.now());
    e.phase = 'ready';
    await this.store.save();
    this.log.info('ENI ready', { eni: eniId, mac: e.mac, table: e.table });
  }

  /** Gateway and CIDRs from metadata, which can lag the attach (eventual consistency): retried. */
  private async routingOf(e: StoredEni, deadline: number): Promise<Omit<EniRouting, 'mac'>> {
    for (let wait = 50; ; wait = Math.min(wait * 2, 1_000)) {
      try {
        const r = await this.deps.eniRouting(e.mac);
        Object.assign(e, { gateway: r.gateway, cidr: r.cidr, gateway6: r.gateway6, cidr6: r.cidr6 });
        return r;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(wait);
      }
    }
  }

  private async configureEni(e: StoredEni, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + Math.max(timeoutMs, 1_000);
    const routing = await this.routingOf(e, deadline);
    const link = await this.host.ensureEni(
      { mac: e.mac, ...routing },
      Math.max(1_000, deadline - Date.now()),
    );
    e.table = link.table;
  }

  // ---------- exclusive ENIs ----------

  /** A whole ENI for one pod: created, attached, described; the pod side moves the link. */
  private async allocateExclusive(req: AllocateRequest): Promise<Allocation> {
    const key = allocationKey(req.containerId, req.ifname);
    if (this.eniCount() >= this.maxEni) {
      throw new EniIpamError(
        CNI_CODES.tryAgainLater,
        `node is full: all ${this.maxEni} ENIs are in use, none left for an exclusive ENI`,
      );
    }
    const vSwitchId = this.pickVSwitch();
    if (!vSwitchId) throw this.noProgressError();
    this.creating++;
    const token = randomUUID();
    let eniId: string | undefined;
    let counted = true;
    try {
      this.state.createIntents[token] = { vSwitchId, at: Date.now() };
      await this.store.save();
      const created = await this.cloud.createEni({
        vSwitchId,
        securityGroupIds: this.cfg.securityGroupIds,
        tags: {
          ...this.cfg.eniTags,
          [TAG_INSTANCE]: this.deps.instanceId,
          [TAG_MANAGED]: 'weft',
          [TAG_CREATE_TOKEN]: token,
        },
        secondaryIpCount: 0,
        ipv6Count: this.cfg.ipStack === 'dual' ? 1 : 0,
        description: `weft exclusive ENI for ${key}`,
        clientToken: token,
      });
      eniId = created.id;
      this.attachingNow.add(eniId);
      this.state.enis[eniId] = { id: eniId, mac: created.mac, vSwitchId, phase: 'attaching', exclusive: key };
      delete this.state.createIntents[token];
      this.addIps(eniId, 4, [created.primaryIp], created.primaryIp);
      this.addIps(eniId, 6, created.ipv6);
      this.creating--;
      counted = false;
      await this.store.save();
      await this.cloud.attachEni(eniId, this.deps.instanceId);
      await this.finishAttach(eniId);
      const a: Allocation = {
        containerId: req.containerId,
        ifname: req.ifname,
        netns: req.netns,
        network: req.network,
        podNamespace: req.podNamespace,
        podName: req.podName,
        podUid: req.podUid,
        eniId,
        ipv4: created.primaryIp,
        ipv6: created.ipv6[0],
        exclusive: true,
        createdAt: Date.now(),
      };
      for (const ip of [a.ipv4, a.ipv6])
        if (ip) Object.assign(this.state.ips[ip]!, { state: 'allocated', owner: key });
      this.state.allocations[key] = a;
      await this.store.save();
      return a;
    } catch (err) {
      this.handleCloudError(err, vSwitchId);
      if (eniId) await this.abandonEni(eniId);
      await this.store.save();
      if (err instanceof EniIpamError) throw err;
      throw new EniIpamError(
        CNI_CODES.tryAgainLater,
        `no exclusive ENI: ${err instanceof Error ? err.message : String(err)}`,
      );
    } finally {
      if (eniId) this.attachingNow.delete(eniId);
      if (counted) this.creating--;
    }
  }

  private async finishExclusiveAttach(eniId: string): Promise<void> {
    const deadline = Date.now() + this.cfg.attachTimeoutMs;
    for (let wait = 100; ; wait = Math.min(wait * 2, 2_000)) {
      await sleep(wait);
      const [c] = await this.cloud.describeEnis({ eniIds: [eniId] });
      if (c?.status === 'InUse') break;
      if (!c || c.status !== 'Attaching' || Date.now() > deadline) {
        throw new Error(`ENI ${eniId} did not attach (${c?.status ?? 'gone'})`);
      }
    }
    const e = this.state.enis[eniId]!;
    await this.routingOf(e, deadline);
    e.phase = 'ready';
  }

  /** DEL of an exclusive pod: the ENI is detached and deleted (the pod side moved it back first). */
  private async releaseExclusive(key: string): Promise<boolean> {
    const a = this.state.allocations[key]!;
    delete this.state.allocations[key];
    await this.store.save();
    await this.abandonEni(a.eniId);
    await this.store.save();
    this.kick();
    return true;
  }

  /**
   * An ENI we created but could not bring into service: detach it if needed and delete it,
   * so that a failed attempt never leaves a leaked or half-used ENI behind.
   */
  private async abandonEni(eniId: string): Promise<void> {
    try {
      const deadline = Date.now() + this.cfg.attachTimeoutMs;
      for (let wait = 100; ; wait = Math.min(wait * 2, 2_000)) {
        const [c] = await this.cloud.describeEnis({ eniIds: [eniId] });
        if (!c) break;
        if (c.status === 'Available') {
          await this.cloud.deleteEni(eniId);
          break;
        }
        if (c.status === 'InUse') await this.cloud.detachEni(eniId, this.deps.instanceId);
        if (Date.now() > deadline) throw new Error(`ENI ${eniId} stuck in ${c.status}`);
        await sleep(wait);
      }
      this.forgetEni(eniId);
    } catch (err) {
      this.log.warn('could not delete abandoned ENI; the orphan sweep will retry', {
        eni: eniId,
        err: String(err),
      });
    }
  }

  private forgetEni(eniId: string): void {
    for (const r of this.ipsOf(eniId)) {
      if (r.owner) delete this.state.allocations[r.owner];
      delete this.state.ips[r.ip];
    }
    delete this.state.enis[eniId];
    this.runtime.delete(eniId);
  }

  /** Deletes detached ENIs that carry this instance's tag and are not in the records. */
  async sweepOrphans(): Promise<string[]> {
    const tagged = await this.cloud.describeEnis({
      tags: { [TAG_INSTANCE]: this.deps.instanceId },
      status: 'Available',
    });
    const deleted: string[] = [];
    for (const c of tagged) {
      if (c.instanceId || c.tags[TAG_MANAGED] !== 'weft') continue;
      // Between its create and attach calls an ENI of ours is Available too: leave those be.
      if (this.attachingNow.has(c.id)) continue;
      const local = this.state.enis[c.id];
      await this.cloud.deleteEni(c.id).then(
        () => deleted.push(c.id),
        (err: unknown) => this.log.warn('orphan ENI delete failed', { eni: c.id, err: String(err) }),
      );
      if (local) this.forgetEni(c.id);
    }
    // Intents are settled: the ENI they made is either known or deleted.
    this.state.createIntents = {};
    return deleted;
  }

  // ---------- reclaim ----------

  /** Gives idle addresses above max_pool_size back, in batches per ENI. */
  async reclaim(): Promise<number> {
    let excess = this.idleSlots() - this.cfg.maxPoolSize;
    let released = 0;
    const now = Date.now();
    for (const e of this.readyEnis()) {
      const r = this.rt(e.id);
      while (excess > 0 && !r.busy) {
        const old = (family: 4 | 6) =>
          this.ipsOf(e.id)
            .filter(
              (x) =>
                x.family === family &&
                x.state === 'idle' &&
                !x.primary &&
                now - x.idleSince >= this.cfg.idleTimeoutMs,
            )
            .sort((a, b) => a.idleSince - b.idleSince);
        const v4 = old(4);
        const v6 = old(6);
        const k = Math.min(
          excess,
          this.cfg.batchSize,
          v4.length,
          this.cfg.ipStack === 'dual' ? v6.length : Infinity,
        );
        if (k <= 0) break;
        const batch4 = v4.slice(0, k);
        const batch6 = this.cfg.ipStack === 'dual' ? v6.slice(0, k) : [];
        r.busy = true;
        try {
          for (const x of [...batch4, ...batch6]) x.state = 'releasing';
          await this.store.save();
          await this.unassign(e.id, 4, batch4);
          if (batch6.length > 0) await this.unassign(e.id, 6, batch6);
          released += k;
          excess -= k;
        } finally {
          r.busy = false;
        }
        await this.store.save();
      }
    }
    return released;
  }

  private async unassign(eniId: string, family: 4 | 6, recs: StoredIp[]): Promise<void> {
    const ips = recs.map((x) => x.ip);
    try {
      if (family === 4) await this.cloud.unassignIpv4(eniId, ips);
      else await this.cloud.unassignIpv6(eniId, ips);
    } catch (err) {
      if (!(err instanceof CloudApiError && err.code === 'InvalidIp.NotFound')) {
        // Unknown outcome: ask the cloud what is left rather than guess.
        for (const x of recs) x.state = 'idle';
        await this.resyncEni(eniId).catch(() => undefined);
        throw err;
      }
    }
    for (const ip of ips) if (this.state.ips[ip]?.state === 'releasing') delete this.state.ips[ip];
  }

  // ---------- start-up ----------

  /**
   * Loads the records, then makes them agree with the cloud: one DescribeNetworkInterfaces for
   * this instance (paged), plus one tag-filtered call for orphans only when the records say an
   * ENI creation was interrupted. Then the node's links and rules are brought in line.
   */
  async start(): Promise<void> {
    this.state = this.store.load() ?? emptyState();
    const attached = await this.cloud.describeEnis({ instanceId: this.deps.instanceId });
    const ours = attached.filter(
      (c) => c.type !== 'Primary' && (c.tags[TAG_MANAGED] === 'weft' || this.state.enis[c.id]),
    );
    const ourIds = new Set(ours.map((c) => c.id));
    const lostLocal = Object.keys(this.state.enis).filter((id) => !ourIds.has(id));
    for (const c of ours) {
      const local = this.state.enis[c.id];
      if (!local)
        this.state.enis[c.id] = { id: c.id, mac: c.mac, vSwitchId: c.vSwitchId, phase: 'attaching' };
      else if (local.phase === 'detaching') continue;
      this.mergeEniIps(c);
    }
    if (lostLocal.length > 0 || Object.keys(this.state.createIntents).length > 0) {
      await this.sweepOrphans();
      for (const id of Object.keys(this.state.enis)) if (!ourIds.has(id)) this.forgetEni(id);
    }
    // Links and tables on the node: ENIs the cloud reports InUse are configured now.
    for (const c of ours) {
      const e = this.state.enis[c.id]!;
      if (e.exclusive) {
        // Its link lives in the pod's netns; there is nothing to set up on the node.
        if (c.status === 'InUse') e.phase = 'ready';
        else if (c.status === 'Attaching') this.track(this.finishAttach(e.id));
        continue;
      }
      if (c.status === 'InUse') {
        try {
          await this.configureEni(e, this.cfg.attachTimeoutMs);
          e.phase = 'ready';
        } catch (err) {
          this.log.error('ENI not usable on the node', { eni: e.id, err: String(err) });
        }
      } else if (c.status === 'Attaching') {
        this.track(this.finishAttach(e.id).then(() => this.kick()));
      }
    }
    // An exclusive ENI whose pod's DEL did not finish: finish it.
    for (const e of Object.values(this.state.enis)) {
      if (e.exclusive && !this.state.allocations[e.exclusive]) this.track(this.abandonEni(e.id));
    }
    await this.syncPodRules();
    await this.store.save();
    this.started = true;
    this.log.info('ENI pool reconciled', { ...this.status() });
    this.kick();
  }

  /** Rules for every allocation, none for addresses not allocated. */
  private async syncPodRules(): Promise<void> {
    const present = await this.host.listPodRules();
    const want = new Map<string, number>();
    for (const a of Object.values(this.state.allocations)) {
      const table = this.state.enis[a.eniId]?.table;
      if (table === undefined) continue;
      for (const ip of [a.ipv4, a.ipv6]) if (ip) want.set(ip, table);
    }
    const stale = [...present.keys()].filter((ip) => !want.has(ip));
    if (stale.length > 0) await this.host.delPodRules(stale);
    const byTable = new Map<number, string[]>();
    for (const [ip, table] of want) {
      if (present.get(ip) === table) continue;
      byTable.set(table, [...(byTable.get(table) ?? []), ip]);
    }
    for (const [table, ips] of byTable) await this.host.addPodRules(ips, table);
  }

  /** Periodic idle reclaim with jitter, so that nodes do not call the API in lock step. */
  startReclaimLoop(intervalMs: number): void {
    const loop = () => {
      if (this.stopped) return;
      this.reclaimTimer = setTimeout(
        () => {
          // Tracked: a graceful stop waits for an Unassign in flight, so that what the cloud
          // committed is in the records saved at the end (not left as "releasing").
          const run = this.reclaim()
            .catch((err: unknown) => this.log.warn('reclaim failed', { err: String(err) }))
            .finally(loop);
          this.background.add(run);
          void run.finally(() => this.background.delete(run));
        },
        jitter(intervalMs, 0.3),
      );
    };
    loop();
  }
  private reclaimTimer: NodeJS.Timeout | undefined;

  /** Stops timers and waits for operations in flight (their results are recorded). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reclaimTimer);
    clearTimeout(this.retryTimer);
    this.failWaiters(new EniIpamError(CNI_CODES.tryAgainLater, 'ENI daemon is stopping'));
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
    await this.store.save();
  }
}
