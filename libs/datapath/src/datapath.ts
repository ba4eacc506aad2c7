/**
 * The agent's handle on the BPF datapath: loads and pins the programs once, writes endpoints,
 * identities, ipcache and policy into the pinned maps, and attaches the programs per pod. Everything
 * lives in the kernel (pins under pinRoot, attachments on the interfaces): with no agent running,
 * policy keeps being enforced. Endpoint records (what to detach later, maybe from another process)
 * are kept as JSON files in stateDir.
 *
 * Attachment: tcx links where the kernel has tcx (6.6+), else clsact + cls_bpf (see @weft/bpf tc.ts
 * and bpf/README.md). A tcx link lives as long as its pin, `<pinRoot>/links/ep<endpointId>-<hook>`
 * (hook: the interface's ingress or egress). The name is the owner, not the interface: an ifindex is
 * reused, an endpoint id names one pod while it exists; the link itself says which device it is on
 * (and that the device is gone: ifindex 0), so a stale pin is recognised and replaced or removed.
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  attachTc,
  BpfMap,
  BpfObject,
  BpfProgram,
  ctEntry,
  ctKey,
  decodeAddress,
  detachTc,
  detachTcxLink,
  encodeAddress,
  endpointInfo,
  endpointKey,
  ipcacheKey,
  ipcacheValue,
  parseCidr,
  policyKey,
  policyValue,
  queryTc,
  resolveTcMechanism,
  tcModeFromEnv,
  u32Codec,
  WEFT_CFG_F,
  WEFT_EP_F,
  WEFT_POLICY_EXACT_BITS,
  WEFT_VERDICT,
  weftConfig,
  type CtEntry,
  type CtKey,
  type EndpointInfo,
  type EndpointKey,
  type IpcacheKey,
  type IpcacheValue,
  type PolicyKey,
  type PolicyValue,
  type TcDirection,
  type TcMechanism,
  type TcMode,
  type WeftConfig,
} from '@weft/bpf';
import { DatapathEvents } from './events';
import { findBpfObjectDir } from './object-dir';
import {
  compilePeerEntries,
  compilePolicy,
  fromPolicyKey,
  groupByIdentity,
  keyId,
  toPolicyKey,
  type CompiledPolicyEntry,
} from './policy-compile';
import type { EndpointPolicy, IpcacheEntry, PeerPolicyChange, TrafficDirection } from './policy-types';

export const DEFAULT_PIN_ROOT = '/sys/fs/bpf/weft';
export const DEFAULT_STATE_DIR = '/var/lib/weft/datapath';

export interface DatapathOptions {
  /** bpffs folder for pinned maps and programs (default /sys/fs/bpf/weft). */
  pinRoot?: string;
  /** Folder holding from-container.o and to-container.o (default: found, see findBpfObjectDir). */
  objectDir?: string;
  /** Folder for endpoint records (default /var/lib/weft/datapath). */
  stateDir?: string;
  /** Load the objects and re-pin the programs even if pinned ones exist (upgrades). */
  reload?: boolean;
  /**
   * How programs are attached: tcx links, clsact filters, or auto (tcx where the kernel has it).
   * Default: $WEFT_TC_MODE, else auto.
   */
  tcMode?: TcMode;
}

export interface EndpointSpec {
  endpointId: number;
  identity: number;
  /** The pod's addresses (IPv4 and/or IPv6). */
  ips: string[];
  mac?: string;
  /** veth pods: the host-side veth, by name or index. */
  ifname?: string;
  ifindex?: number;
  /** The netns file the host-side veth lives in, when not the caller's (nested setups, tests). */
  hostNetns?: string;
  /** IPvlan/ENI pods (no host veth): the pod interface inside the pod's netns. */
  pod?: { netnsPath: string; ifname: string };
  /** Written before the programs are attached, so the pod never runs unpoliced. */
  policy?: EndpointPolicy;
}

/** What stateDir keeps per endpoint. */
export interface EndpointRecord {
  endpointId: number;
  identity: number;
  ips: string[];
  mac?: string;
  /** The interface the programs are on and the netns it is in (undefined: the agent's). */
  ifindex: number;
  ifname?: string;
  netns?: string;
  inPodNetns: boolean;
  ingressEnforced: boolean;
  egressEnforced: boolean;
  /** How the programs are attached (absent in records from before tcx support: clsact). */
  tcMechanism?: TcMechanism;
  /** tcx: the pinned links, by hook of the interface. */
  tcxLinks?: { ingress: string; egress: string };
}

export interface PolicyCounter extends CompiledPolicyEntry {
  /** The port block as a range (null port = any). */
  portLow: number;
  portHigh: number;
  packets: bigint;
  bytes: bigint;
}

export class DatapathError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'DatapathError';
  }
}

const PROGRAMS = { fromContainer: 'from_container', toContainer: 'to_container' } as const;
/** Under pinRoot: the tcx links, `ep<endpointId>-<ingress|egress>`. */
const LINKS_DIR = 'links';

function u32(name: string, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
    throw new DatapathError(`${name} must be a u32, got ${n}`, 'EINVAL');
}

function macBytes(mac: string | undefined): Buffer {
  if (!mac) return Buffer.alloc(6);
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) throw new DatapathError(`bad MAC ${mac}`, 'EINVAL');
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

/** One endpoint's policy keys: peer identity -> keyId -> key (and its verdict once known). */
type EndpointKeyIndex = Map<number, Map<string, { key: PolicyKey; verdict?: number }>>;

function indexedKeys(byIdentity: EndpointKeyIndex): PolicyKey[] {
  return [...byIdentity.values()].flatMap((held) => [...held.values()].map((h) => h.key));
}

function indexKey(byIdentity: EndpointKeyIndex, key: PolicyKey): void {
  const e = fromPolicyKey(key, 0);
  let held = byIdentity.get(e.identity);
  if (!held) byIdentity.set(e.identity, (held = new Map()));
  held.set(keyId(e), { key });
}

function hostPrefix(ip: string): string {
  const { family } = encodeAddress(ip);
  return `${ip}/${family === 2 ? 32 : 128}`;
}

export class Datapath {
  readonly pinRoot: string;
  readonly stateDir: string;
  readonly tcMode: TcMode;
  private readonly endpointsMap: BpfMap<EndpointKey, EndpointInfo>;
  private readonly ipcache: BpfMap<IpcacheKey, IpcacheValue>;
  private readonly policy: BpfMap<PolicyKey, PolicyValue>;
  private policyIndex?: Map<number, EndpointKeyIndex>;
  /** Endpoints whose policy keys this process wrote (their index entries are exact). */
  private readonly writtenHere = new Set<number>();
  private indexBuiltAtMs = 0;
  /** Records this process read or wrote (the files stay the truth across restarts). */
  private readonly records = new Map<number, EndpointRecord>();
  private readonly conntrack: BpfMap<CtKey, CtEntry>;
  private readonly config: BpfMap<number, WeftConfig>;
  private readonly fromContainer: BpfProgram;
  private readonly toContainer: BpfProgram;

  private constructor(opts: DatapathOptions) {
    this.pinRoot = opts.pinRoot ?? DEFAULT_PIN_ROOT;
    this.stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
    this.tcMode = opts.tcMode ?? tcModeFromEnv();
    mkdirSync(this.pinRoot, { recursive: true });
    mkdirSync(join(this.stateDir, 'endpoints'), { recursive: true });
    const pinned = (name: string) => join(this.pinRoot, name);
    const programsPinned =
      existsSync(pinned(PROGRAMS.fromContainer)) && existsSync(pinned(PROGRAMS.toContainer));
    if (opts.reload || !programsPinned || !existsSync(pinned('weft_policy'))) {
      const dir = opts.objectDir ?? findBpfObjectDir();
      for (const [file, prog] of [
        ['from-container.o', PROGRAMS.fromContainer],
        ['to-container.o', PROGRAMS.toContainer],
      ] as const) {
        const obj = BpfObject.load(join(dir, file), { pinRoot: this.pinRoot });
        try {
          obj.program(prog).pin(pinned(prog));
        } finally {
          obj.close();
        }
      }
    }
    this.fromContainer = BpfProgram.openPinned(pinned(PROGRAMS.fromContainer));
    this.toContainer = BpfProgram.openPinned(pinned(PROGRAMS.toContainer));
    this.endpointsMap = BpfMap.openPinned(pinned('weft_endpoints'), endpointKey, endpointInfo);
    this.ipcache = BpfMap.openPinned(pinned('weft_ipcache'), ipcacheKey, ipcacheValue);
    this.policy = BpfMap.openPinned(pinned('weft_policy'), policyKey, policyValue);
    this.conntrack = BpfMap.openPinned(pinned('weft_conntrack'), ctKey, ctEntry);
    this.config = BpfMap.openPinned(pinned('weft_config'), u32Codec, weftConfig);
  }

  /** Opens (loading and pinning on first use) the datapath under opts.pinRoot. */
  static open(opts: DatapathOptions = {}): Datapath {
    return new Datapath(opts);
  }

  /**
   * Writes the endpoint, its identity, its addresses' ipcache entries and its policy, then attaches
   * from-container/to-container. Idempotent: attaching the same spec again yields the same state.
   */
  attachEndpoint(spec: EndpointSpec): EndpointRecord {
    u32('endpointId', spec.endpointId);
    u32('identity', spec.identity);
    if (spec.endpointId === 0) throw new DatapathError('endpointId 0 is reserved', 'EINVAL');
    if (!spec.ips.length) throw new DatapathError('an endpoint needs at least one IP', 'EINVAL');
    const inPod = !!spec.pod;
    if (!inPod && spec.ifname === undefined && spec.ifindex === undefined) {
      throw new DatapathError(
        'attachEndpoint needs ifname/ifindex (host veth) or pod {netnsPath, ifname}',
        'EINVAL',
      );
    }
    const netns = spec.pod?.netnsPath ?? spec.hostNetns;
    const iface: number | string = spec.pod?.ifname ?? spec.ifindex ?? spec.ifname!;
    const ifindex = queryTc(iface, 'ingress', { netns }).ifindex;
    const previous = this.readRecord(spec.endpointId);
    if (previous) this.adoptIndexEntry(spec.endpointId);
    const mechanism = resolveTcMechanism(this.tcMode);
    const links = mechanism === 'tcx' ? this.linkPins(spec.endpointId) : undefined;
    const policy =
      spec.policy ?? (previous ? undefined : { ingressEnforced: false, egressEnforced: false, entries: [] });

    const record: EndpointRecord = {
      endpointId: spec.endpointId,
      identity: spec.identity,
      ips: spec.ips.map((ip) => parseCidr(ip).cidr.split('/')[0]!),
      mac: spec.mac,
      ifindex,
      ifname: spec.pod?.ifname ?? spec.ifname,
      netns,
      inPodNetns: inPod,
      ingressEnforced: policy ? policy.ingressEnforced : previous!.ingressEnforced,
      egressEnforced: policy ? policy.egressEnforced : previous!.egressEnforced,
      tcMechanism: mechanism,
      ...(links ? { tcxLinks: links } : {}),
    };
    if (policy) this.writePolicyEntries(spec.endpointId, policy);
    this.writeEndpointEntries(record, macBytes(spec.mac));
    this.upsertIpcache(record.ips.map((ip) => ({ cidr: hostPrefix(ip), identity: spec.identity })));
    // Addresses the endpoint no longer has (a re-attach with other IPs) are forgotten.
    for (const stale of previous?.ips.filter((ip) => !record.ips.includes(ip)) ?? [])
      this.forgetAddress(stale, spec.endpointId);
    this.writeRecord(record);

    // Host veth: tc ingress sees what the pod sends. Inside the pod: tc egress does.
    const [leaving, entering]: [TcDirection, TcDirection] = inPod
      ? ['egress', 'ingress']
      : ['ingress', 'egress'];
    // The pin paths go along in clsact mode too: a link left from an earlier tcx attach is removed.
    const pins = this.linkPins(spec.endpointId);
    attachTc(ifindex, leaving, this.fromContainer, { netns, mode: mechanism, pinPath: pins[leaving] });
    attachTc(ifindex, entering, this.toContainer, { netns, mode: mechanism, pinPath: pins[entering] });
    return record;
  }

  /**
   * Removes the programs, map entries, conntrack entries and record of an endpoint. Its link pins go
   * too, also when the interface is already gone (or the record lost). false: unknown.
   */
  detachEndpoint(endpointId: number): boolean {
    const record = this.readRecord(endpointId);
    if (record) this.detachPrograms(record);
    const stalePins = this.removeLinkPins(endpointId);
    // The map is the truth (the record may be missing): every address it has for the endpoint goes.
    const ips = new Set(record?.ips ?? []);
    for (const [key, info] of this.endpointsMap.entries()) {
      if (info.endpoint_id === endpointId) ips.add(decodeAddress(key.family, key.addr));
    }
    for (const ip of ips) this.forgetAddress(ip, endpointId);
    // Keys of an endpoint this process wrote are all in the index; anyone else's need the walk.
    const indexed = this.writtenHere.has(endpointId) ? this.policyIndex?.get(endpointId) : undefined;
    const keys = indexed
      ? indexedKeys(indexed)
      : this.policyKeysOf(endpointId);
    this.policy.deleteMany(keys);
    this.policyIndex?.delete(endpointId);
    this.writtenHere.delete(endpointId);
    this.records.delete(endpointId);
    this.conntrack.deleteMany([...this.conntrack.keys()].filter((k) => k.endpoint_id === endpointId));
    rmSync(this.recordPath(endpointId), { force: true });
    return !!record || ips.size > 0 || stalePins > 0;
  }

  /**
   * Replaces the endpoint's policy; flows already open stay open, new ones see the new rules.
   * `change` (what the policy engine's delta says): only entries of its peer identities differ
   * from the policy written last, so only those are compiled and compared.
   */
  updatePolicy(endpointId: number, policy: EndpointPolicy, change?: PeerPolicyChange): void {
    const record = this.records.get(endpointId) ?? this.readRecord(endpointId);
    if (!record) throw new DatapathError(`endpoint ${endpointId} is not attached`, 'ENOENT');
    const sameEnforcement =
      record.ingressEnforced === policy.ingressEnforced && record.egressEnforced === policy.egressEnforced;
    this.writePolicyEntries(endpointId, policy, sameEnforcement ? change : undefined);
    if (sameEnforcement) return;
    record.ingressEnforced = policy.ingressEnforced;
    record.egressEnforced = policy.egressEnforced;
    this.writeEndpointEntries(record, macBytes(record.mac));
    this.writeRecord(record);
  }

  upsertIpcache(entries: IpcacheEntry[]): void {
    for (const e of entries) {
      u32('identity', e.identity);
      this.ipcache.set(this.ipcacheKeyOf(e.cidr), { identity: e.identity, flags: 0 });
    }
  }

  /** Returns how many of the prefixes were present. */
  deleteIpcache(cidrs: string[]): number {
    return this.ipcache.deleteMany(cidrs.map((c) => this.ipcacheKeyOf(c)));
  }

  /** The identity the datapath resolves for an address (longest prefix), or undefined (world). */
  lookupIpcache(ip: string): number | undefined {
    return this.ipcache.get(this.ipcacheKeyOf(ip))?.identity;
  }

  readPolicyCounters(endpointId: number): PolicyCounter[] {
    const out: PolicyCounter[] = [];
    for (const key of indexedKeys(this.indexOf(endpointId))) {
      const value = this.policy.get(key);
      if (!value) continue;
      const e = fromPolicyKey(key, value.verdict);
      const size = e.port ? 2 ** (16 - e.port.bits) : 0;
      out.push({
        direction: e.direction,
        identity: e.identity,
        protocol: e.protocol,
        port: e.port,
        verdict: e.verdict,
        portLow: e.port ? e.port.base : 0,
        portHigh: e.port ? e.port.base + size - 1 : 0,
        packets: value.packets,
        bytes: value.bytes,
      });
    }
    return out;
  }

  /** Drop events always; policy verdicts (new flows allowed) and per-packet traces when enabled. */
  setEventConfig(opts: { verdicts?: boolean; trace?: boolean }): void {
    const flags =
      (opts.verdicts ? WEFT_CFG_F.VERDICT_EVENTS : 0) | (opts.trace ? WEFT_CFG_F.TRACE_EVENTS : 0);
    this.config.set(0, { flags });
  }

  /**
   * The events ring buffer as an async iterator. There is one ring: two readers share its records.
   * Close it (or break out of `for await`) when done.
   */
  events(opts: { ref?: boolean } = {}): DatapathEvents {
    return new DatapathEvents(join(this.pinRoot, 'weft_events'), opts);
  }

  listEndpoints(): EndpointRecord[] {
    const dir = join(this.stateDir, 'endpoints');
    return readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as EndpointRecord);
  }

  /** Closes this process's fds. Pins and attachments stay: enforcement goes on without us. */
  close(): void {
    for (const m of [this.endpointsMap, this.ipcache, this.policy, this.conntrack, this.config]) m.close();
    this.fromContainer.close();
    this.toContainer.close();
  }

  /** Detaches every recorded endpoint and removes every pin under pinRoot (uninstall, tests). */
  static destroy(opts: DatapathOptions = {}): void {
    const pinRoot = opts.pinRoot ?? DEFAULT_PIN_ROOT;
    const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
    if (existsSync(pinRoot) && existsSync(join(pinRoot, PROGRAMS.fromContainer))) {
      const dp = Datapath.open({ ...opts, pinRoot, stateDir });
      try {
        for (const r of dp.listEndpoints()) dp.detachEndpoint(r.endpointId);
      } finally {
        dp.close();
      }
    }
    if (existsSync(pinRoot)) {
      // Unpinning a link detaches it (nothing else holds it): links/ goes first, then maps/programs.
      const links = join(pinRoot, LINKS_DIR);
      if (existsSync(links)) {
        for (const f of readdirSync(links)) {
          try {
            detachTcxLink(join(links, f));
          } catch {
            /* not a link: removed below all the same */
          }
        }
        rmSync(links, { recursive: true, force: true });
      }
      for (const f of readdirSync(pinRoot)) unlinkSync(join(pinRoot, f));
      rmSync(pinRoot, { recursive: true, force: true });
    }
    rmSync(join(stateDir, 'endpoints'), { recursive: true, force: true });
  }

  /**
   * Where the endpoint's tcx links are (or would be) pinned, by hook of its interface:
   * `<pinRoot>/links/ep<endpointId>-ingress|egress`.
   */
  linkPins(endpointId: number): { ingress: string; egress: string } {
    const dir = join(this.pinRoot, LINKS_DIR);
    return { ingress: join(dir, `ep${endpointId}-ingress`), egress: join(dir, `ep${endpointId}-egress`) };
  }

  // --- internals ---

  /** Detaches and unpins whatever is pinned for the endpoint (stale or not); how many pins went. */
  private removeLinkPins(endpointId: number): number {
    let removed = 0;
    for (const pin of Object.values(this.linkPins(endpointId))) {
      if (!existsSync(pin)) continue;
      try {
        detachTcxLink(pin);
      } catch {
        rmSync(pin, { force: true }); // not a link (never ours to run), but it sits at our name
      }
      removed++;
    }
    return removed;
  }

  private detachPrograms(r: EndpointRecord): void {
    // tcx: the links know their device (or that it is gone); the pins go in removeLinkPins.
    if (r.tcMechanism === 'tcx') {
      for (const pin of Object.values(r.tcxLinks ?? {})) {
        try {
          detachTcxLink(pin);
        } catch {
          /* not a link: removeLinkPins clears weft's own names */
        }
      }
      return;
    }
    const [leaving, entering]: [TcDirection, TcDirection] = r.inPodNetns
      ? ['egress', 'ingress']
      : ['ingress', 'egress'];
    const iface = r.ifname ?? r.ifindex;
    try {
      // The interface may be gone (pod deleted) or its name reused: only touch the one we attached.
      if (queryTc(iface, leaving, { netns: r.netns }).ifindex !== r.ifindex) return;
    } catch {
      return; // interface or netns gone: its filters went with it
    }
    detachTc(r.ifindex, leaving, { netns: r.netns, mode: 'clsact' });
    detachTc(r.ifindex, entering, { netns: r.netns, mode: 'clsact' });
  }

  private writeEndpointEntries(r: EndpointRecord, mac: Buffer): void {
    const flags =
      (r.ingressEnforced ? WEFT_EP_F.INGRESS_ENFORCED : 0) |
      (r.egressEnforced ? WEFT_EP_F.EGRESS_ENFORCED : 0) |
      (r.inPodNetns ? WEFT_EP_F.IN_POD_NETNS : 0);
    for (const ip of r.ips) {
      const { family, addr } = encodeAddress(ip);
      this.endpointsMap.set(
        { family, addr },
        { endpoint_id: r.endpointId, identity: r.identity, ifindex: r.ifindex, flags, mac },
      );
    }
  }

  /**
   * Writes the new entries (keeping counters of unchanged ones), then deletes the stale ones.
   * With `change`, entries of other peer identities are known to be unchanged and left alone.
   */
  private writePolicyEntries(endpointId: number, policy: EndpointPolicy, change?: PeerPolicyChange): void {
    const wanted = change ? compilePeerEntries(policy, change) : groupByIdentity(compilePolicy(policy));
    const have = this.indexOf(endpointId);
    this.writtenHere.add(endpointId);
    const stale: PolicyKey[] = [];
    for (const identity of change?.peers ?? new Set([...have.keys(), ...wanted.keys()])) {
      const want = wanted.get(identity);
      let held = have.get(identity);
      for (const [id, e] of want ?? []) {
        const verdict =
          e.verdict === 'deny' ? WEFT_VERDICT.WEFT_VERDICT_DENY : WEFT_VERDICT.WEFT_VERDICT_ALLOW;
        if (!held) have.set(identity, (held = new Map()));
        const h = held.get(id);
        // Only a key that exists exactly may be skipped (a trie lookup would answer with a broader
        // entry about to be deleted as stale); unchanged entries keep their counters.
        if (h) {
          h.verdict ??= this.policy.get(h.key)?.verdict;
          if (h.verdict === verdict) continue;
        }
        const key = toPolicyKey(endpointId, e);
        this.policy.set(key, { packets: 0n, bytes: 0n, verdict });
        held.set(id, { key, verdict });
      }
      if (!held) continue;
      for (const [id, h] of held) {
        if (want?.has(id)) continue;
        stale.push(h.key);
        held.delete(id);
      }
      if (held.size === 0) have.delete(identity);
    }
    this.policy.deleteMany(stale);
  }

  /**
   * The policy keys of one endpoint by peer identity, from an index built by one walk of the map on
   * first use: an update then costs what the endpoint has, not what the node has (a walk is one
   * syscall per key). Only this process writes the endpoints it attached, so the index stays true
   * for them; detach walks the map again, since weft-cni may have written a degraded endpoint the
   * index predates.
   */
  private indexOf(endpointId: number): EndpointKeyIndex {
    if (!this.policyIndex) {
      this.policyIndex = new Map();
      this.indexBuiltAtMs = Date.now() - 1000; // mtimes are coarse: err towards walking again
      for (const key of this.policyKeysOf()) indexKey(this.indexEntry(key.endpoint_id), key);
    }
    return this.indexEntry(endpointId);
  }

  /**
   * An endpoint attached by another process (weft-cni in degraded mode) after the index was built
   * has keys the index lacks: walk the map once for it before this process takes it over.
   */
  private adoptIndexEntry(endpointId: number): void {
    if (!this.policyIndex || this.writtenHere.has(endpointId)) return;
    let mtimeMs: number;
    try {
      mtimeMs = statSync(this.recordPath(endpointId)).mtimeMs;
    } catch {
      return;
    }
    if (mtimeMs < this.indexBuiltAtMs) return;
    const byIdentity: EndpointKeyIndex = new Map();
    for (const key of this.policyKeysOf(endpointId)) indexKey(byIdentity, key);
    this.policyIndex.set(endpointId, byIdentity);
  }

  private indexEntry(endpointId: number): EndpointKeyIndex {
    let m = this.policyIndex!.get(endpointId);
    if (!m) this.policyIndex!.set(endpointId, (m = new Map()));
    return m;
  }

  /** Policy keys in the map (of one endpoint, or all), by walking it. */
  private policyKeysOf(endpointId?: number): PolicyKey[] {
    return [...this.policy.keys()].filter(
      (k) =>
        (endpointId === undefined || k.endpoint_id === endpointId) && k.prefixlen >= WEFT_POLICY_EXACT_BITS,
    );
  }

  private forgetAddress(ip: string, endpointId: number): void {
    const { family, addr } = encodeAddress(ip);
    const info = this.endpointsMap.get({ family, addr });
    if (info && info.endpoint_id !== endpointId) return; // the address moved to another endpoint
    this.endpointsMap.delete({ family, addr });
    this.ipcache.delete(this.ipcacheKeyOf(hostPrefix(ip)));
  }

  private ipcacheKeyOf(cidr: string): IpcacheKey {
    const p = parseCidr(cidr);
    return { prefixlen: 32 + p.prefixLength, family: p.family, addr: p.addr };
  }

  private recordPath(endpointId: number): string {
    return join(this.stateDir, 'endpoints', `${endpointId}.json`);
  }

  private readRecord(endpointId: number): EndpointRecord | undefined {
    try {
      const r = JSON.parse(readFileSync(this.recordPath(endpointId), 'utf8')) as EndpointRecord;
      this.records.set(endpointId, r);
      return r;
    } catch {
      this.records.delete(endpointId);
      return undefined;
    }
  }

  private writeRecord(r: EndpointRecord): void {
    const file = this.recordPath(r.endpointId);
    writeFileSync(`${file}.tmp`, JSON.stringify(r, null, 2));
    renameSync(`${file}.tmp`, file);
    this.records.set(r.endpointId, r);
  }
}

export type { TrafficDirection };
