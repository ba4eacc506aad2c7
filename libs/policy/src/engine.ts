import type { EndpointPolicy, IpcacheEntry, PeerPolicyChange, PolicyEntry } from '@weft/datapath';
import {
  compilePolicy,
  protocolNumber,
  type CompiledPart,
  type CompiledPolicy,
  type CompiledPort,
  type CompiledRule,
  type PolicyWarning,
} from './compile';
import { PolicyValidationError } from './errors';
import { IdentityAllocator, RESERVED_IDENTITY, RESERVED_LABELS, type PersistedIdentity } from './identity';
import {
  cidrContainsCidr,
  cidrContainsIp,
  formatCidr,
  formatIp,
  hostCidr,
  parseCidr,
  parseIp,
  type Cidr,
  type IpAddress,
} from './ip';
import { cidrLabel, podIdentityLabels, reservedLabel, type LabelMap } from './labels';
import { podKey, type AnyPolicy, type Namespace, type Pod } from './model';
import { LabelIndex, type Selector } from './selector';
import { traceFlow, type TraceResult, type TraceView } from './trace';

/** What one change did: the endpoints whose policy changed and the ipcache edits. */
export interface PolicyDelta<Handle = unknown> {
  /** New or changed endpoint policies by `namespace/name` (shared, treat as read-only). */
  readonly endpoints: Map<string, EndpointPolicy>;
  /** Endpoints that are gone. */
  removedEndpoints: string[];
  /**
   * For some endpoints in `endpoints`: the change is confined to these peers' entries (same
   * enforcement, every other entry the same), so a writer may rewrite only those. An endpoint not
   * listed needs its whole policy compared.
   */
  readonly changedPeers: Map<string, PeerPolicyChange>;
  /**
   * Every endpoint of `endpoints` with its policy, its entry of `changedPeers` and the handle bound
   * to it (`bindEndpoint`): a writer's loop over thousands of endpoints without a lookup of its own.
   */
  forEachEndpoint(fn: EndpointVisitor<Handle>): void;
  /** New endpoints and endpoints whose own identity changed (for the endpoints map). */
  endpointIdentities: Map<string, number>;
  ipcache: { upserted: IpcacheEntry[]; removed: string[] };
  identities: { added: number[]; removed: number[] };
}

export type EndpointVisitor<Handle> = (
  policy: EndpointPolicy,
  change: PeerPolicyChange | undefined,
  handle: Handle | undefined,
  key: string,
) => void;

export interface PolicyEngineOptions {
  /** Only pods on this node are endpoints (all pods still get identities and ipcache entries). */
  nodeName?: string;
  /** Identities persisted by a previous run (`identitySnapshot()`), so numbers stay stable. */
  identities?: Iterable<PersistedIdentity>;
  /**
   * How long a pod identity no pod holds any more stays allocated (default 0: released at once).
   * Releasing an identity, and allocating it again, rewrites the entries of every endpoint whose
   * policy names it; a pod relabelled back, or a rolling update's new pods, find it still there.
   * An identity without pods has no ipcache entry, so no packet carries it meanwhile. Lingering
   * identities go with `releaseExpiredIdentities`.
   */
  identityReleaseDelayMs?: number;
  /** The clock of that delay (ms; default Date.now). */
  now?: () => number;
}

/** Mutations without recomputation, for `transaction`. */
export interface PolicyWriter {
  upsertNamespace(ns: Namespace): void;
  deleteNamespace(name: string): void;
  upsertPod(pod: Pod): void;
  deletePod(namespace: string, name: string): void;
  upsertPolicy(policy: AnyPolicy): void;
  deletePolicy(key: string): void;
  /** Releases the lingering identities whose delay has passed by `now` (default: the clock's now). */
  releaseExpiredIdentities(now?: number): void;
}

export interface PolicyStatus {
  key: string;
  kind: AnyPolicy['kind'];
  namespace?: string;
  /** Endpoints (local pods) the policy selects. */
  selectedEndpoints: number;
  /** Things accepted but not enforced (L7 rules, toFQDNs). */
  warnings: PolicyWarning[];
}

export interface EndpointStatus {
  key: string;
  identity: number;
  labels: string[];
  policy: EndpointPolicy;
  /** Policies selecting the endpoint. */
  policies: string[];
  /** An L7 rule applies to this endpoint and only its L4 part is enforced. */
  l7NotEnforced: boolean;
}

interface PodRecord {
  pod: Pod;
  key: string;
  addrs: IpAddress[];
  identity: number;
  endpoint: boolean;
  portsKey: string;
  /** The endpoint's current result (on the record: a change can reach thousands of endpoints). */
  result?: Computed;
  /** In dirtyEndpoints this flush. */
  dirty: boolean;
  /** What the caller bound to this endpoint (bindEndpoint). */
  handle: unknown;
}

interface IdentityRecord {
  id: number;
  labels: LabelMap;
  /** The pods of this identity, by key (their current records). */
  pods: Map<string, PodRecord>;
  /** `${protocol}/${name}` → port → number of pods of this identity declaring it. */
  namedPorts: Map<string, Map<number, number>>;
  /** Its endpoints' results (none: recompute). */
  cache?: PolicyCache;
}

interface PolicyCache {
  needsOwnPorts: boolean;
  partsKey: string;
  /** By the pods' ports key ('' when no ingress rule names a port). */
  byPorts: Map<string, CachedResult>;
}

interface CachedResult {
  computed: Computed;
  /** `${partsKey}|${portsKey}`: identities with the same one share results within a flush. */
  shared: string;
}

interface SelectorEntry {
  selector: Selector;
  matches: Set<number>;
  refs: number;
  fresh: boolean;
  subjectOf: Set<CompiledPart>;
  peerOf: Set<CompiledPart>;
}

/** A live part's selector entries, held so that builds and marks look nothing up by key. */
interface PartSelectors {
  subject: SelectorEntry;
  /** Per rule of the part, its peers' entries in order. */
  peers: SelectorEntry[][];
}

interface PrefixRecord {
  cidr: Cidr;
  refs: number;
  podRefs: number;
  /** CIDR identity of addresses outside the cluster in this prefix (not for /0: that is world). */
  identity?: number;
}

interface PatchedResult {
  next: Computed;
  /** What the patch changed; null: nothing. */
  change: PeerPolicyChange | null;
}

interface Computed {
  policy: RunPolicy;
  /** The container ports named ingress ports were resolved against. */
  ownPorts: Pod['ports'];
  l7: boolean;
  /**
   * The entries in runs, each of one packed group (direction, verdict, protocol, ports) and
   * ascending by identity, the runs in ascending group order; runKeys[i] is runs[i]'s group. A
   * patch copies only the runs holding a changed peer and shares the rest with the result it
   * patched: a named-port change patches a hundred results, and copying each whole one was most
   * of the change's time and of what the next scavenges had to copy.
   */
  runKeys: number[];
  runs: PolicyEntry[][];
  /**
   * Each run's first and last identity, in pairs: a patch finds the runs a peer may be in without
   * reading their entries (each a separate object, so mostly a cache miss on a large heap).
   */
  runBounds: number[];
}

const EMPTY_PARTS: ReadonlySet<CompiledPart> = new Set();
const WORLD_PREFIXES = ['0.0.0.0/0', '::/0'];

function portsKeyOf(pod: Pod): string {
  return pod.ports
    .map((p) => `${p.name ?? ''}/${p.protocol}/${p.containerPort}`)
    .sort()
    .join(',');
}

/**
 * The policy repository: namespaces, pods and policies in; per-endpoint datapath policy and the
 * ipcache out, recomputed incrementally. Every mutation returns the delta it caused; `transaction`
 * batches mutations into one recomputation (what a bulk load or a resync should use).
 */
export class PolicyEngine<Handle = unknown> {
  private readonly nodeName: string | undefined;
  private readonly allocator: IdentityAllocator;
  private readonly identityReleaseDelayMs: number;
  private readonly now: () => number;
  /** Pod identities no pod holds, kept by one reference of their own until the time given. */
  private readonly lingering = new Map<number, number>();

  // desired state
  private readonly namespaces = new Map<string, Namespace>();
  private readonly pods = new Map<string, PodRecord>();
  private readonly podsByNamespace = new Map<string, Set<string>>();
  private readonly policies = new Map<string, CompiledPolicy>();

  // derived state
  private readonly universe = new Map<number, IdentityRecord>();
  private readonly index = new LabelIndex();
  private readonly selectors = new Map<string, SelectorEntry>();
  private readonly partsByIdentity = new Map<number, Set<CompiledPart>>();
  /** Each live part's entries (a part holds a reference on each, so they stay the same objects). */
  private readonly partSelectors = new Map<CompiledPart, PartSelectors>();
  /** Parts with egress rules on named ports, by the peer selector those rules name... */
  private readonly namedEgressByPeer = new Map<string, Set<CompiledPart>>();
  /** ...and those whose named-port egress rules allow any peer. */
  private readonly namedEgressAnyPeer = new Set<CompiledPart>();
  private readonly namedPortIdentities = new Map<string, Set<number>>();
  private readonly prefixes = new Map<string, PrefixRecord>();
  private readonly ipOwner = new Map<string, string>();
  private readonly ipcacheTable = new Map<string, number>();

  // pending work (cleared by flush)
  private readonly pendingPolicies = new Map<string, CompiledPolicy | null>();
  private freshSelectors: SelectorEntry[] = [];
  private readonly dirtyPods = new Set<string>();
  private readonly changedPrefixes = new Set<string>();
  private readonly podRelevanceChanged = new Set<string>();
  private readonly universeBefore = new Map<number, LabelMap | undefined>();
  private readonly touchedCidrs = new Set<string>(WORLD_PREFIXES);
  private readonly namedPortsChanged = new Set<number>();
  /** Identities whose set of selecting policies changed: rebuild their entries. */
  private readonly dirtyIds = new Set<number>();
  /** Identities whose peers changed (only entries for `changedPeers` need redoing). */
  private readonly patchIds = new Set<number>();
  /** Identities that joined/left selectors or whose named ports changed in this flush. */
  private readonly changedPeers = new Set<number>();
  /** Endpoints to recompute, with their records (the hot loop of a change needs no lookups). */
  private readonly dirtyEndpoints: PodRecord[] = [];
  private readonly removedEndpoints = new Set<string>();
  private readonly identityChanged = new Set<string>();
  private readonly handles = new Map<string, Handle>();
  private depth = 0;

  constructor(options: PolicyEngineOptions = {}) {
    this.nodeName = options.nodeName;
    this.allocator = new IdentityAllocator(options.identities);
    this.identityReleaseDelayMs = options.identityReleaseDelayMs ?? 0;
    this.now = options.now ?? Date.now;
    for (const [id, label] of RESERVED_LABELS) this.addToUniverse(id, new Map([[label, '']]));
    this.universeBefore.clear();
  }

  // ------------------------------------------------------------------ public mutations

  upsertNamespace(ns: Namespace): PolicyDelta<Handle> {
    return this.run((w) => w.upsertNamespace(ns));
  }

  deleteNamespace(name: string): PolicyDelta<Handle> {
    return this.run((w) => w.deleteNamespace(name));
  }

  upsertPod(pod: Pod): PolicyDelta<Handle> {
    return this.run((w) => w.upsertPod(pod));
  }

  deletePod(namespace: string, name: string): PolicyDelta<Handle> {
    return this.run((w) => w.deletePod(namespace, name));
  }

  upsertPolicy(policy: AnyPolicy): PolicyDelta<Handle> {
    return this.run((w) => w.upsertPolicy(policy));
  }

  /** `key` as `policyKey()` makes it: `NetworkPolicy/ns/name`, `CiliumClusterwideNetworkPolicy/name`, ... */
  deletePolicy(key: string): PolicyDelta<Handle> {
    return this.run((w) => w.deletePolicy(key));
  }

  /** Lingering identities (identityReleaseDelayMs) whose delay has passed go; see PolicyWriter. */
  releaseExpiredIdentities(now?: number): PolicyDelta<Handle> {
    return this.run((w) => w.releaseExpiredIdentities(now));
  }

  /** When the next lingering identity is due for release (the clock's ms), if any lingers. */
  nextIdentityRelease(): number | undefined {
    let next: number | undefined;
    for (const due of this.lingering.values()) if (next === undefined || due < next) next = due;
    return next;
  }

  /**
   * Binds the caller's object to an endpoint by `namespace/name` (undefined: unbinds), before or
   * after the pod is known; every delta's `forEachEndpoint` hands it back with the endpoint.
   */
  bindEndpoint(key: string, handle: Handle | undefined): void {
    if (handle === undefined) this.handles.delete(key);
    else this.handles.set(key, handle);
    const rec = this.pods.get(key);
    if (rec) rec.handle = handle;
  }

  /** Several mutations, one recomputation; returns the combined delta. */
  transaction(fn: (writer: PolicyWriter) => void): PolicyDelta<Handle> {
    return this.run(fn);
  }

  private run(fn: (writer: PolicyWriter) => void): PolicyDelta<Handle> {
    this.depth++;
    try {
      fn(this.writer);
    } finally {
      this.depth--;
    }
    return this.depth === 0 ? this.flush() : new CollectedDelta<Handle>();
  }

  private readonly writer: PolicyWriter = {
    upsertNamespace: (ns) => {
      const prev = this.namespaces.get(ns.name);
      this.namespaces.set(ns.name, { name: ns.name, labels: { ...ns.labels } });
      if (!prev || !sameLabels(prev.labels, ns.labels))
        this.podsByNamespace.get(ns.name)?.forEach((k) => this.dirtyPods.add(k));
    },
    deleteNamespace: (name) => {
      if (!this.namespaces.delete(name)) return;
      this.podsByNamespace.get(name)?.forEach((k) => this.dirtyPods.add(k));
    },
    upsertPod: (pod) => this.stagePod(pod),
    deletePod: (namespace, name) => {
      const key = podKey({ namespace, name });
      if (this.pods.has(key)) this.dirtyPods.add(key);
      this.stagedPods.set(key, null);
    },
    upsertPolicy: (policy) => {
      const compiled = compilePolicy(policy);
      this.pendingPolicies.set(compiled.key, compiled);
    },
    deletePolicy: (key) => {
      if (this.policies.has(key) || this.pendingPolicies.has(key)) this.pendingPolicies.set(key, null);
    },
    releaseExpiredIdentities: (now = this.now()) => {
      for (const [id, due] of this.lingering) {
        if (due > now) continue;
        this.lingering.delete(id);
        this.releaseIdentity(id);
      }
    },
  };

  /** Pods are applied at flush time so that a pod and its namespace may arrive in any order. */
  private readonly stagedPods = new Map<string, Pod | null>();

  private stagePod(pod: Pod): void {
    pod.ips.forEach((ip, i) => {
      if (!parseIp(ip))
        throw new PolicyValidationError(`ips[${i}]`, `${JSON.stringify(ip)} is not an IP address`);
    });
    const key = podKey(pod);
    this.stagedPods.set(key, {
      ...pod,
      labels: { ...pod.labels },
      ips: [...pod.ips],
      ports: pod.ports.map((p) => ({ ...p })),
    });
    this.dirtyPods.add(key);
  }

  // ------------------------------------------------------------------ queries

  endpointPolicy(key: string): EndpointPolicy | undefined {
    return this.pods.get(key)?.result?.policy;
  }

  /** All endpoint policies by `namespace/name`. */
  endpointPolicies(): Map<string, EndpointPolicy> {
    const out = new Map<string, EndpointPolicy>();
    for (const [key, rec] of this.pods) if (rec.result) out.set(key, rec.result.policy);
    return out;
  }

  /** Endpoint policies keyed by each endpoint address (what `evaluate` takes). */
  endpointPoliciesByIp(): Map<string, EndpointPolicy> {
    const out = new Map<string, EndpointPolicy>();
    for (const rec of this.pods.values()) {
      if (rec.result) for (const addr of rec.addrs) out.set(formatIp(addr), rec.result.policy);
    }
    return out;
  }

  identityOf(key: string): number | undefined {
    const rec = this.pods.get(key);
    return rec && rec.identity !== 0 ? rec.identity : undefined;
  }

  /** Labels of a live identity as `source:key=value` strings (reserved and CIDR identities too). */
  identityLabels(id: number): string[] | undefined {
    const rec = this.universe.get(id);
    return rec && [...rec.labels].map(([k, v]) => (v === '' ? k : `${k}=${v}`)).sort();
  }

  /** The whole ipcache (sorted by prefix text). */
  ipcache(): IpcacheEntry[] {
    return [...this.ipcacheTable]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([cidr, identity]) => ({ cidr, identity }));
  }

  /** What to persist so identities survive a restart (pass back as `options.identities`). */
  identitySnapshot(): PersistedIdentity[] {
    return this.allocator.snapshot();
  }

  policyStatus(): PolicyStatus[] {
    return [...this.policies.values()].map((p) => {
      const selected = new Set<string>();
      for (const part of p.parts) {
        for (const id of this.selectors.get(part.subject.key)?.matches ?? []) {
          for (const [k, rec] of this.universe.get(id)?.pods ?? []) if (rec.endpoint) selected.add(k);
        }
      }
      return {
        key: p.key,
        kind: p.kind,
        ...(p.namespace !== undefined && { namespace: p.namespace }),
        selectedEndpoints: selected.size,
        warnings: p.warnings,
      };
    });
  }

  endpointStatus(key: string): EndpointStatus | undefined {
    const rec = this.pods.get(key);
    const computed = rec?.result;
    if (!rec || !computed) return undefined;
    const policies = [
      ...new Set([...(this.partsByIdentity.get(rec.identity) ?? [])].map((p) => p.policy)),
    ].sort();
    return {
      key,
      identity: rec.identity,
      labels: this.identityLabels(rec.identity) ?? [],
      policy: computed.policy,
      policies,
      l7NotEnforced: computed.l7,
    };
  }

  /**
   * Why traffic from `from` to `to` is allowed or dropped. Endpoints are `namespace/name` or an
   * IP address (a pod's or one outside the cluster). Evaluates the policies themselves (not the
   * computed entries), so tests can check one against the other.
   */
  trace(from: string, to: string, port: number, protocol: 'TCP' | 'UDP' | 'SCTP' | number): TraceResult {
    return traceFlow(
      this.traceView,
      from,
      to,
      port,
      typeof protocol === 'number' ? protocol : protocolNumber(protocol),
    );
  }

  private readonly traceView: TraceView = {
    pod: (key) => this.pods.get(key)?.pod,
    podByIp: (ip) => {
      const owner = this.ipOwner.get(ip);
      return owner === undefined ? undefined : this.pods.get(owner)?.pod;
    },
    namespace: (name) => this.namespaces.get(name),
    policies: () => this.policies.values(),
    prefixes: () =>
      [...this.prefixes].map(([text, p]) => ({ text, cidr: p.cidr, matchesPods: p.podRefs > 0 })),
  };

  // ------------------------------------------------------------------ recomputation

  private flush(): PolicyDelta<Handle> {
    this.applyPolicies();
    this.applyPods();
    this.applyPrefixes();
    this.recomputePods();
    this.updateSelectors();
    this.markNamedPortUsers();
    return this.collect();
  }

  private entryFor(selector: Selector): SelectorEntry {
    let entry = this.selectors.get(selector.key);
    if (!entry) {
      entry = { selector, matches: new Set(), refs: 0, fresh: true, subjectOf: new Set(), peerOf: new Set() };
      this.selectors.set(selector.key, entry);
      this.freshSelectors.push(entry);
    }
    entry.refs++;
    return entry;
  }

  private dropSelector(selector: Selector): void {
    const entry = this.selectors.get(selector.key);
    if (entry && --entry.refs === 0) this.selectors.delete(selector.key);
  }

  private applyPolicies(): void {
    for (const [key, next] of this.pendingPolicies) {
      const prev = this.policies.get(key);
      if (prev) {
        for (const part of prev.parts) this.removePart(part);
        for (const use of prev.prefixes) this.unrefPrefix(use.cidr, use.matchesPods);
        this.policies.delete(key);
      }
      if (next) {
        for (const use of next.prefixes) this.refPrefix(use.cidr, use.matchesPods);
        for (const part of next.parts) this.addPart(part);
        this.policies.set(key, next);
      }
    }
    this.pendingPolicies.clear();
  }

  private addPart(part: CompiledPart): void {
    const subject = this.entryFor(part.subject);
    subject.subjectOf.add(part);
    const peers: SelectorEntry[][] = [];
    for (const rule of part.rules) {
      const entries = rule.peers.map((peer) => this.entryFor(peer.selector));
      for (const entry of entries) entry.peerOf.add(part);
      peers.push(entries);
      if (rule.direction !== 'egress' || !rule.ports?.some((p) => p.name !== undefined)) continue;
      if (rule.anyPeer) this.namedEgressAnyPeer.add(part);
      for (const peer of rule.peers) {
        let parts = this.namedEgressByPeer.get(peer.selector.key);
        if (!parts) this.namedEgressByPeer.set(peer.selector.key, (parts = new Set()));
        parts.add(part);
      }
    }
    this.partSelectors.set(part, { subject, peers });
    // Identities of a fresh subject are marked dirty once the selector is evaluated (updateSelectors);
    // a subject selector already cached is up to date now.
    if (!subject.fresh) for (const id of subject.matches) this.attachPart(id, part);
  }

  private removePart(part: CompiledPart): void {
    const subject = this.selectors.get(part.subject.key);
    if (subject) {
      for (const id of subject.matches) this.detachPart(id, part);
      subject.subjectOf.delete(part);
    }
    this.dropSelector(part.subject);
    for (const rule of part.rules) {
      for (const peer of rule.peers) {
        this.selectors.get(peer.selector.key)?.peerOf.delete(part);
        this.dropSelector(peer.selector);
        const named = this.namedEgressByPeer.get(peer.selector.key);
        if (named?.delete(part) && named.size === 0) this.namedEgressByPeer.delete(peer.selector.key);
      }
    }
    this.namedEgressAnyPeer.delete(part);
    this.partSelectors.delete(part);
  }

  private attachPart(id: number, part: CompiledPart): void {
    let parts = this.partsByIdentity.get(id);
    if (!parts) this.partsByIdentity.set(id, (parts = new Set()));
    parts.add(part);
    this.dirtyIds.add(id);
  }

  private detachPart(id: number, part: CompiledPart): void {
    const parts = this.partsByIdentity.get(id);
    if (parts?.delete(part) && parts.size === 0) this.partsByIdentity.delete(id);
    this.dirtyIds.add(id);
  }

  // ---- prefixes (ipBlock / CIDR rules) ----

  private refPrefix(text: string, matchesPods: boolean): void {
    let rec = this.prefixes.get(text);
    if (!rec) {
      this.prefixes.set(text, (rec = { cidr: parseCidr(text)!, refs: 0, podRefs: 0 }));
      this.changedPrefixes.add(text);
    }
    rec.refs++;
    if (matchesPods && rec.podRefs++ === 0) this.podRelevanceChanged.add(text);
  }

  private unrefPrefix(text: string, matchesPods: boolean): void {
    const rec = this.prefixes.get(text);
    if (!rec) return;
    rec.refs--;
    if (matchesPods && --rec.podRefs === 0) this.podRelevanceChanged.add(text);
    if (rec.refs === 0) {
      this.changedPrefixes.add(text);
      this.prefixes.delete(text);
      if (rec.identity !== undefined) this.releaseIdentity(rec.identity);
      this.touchedCidrs.add(text);
    }
  }

  /** cidr: labels of every prefix in use that contains `cidr` (what LPM on it means). */
  private prefixLabels(cidr: Cidr, podsOnly: boolean): string[] {
    const out: string[] = [];
    for (const [text, rec] of this.prefixes) {
      if (podsOnly && rec.podRefs === 0) continue;
      if (cidrContainsCidr(rec.cidr, cidr)) out.push(cidrLabel(text));
    }
    return out;
  }

  private applyPrefixes(): void {
    if (this.changedPrefixes.size === 0 && this.podRelevanceChanged.size === 0) return;
    const changed = [...this.changedPrefixes].map((t) => parseCidr(t)!);
    // CIDR identities of every prefix under a changed one get new labels.
    for (const [text, rec] of this.prefixes) {
      if (!changed.some((c) => cidrContainsCidr(c, rec.cidr))) continue;
      if (rec.cidr.bits === 0) continue;
      const labels = new Map<string, string>([[reservedLabel('world'), '']]);
      for (const l of this.prefixLabels(rec.cidr, false)) labels.set(l, '');
      const id = this.acquireIdentity(labels);
      if (rec.identity !== undefined) this.releaseIdentity(rec.identity);
      rec.identity = id;
      this.touchedCidrs.add(text);
    }
    if (changed.some((c) => c.bits === 0)) {
      // The world identity stands for 0.0.0.0/0 and ::/0: it carries their labels when in use.
      const labels = new Map<string, string>([[reservedLabel('world'), '']]);
      for (const text of WORLD_PREFIXES) if (this.prefixes.has(text)) labels.set(cidrLabel(text), '');
      this.removeFromUniverse(RESERVED_IDENTITY.world);
      this.addToUniverse(RESERVED_IDENTITY.world, labels);
    }
    // Pods inside a prefix whose pod relevance changed get a new cidr: signature.
    const relevance = [...this.podRelevanceChanged].map((t) => parseCidr(t)!);
    if (relevance.length > 0) {
      for (const [key, rec] of this.pods) {
        if (rec.addrs.some((a) => relevance.some((c) => cidrContainsIp(c, a)))) this.dirtyPods.add(key);
      }
    }
    this.changedPrefixes.clear();
    this.podRelevanceChanged.clear();
  }

  // ---- identities ----

  private acquireIdentity(labels: LabelMap): number {
    const id = this.allocator.acquire(labels);
    if (this.allocator.references(id) === 1) this.addToUniverse(id, this.allocator.labelsOf(id)!);
    return id;
  }

  /** A pod's identity: one that lingers becomes the pod's (its own reference goes). */
  private acquirePodIdentity(labels: LabelMap): number {
    const id = this.acquireIdentity(labels);
    if (this.lingering.delete(id)) this.allocator.release(id);
    return id;
  }

  /** Whether the pod reference about to go is an identity's last, and it will linger then. */
  private willLinger(id: number): boolean {
    return this.identityReleaseDelayMs > 0 && this.allocator.references(id) === 1;
  }

  /** The last pod leaving an identity leaves it lingering, when there is a release delay. */
  private releasePodIdentity(id: number): void {
    if (this.willLinger(id)) this.lingering.set(id, this.now() + this.identityReleaseDelayMs);
    else this.releaseIdentity(id);
  }

  private releaseIdentity(id: number): void {
    this.allocator.release(id);
    if (this.allocator.references(id) === 0) this.removeFromUniverse(id);
  }

  private addToUniverse(id: number, labels: LabelMap): void {
    if (!this.universeBefore.has(id)) this.universeBefore.set(id, this.universe.get(id)?.labels);
    this.universe.set(id, { id, labels, pods: new Map(), namedPorts: new Map() });
    this.index.add(id, labels);
  }

  private removeFromUniverse(id: number): void {
    const rec = this.universe.get(id);
    if (!rec) return;
    if (!this.universeBefore.has(id)) this.universeBefore.set(id, rec.labels);
    this.universe.delete(id);
    this.forgetNamedPorts(rec);
    this.index.remove(id, rec.labels);
  }

  // ---- pods ----

  private applyPods(): void {
    for (const [key, pod] of this.stagedPods) {
      const prev = this.pods.get(key);
      if (pod === null) continue; // removed in recomputePods, which needs the old record
      const addrs = pod.hostNetwork ? [] : pod.ips.map((ip) => parseIp(ip)!);
      const endpoint = !pod.hostNetwork && (this.nodeName === undefined || pod.nodeName === this.nodeName);
      const rec: PodRecord = {
        pod,
        key,
        addrs,
        identity: prev?.identity ?? 0,
        endpoint,
        portsKey: portsKeyOf(pod),
        ...(prev?.result && { result: prev.result }),
        dirty: false,
        handle: prev ? prev.handle : this.handles.get(key),
      };
      if (prev) this.releasePodResources(prev);
      this.pods.set(key, rec);
      let set = this.podsByNamespace.get(pod.namespace);
      if (!set) this.podsByNamespace.set(pod.namespace, (set = new Set()));
      set.add(key);
      for (const a of addrs) {
        this.ipOwner.set(formatIp(a), key);
        this.touchedCidrs.add(formatCidr(hostCidr(a)));
      }
    }
    for (const [key, pod] of this.stagedPods) {
      if (pod !== null) continue;
      const prev = this.pods.get(key);
      if (!prev) continue;
      this.releasePodResources(prev);
      if (prev.identity !== 0) {
        this.detachPodFromIdentity(prev);
        this.releasePodIdentity(prev.identity);
      }
      this.pods.delete(key);
      this.podsByNamespace.get(prev.pod.namespace)?.delete(key);
      if (this.dropResult(prev)) this.removedEndpoints.add(key);
      this.dirtyPods.delete(key);
    }
    this.stagedPods.clear();
  }

  /** Forgets the addresses of a pod's previous version (its identity is swapped in recomputePods). */
  private releasePodResources(prev: PodRecord): void {
    for (const a of prev.addrs) {
      if (this.ipOwner.get(formatIp(a)) === prev.key) this.ipOwner.delete(formatIp(a));
      this.touchedCidrs.add(formatCidr(hostCidr(a)));
    }
  }

  private recomputePods(): void {
    for (const key of this.dirtyPods) {
      const rec = this.pods.get(key);
      if (!rec) continue;
      if (rec.pod.hostNetwork) {
        // Host-network pods are the node itself: no identity of their own.
        if (rec.identity !== 0) {
          this.detachPodFromIdentity(rec);
          this.releasePodIdentity(rec.identity);
          rec.identity = 0;
        }
        if (this.dropResult(rec)) this.removedEndpoints.add(key);
        continue;
      }
      const cidrs = new Set<string>();
      for (const a of rec.addrs) for (const l of this.prefixLabels(hostCidr(a), true)) cidrs.add(l);
      const labels = podIdentityLabels(rec.pod, this.namespaces.get(rec.pod.namespace), cidrs);
      const id = this.acquirePodIdentity(labels);
      const old = rec.identity;
      // The named-port bookkeeping holds the pod's previous ports: drop them before re-adding.
      if (old !== 0) this.detachPodFromIdentity(rec);
      rec.identity = id;
      this.attachPodToIdentity(rec);
      if (old !== 0) this.releasePodIdentity(old);
      if (old !== id || !rec.result) this.identityChanged.add(key);
      if (!rec.endpoint && this.dropResult(rec)) this.removedEndpoints.add(key);
      if (rec.endpoint) this.markDirty(rec);
    }
    this.dirtyPods.clear();
  }

  /** Whether the record had a result (an endpoint the last delta named). */
  private dropResult(rec: PodRecord): boolean {
    const had = rec.result !== undefined;
    rec.result = undefined;
    return had;
  }

  private markDirty(rec: PodRecord): void {
    if (rec.dirty) return;
    rec.dirty = true;
    this.dirtyEndpoints.push(rec);
  }

  private portsOfPod = new Map<string, Pod['ports']>();

  private attachPodToIdentity(rec: PodRecord): void {
    const ident = this.universe.get(rec.identity)!;
    // A lingering identity kept its last pod's named ports: the first pod back brings its own.
    const kept = ident.pods.size === 0 && ident.namedPorts.size > 0 ? namedPortsText(ident) : undefined;
    if (kept !== undefined) this.forgetNamedPorts(ident);
    ident.pods.set(rec.key, rec);
    this.portsOfPod.set(rec.key, rec.pod.ports);
    for (const p of rec.pod.ports) {
      if (p.name === undefined) continue;
      const key = `${protocolNumber(p.protocol)}/${p.name}`;
      let ports = ident.namedPorts.get(key);
      if (!ports) {
        ident.namedPorts.set(key, (ports = new Map()));
        let ids = this.namedPortIdentities.get(key);
        if (!ids) this.namedPortIdentities.set(key, (ids = new Set()));
        ids.add(ident.id);
      }
      const n = ports.get(p.containerPort) ?? 0;
      ports.set(p.containerPort, n + 1);
      if (n === 0 && kept === undefined) this.namedPortsChanged.add(ident.id);
    }
    if (kept !== undefined && kept !== namedPortsText(ident)) this.namedPortsChanged.add(ident.id);
    for (const a of rec.addrs) this.touchedCidrs.add(formatCidr(hostCidr(a)));
  }

  private forgetNamedPorts(ident: IdentityRecord): void {
    for (const key of ident.namedPorts.keys()) this.namedPortIdentities.get(key)?.delete(ident.id);
    ident.namedPorts.clear();
  }

  /** Undoes attachPodToIdentity with the ports the pod had when attached. */
  private detachPodFromIdentity(rec: PodRecord): void {
    const ident = this.universe.get(rec.identity);
    const ports = this.portsOfPod.get(rec.key) ?? [];
    this.portsOfPod.delete(rec.key);
    if (!ident) return;
    ident.pods.delete(rec.key);
    // The last pod of an identity that will linger: its named ports stay as they were (no rule
    // resolved against them changes for an identity no packet carries).
    if (ident.pods.size === 0 && this.willLinger(ident.id)) return;
    for (const p of ports) {
      if (p.name === undefined) continue;
      const key = `${protocolNumber(p.protocol)}/${p.name}`;
      const byPort = ident.namedPorts.get(key);
      const n = byPort?.get(p.containerPort);
      if (!byPort || n === undefined) continue;
      if (n > 1) byPort.set(p.containerPort, n - 1);
      else {
        byPort.delete(p.containerPort);
        this.namedPortsChanged.add(ident.id);
        if (byPort.size === 0) {
          ident.namedPorts.delete(key);
          this.namedPortIdentities.get(key)?.delete(ident.id);
        }
      }
    }
  }

  // ---- selectors ----

  private updateSelectors(): void {
    const added: number[] = [];
    const removed: number[] = [];
    for (const [id, before] of this.universeBefore) {
      const now = this.universe.get(id);
      if (before !== undefined && (now === undefined || now.labels !== before)) removed.push(id);
      if (now !== undefined && now.labels !== before) added.push(id);
    }
    this.lastUniverseChange = { added, removed };
    this.universeBefore.clear();
    for (const id of added) this.dirtyIds.add(id);
    for (const id of [...added, ...removed]) this.changedPeers.add(id);
    const labelsOf = (id: number) => this.universe.get(id)!.labels;
    const fresh = this.freshSelectors;
    this.freshSelectors = [];
    if (added.length > 0 || removed.length > 0) {
      for (const entry of this.selectors.values()) {
        if (!entry.fresh) this.applyUniverseChange(entry, added, removed, labelsOf);
      }
    }
    for (const entry of fresh) {
      if (!entry.fresh || this.selectors.get(entry.selector.key) !== entry) continue;
      entry.fresh = false;
      entry.matches = this.index.evaluate(entry.selector, labelsOf);
      // Only new parts use a fresh selector: attachPart marks their subjects for a rebuild.
      for (const part of entry.subjectOf) for (const id of entry.matches) this.attachPart(id, part);
    }
  }

  private applyUniverseChange(
    entry: SelectorEntry,
    added: number[],
    removed: number[],
    labelsOf: (id: number) => LabelMap,
  ): void {
    let changed = false;
    for (const id of removed) {
      if (entry.matches.delete(id)) {
        changed = true;
        for (const part of entry.subjectOf) this.detachPart(id, part);
      }
    }
    for (const id of added) {
      if (entry.selector.matches(labelsOf(id))) {
        entry.matches.add(id);
        changed = true;
        for (const part of entry.subjectOf) this.attachPart(id, part);
      }
    }
    if (changed) for (const part of entry.peerOf) this.markSubjects(part);
  }

  private lastUniverseChange: { added: number[]; removed: number[] } = { added: [], removed: [] };

  /** The peers of a part changed: every identity it applies to needs its entries patched. */
  private markSubjects(part: CompiledPart): void {
    for (const id of this.partSelectors.get(part)?.subject.matches ?? []) this.patchIds.add(id);
  }

  private markNamedPortUsers(): void {
    if (this.namedPortsChanged.size === 0) return;
    for (const id of this.namedPortsChanged) this.changedPeers.add(id);
    const changed = [...this.namedPortsChanged];
    // By selector: the same peer selector serves many policies (one per namespace, say).
    for (const part of this.namedEgressAnyPeer) this.markSubjects(part);
    for (const [key, parts] of this.namedEgressByPeer) {
      const matches = this.selectors.get(key)?.matches;
      if (!matches || !changed.some((id) => matches.has(id))) continue;
      for (const part of parts) this.markSubjects(part);
    }
    this.namedPortsChanged.clear();
  }

  // ---- endpoint policies ----

  private collect(): PolicyDelta<Handle> {
    const recompute = (ident: IdentityRecord | undefined) => {
      if (!ident) return;
      ident.cache = undefined;
      for (const rec of ident.pods.values()) if (rec.endpoint) this.markDirty(rec);
    };
    // Many changed peers: rebuilding is as cheap as patching.
    const patch = this.changedPeers.size <= PATCH_LIMIT;
    for (const id of this.dirtyIds) recompute(this.universe.get(id));
    this.flushShared.clear();
    // Each cached result this flush patched -> its successor and what changed (null: nothing).
    // Results of one parts|ports key hold the same entries before the patch as after it, so an
    // identity that takes the result patched for another one learns the same change.
    const patchedFrom = new Map<Computed, PatchedResult>();
    const sharedPatches = new Map<string, PatchedResult>();
    const peers: ReadonlySet<number> = new Set(this.changedPeers);
    // A few changed peers: each patch binary-searches them, in order.
    const sortedPeers = peers.size <= 4 ? [...peers].sort((x, y) => x - y) : undefined;
    const changes = new DistinctChanges();
    // Identities whose every cached result was patched: their endpoints move to the successors
    // below without being recomputed (a change can reach thousands of them).
    const patchedIds: IdentityRecord[] = [];
    for (const id of this.patchIds) {
      if (this.dirtyIds.has(id)) continue;
      const ident = this.universe.get(id);
      const cache = ident?.cache;
      if (!cache || !patch || !ident) {
        recompute(ident);
        continue;
      }
      for (const slot of cache.byPorts.values()) {
        const old = slot.computed;
        let patched = patchedFrom.get(old);
        if (!patched) {
          patched = sharedPatches.get(slot.shared);
          if (!patched) {
            patched = this.patch(id, old, peers, sortedPeers);
            if (patched.change !== null) patched.change = changes.intern(patched.change);
            sharedPatches.set(slot.shared, patched);
            this.flushShared.set(slot.shared, patched.next);
          }
          patchedFrom.set(old, patched);
        }
        slot.computed = patched.next;
      }
      patchedIds.push(ident);
    }
    this.dirtyIds.clear();
    this.patchIds.clear();
    this.changedPeers.clear();
    this.flushShared.clear();
    const delta = new CollectedDelta<Handle>();
    const take = (rec: PodRecord, next: Computed, change: PeerPolicyChange | null | undefined) => {
      rec.result = next;
      delta.add(rec.key, next.policy, change ?? undefined, rec.handle as Handle | undefined);
      if (this.removedEndpoints.size > 0) this.removedEndpoints.delete(rec.key);
    };
    for (const ident of patchedIds) {
      for (const rec of ident.pods.values()) {
        if (!rec.endpoint || rec.dirty) continue;
        const prev = rec.result;
        const patched = prev !== undefined ? patchedFrom.get(prev) : undefined;
        if (patched === undefined) this.markDirty(rec); // not from the cache: recompute
        else if (patched.change !== null) take(rec, patched.next, patched.change);
      }
    }
    for (const rec of this.dirtyEndpoints) {
      rec.dirty = false;
      if (!rec.endpoint || rec.identity === 0 || this.pods.get(rec.key) !== rec) continue;
      const next = this.computeFor(rec);
      const prev = rec.result;
      const patched = prev !== undefined ? patchedFrom.get(prev) : undefined;
      const fromPrev = patched !== undefined && patched.next === next ? patched : undefined;
      if (fromPrev?.change === null) continue; // patched, and nothing changed
      if (prev && !fromPrev && this.unchanged(prev, next)) {
        // The same entries: hold the cached object, so the next patch finds this endpoint's result.
        rec.result = next;
        continue;
      }
      take(rec, next, fromPrev?.change);
    }
    this.dirtyEndpoints.length = 0;
    this.flushShared.clear();
    this.comparisons = new WeakMap();
    const removedEndpoints = [...this.removedEndpoints].filter((k) => !this.pods.get(k)?.result);
    this.removedEndpoints.clear();
    for (const key of this.identityChanged) {
      const rec = this.pods.get(key);
      if (rec?.endpoint && rec.identity !== 0 && rec.result)
        delta.endpointIdentities.set(key, rec.identity);
    }
    this.identityChanged.clear();
    delta.removedEndpoints = removedEndpoints;
    delta.ipcache = this.collectIpcache();
    delta.identities = this.lastUniverseChange;
    return delta;
  }

  private collectIpcache(): PolicyDelta['ipcache'] {
    const upserted: IpcacheEntry[] = [];
    const removed: string[] = [];
    for (const cidr of this.touchedCidrs) {
      const want = this.ipcacheValue(cidr);
      const have = this.ipcacheTable.get(cidr);
      if (want === have) continue;
      if (want === undefined) {
        this.ipcacheTable.delete(cidr);
        removed.push(cidr);
      } else {
        this.ipcacheTable.set(cidr, want);
        upserted.push({ cidr, identity: want });
      }
    }
    this.touchedCidrs.clear();
    return { upserted, removed };
  }

  /** Pod addresses win over a policy prefix of the same text; /0 is the world identity. */
  private ipcacheValue(cidr: string): number | undefined {
    const slash = cidr.indexOf('/');
    const owner = this.ipOwner.get(cidr.slice(0, slash));
    const c = parseCidr(cidr)!;
    if (owner !== undefined && c.bits === (c.family === 4 ? 32 : 128)) {
      const id = this.pods.get(owner)?.identity;
      if (id) return id;
    }
    if (c.bits === 0) return RESERVED_IDENTITY.world;
    return this.prefixes.get(cidr)?.identity;
  }

  private computeFor(rec: PodRecord): Computed {
    const ident = this.universe.get(rec.identity)!;
    let cache = ident.cache;
    if (!cache) {
      const parts = this.partsByIdentity.get(rec.identity) ?? EMPTY_PARTS;
      const needsOwnPorts = [...parts].some((p) =>
        p.rules.some((r) => r.direction === 'ingress' && r.ports?.some((x) => x.name !== undefined)),
      );
      const partsKey = [...parts]
        .map((p) => this.partId(p))
        .sort((a, b) => a - b)
        .join(',');
      ident.cache = cache = { needsOwnPorts, partsKey, byPorts: new Map() };
    }
    const k = cache.needsOwnPorts ? rec.portsKey : '';
    let slot = cache.byPorts.get(k);
    if (!slot) {
      // Identities selected by the same policies get the same entries: build once per flush.
      const shared = `${cache.partsKey}|${k}`;
      let computed = this.flushShared.get(shared);
      if (!computed) this.flushShared.set(shared, (computed = this.build(rec.identity, rec.pod.ports)));
      cache.byPorts.set(k, (slot = { computed, shared }));
    }
    return slot.computed;
  }

  /** Endpoints of one identity share results: compare each pair of results once per flush. */
  private comparisons = new WeakMap<Computed, WeakMap<Computed, boolean>>();

  private unchanged(prev: Computed, next: Computed): boolean {
    if (prev === next) return true;
    let byNext = this.comparisons.get(prev);
    if (!byNext) this.comparisons.set(prev, (byNext = new WeakMap()));
    let same = byNext.get(next);
    if (same === undefined) byNext.set(next, (same = sameResult(prev, next)));
    return same;
  }

  private readonly partIds = new WeakMap<CompiledPart, number>();
  private nextPartId = 1;
  private readonly flushShared = new Map<string, Computed>();

  private partId(part: CompiledPart): number {
    let id = this.partIds.get(part);
    if (id === undefined) this.partIds.set(part, (id = this.nextPartId++));
    return id;
  }

  private readonly namedKeys = new WeakMap<CompiledPort, string>();

  /** `${protocol}/${name}` of a named port, the key of IdentityRecord.namedPorts (built once). */
  private namedKeyOf(port: CompiledPort): string {
    let key = this.namedKeys.get(port);
    if (key === undefined) this.namedKeys.set(port, (key = `${port.protocol}/${port.name}`));
    return key;
  }

  /** Redoes only the entries whose peer is in `peers`; the rest of `old` is kept (and shared). */
  private patch(
    id: number,
    old: Computed,
    peers: ReadonlySet<number>,
    sortedPeers: readonly number[] | undefined,
  ): PatchedResult {
    const fresh = this.build(id, old.ownPorts, peers);
    const { runs, runKeys: keys, runBounds: bounds } = old;
    const { runs: freshRuns, runKeys: freshKeys } = fresh;
    // Pass 1: the runs holding a changed peer (by binary search for a few peers, sortedPeers; one
    // scan for many), and whether what they hold of them is what the fresh build has (then nothing changed).
    const touched: number[] = [];
    // The positions of the changed peers' entries in the touched runs; touched[t]'s end at dropEnd[t].
    const dropAt: number[] = [];
    const dropEnd: number[] = [];
    let fr = 0;
    let fi = 0;
    let same = true;
    const dropped = (e: PolicyEntry) => {
      if (!same) return;
      if (fr === freshRuns.length || !sameEntry(e, freshRuns[fr]![fi]!)) same = false;
      else if (++fi === freshRuns[fr]!.length) {
        fr++;
        fi = 0;
      }
    };
    for (let r = 0; r < runs.length; r++) {
      const run = runs[r]!;
      const n = dropAt.length;
      if (sortedPeers) {
        const first = bounds[2 * r]!;
        const last = bounds[2 * r + 1]!;
        let lo = 0;
        for (const pid of sortedPeers) {
          if (pid < first || pid > last) continue;
          let hi = run.length;
          while (lo < hi) {
            const mid = (lo + hi) >>> 1;
            if (run[mid]!.identity < pid) lo = mid + 1;
            else hi = mid;
          }
          if (lo < run.length && run[lo]!.identity === pid) {
            dropped(run[lo]!);
            dropAt.push(lo++);
          }
        }
      } else {
        for (let i = 0; i < run.length; i++) {
          if (!peers.has(run[i]!.identity)) continue;
          dropped(run[i]!);
          dropAt.push(i);
        }
      }
      if (dropAt.length === n) continue;
      touched.push(r);
      dropEnd.push(dropAt.length);
    }
    if (same && fr === freshRuns.length) return { next: old, change: null };
    // Pass 2: the runs in group order; a run neither dropping nor gaining entries is shared.
    const nextKeys: number[] = [];
    const nextRuns: PolicyEntry[][] = [];
    const nextBounds: number[] = [];
    const emit = (key: number, run: PolicyEntry[]) => {
      if (run.length > 2 * RUN_SIZE) {
        forEachRunSpan(run.length, (from, to) => emit(key, run.slice(from, to)));
        return;
      }
      if (run.length === 0) return;
      nextKeys.push(key);
      nextRuns.push(run);
      nextBounds.push(run[0]!.identity, run[run.length - 1]!.identity);
    };
    let t = 0;
    let r = 0;
    let f = 0;
    while (r < runs.length || f < freshRuns.length) {
      const oldKey = r < runs.length ? keys[r]! : Infinity;
      const freshKey = f < freshRuns.length ? freshKeys[f]! : Infinity;
      if (freshKey < oldKey) {
        // A group the old result has no entry in.
        emit(freshKey, freshRuns[f++]!);
        continue;
      }
      // The group's fresh entries (usually one run) go into its old runs by identity: each run
      // takes those below the next run's first identity.
      let adding: readonly PolicyEntry[] = NO_ENTRIES;
      if (freshKey === oldKey) {
        adding = freshRuns[f++]!;
        while (f < freshRuns.length && freshKeys[f] === oldKey) adding = adding.concat(freshRuns[f++]!);
      }
      let a = 0;
      for (; r < runs.length && keys[r] === oldKey; r++) {
        const run = runs[r]!;
        const lastOfGroup = r + 1 === runs.length || keys[r + 1] !== oldKey;
        const bound = lastOfGroup ? Infinity : bounds[2 * r + 2]!;
        let aEnd = a;
        while (aEnd < adding.length && adding[aEnd]!.identity < bound) aEnd++;
        const dropFrom = t > 0 ? dropEnd[t - 1]! : 0;
        const dropTo = touched[t] === r ? dropEnd[t++]! : dropFrom;
        if (dropTo === dropFrom && aEnd === a) {
          nextKeys.push(oldKey);
          nextRuns.push(run);
          nextBounds.push(bounds[2 * r]!, bounds[2 * r + 1]!);
          continue;
        }
        emit(oldKey, mergeRun(run, dropAt, dropFrom, dropTo, adding, a, aEnd));
        a = aEnd;
      }
    }
    // Same parts, same L7 rules: a restricted build skips rules, so its own l7 may be short.
    const next: Computed = {
      policy: new RunPolicy(fresh.policy.ingressEnforced, fresh.policy.egressEnforced, nextRuns),
      ownPorts: fresh.ownPorts,
      l7: old.l7,
      runKeys: nextKeys,
      runs: nextRuns,
      runBounds: nextBounds,
    };
    return { next, change: { peers, entries: fresh.policy.entries } };
  }

  private build(id: number, ownPorts: Pod['ports'], restrict?: ReadonlySet<number>): Computed {
    const parts = this.partsByIdentity.get(id) ?? EMPTY_PARTS;
    // Entries grouped by their packed (direction, verdict, protocol, ports) then identity: numbers
    // instead of string keys keep a full computation of millions of entries fast.
    const groups = new Map<number, Set<number>>();
    let ingressEnforced = false;
    let egressEnforced = false;
    let l7 = false;
    const add = (group: number, ids: ReadonlySet<number>) => {
      let set = groups.get(group);
      if (restrict) {
        for (const pid of restrict) {
          if (!ids.has(pid)) continue;
          if (!set) groups.set(group, (set = new Set()));
          set.add(pid);
        }
        return;
      }
      if (!set) groups.set(group, (set = new Set()));
      for (const pid of ids) set.add(pid);
    };
    const addOne = (group: number, pid: number) => {
      if (restrict && !restrict.has(pid)) return;
      let set = groups.get(group);
      if (!set) groups.set(group, (set = new Set()));
      set.add(pid);
    };
    for (const part of parts) {
      ingressEnforced ||= part.enforce.ingress;
      egressEnforced ||= part.enforce.egress;
      const partPeers = this.partSelectors.get(part)!.peers;
      for (let r = 0; r < part.rules.length; r++) {
        const rule = part.rules[r]!;
        const peers = partPeers[r]!;
        // Restricted to some peers (a patch): a rule none of whose peers is one of them adds nothing.
        if (restrict && !rule.anyPeer && !peers.some((p) => selectsAny(p.matches, restrict))) continue;
        const peerSets = rule.anyPeer ? [ANY_PEER] : peers.map((p) => p.matches);
        if (rule.ports === null) {
          const g = packGroup(rule, 0, 0, 0);
          for (const set of peerSets) add(g, set);
          continue;
        }
        for (const port of rule.ports) {
          if (port.l7) l7 = true;
          if (port.name === undefined) {
            const g = packGroup(rule, port.protocol, port.portLow, port.portHigh);
            for (const set of peerSets) add(g, set);
          } else if (rule.direction === 'ingress') {
            // Named ports on ingress are the selected pod's own container ports.
            for (const cp of ownPorts) {
              if (cp.name !== port.name || protocolNumber(cp.protocol) !== port.protocol) continue;
              const g = packGroup(rule, port.protocol, cp.containerPort, cp.containerPort);
              for (const set of peerSets) add(g, set);
            }
          } else {
            // Named ports on egress are each destination pod's: resolved per peer identity.
            const key = this.namedKeyOf(port);
            const targets = rule.anyPeer ? [this.namedPortIdentities.get(key) ?? EMPTY_IDS] : peerSets;
            const resolve = (pid: number) => {
              for (const p of this.universe.get(pid)?.namedPorts.get(key)?.keys() ?? [])
                addOne(packGroup(rule, port.protocol, p, p), pid);
            };
            for (const set of targets) {
              if (!restrict) for (const pid of set) resolve(pid);
              else for (const pid of restrict) if (set.has(pid)) resolve(pid);
            }
          }
        }
      }
    }
    const runKeys: number[] = [];
    const runs: PolicyEntry[][] = [];
    const runBounds: number[] = [];
    for (const g of [...groups.keys()].sort((x, y) => x - y)) {
      const ids = [...groups.get(g)!].sort((x, y) => x - y);
      if (ids.length === 0) continue;
      const e = unpackGroup(g);
      forEachRunSpan(ids.length, (from, to) => {
        const run = new Array<PolicyEntry>(to - from);
        for (let i = 0; i < run.length; i++)
          run[i] = {
            identity: ids[from + i]!,
            protocol: e.protocol,
            portLow: e.portLow,
            portHigh: e.portHigh,
            direction: e.direction,
            verdict: e.verdict,
          };
        runKeys.push(g);
        runs.push(run);
        runBounds.push(ids[from]!, ids[to - 1]!);
      });
    }
    return { policy: new RunPolicy(ingressEnforced, egressEnforced, runs), ownPorts, l7, runKeys, runs, runBounds };
  }
}

function selectsAny(matches: ReadonlySet<number>, ids: ReadonlySet<number>): boolean {
  for (const id of ids) if (matches.has(id)) return true;
  return false;
}

const ANY_PEER: ReadonlySet<number> = new Set([0]);
const EMPTY_IDS: ReadonlySet<number> = new Set();
const PATCH_LIMIT = 256;
/** Entries per run of a built result (a patched run is cut again past twice this). */
const RUN_SIZE = 32;
const NO_ENTRIES: readonly PolicyEntry[] = [];

/**
 * `run` without its entries at dropAt[dropFrom, dropTo) (ascending), with adding[from, to) merged
 * in by identity. Each added entry's place is binary-searched, so the kept entries are copied
 * without being read.
 */
function mergeRun(
  run: readonly PolicyEntry[],
  dropAt: readonly number[],
  dropFrom: number,
  dropTo: number,
  adding: readonly PolicyEntry[],
  from: number,
  to: number,
): PolicyEntry[] {
  // Allocated once at its size: a result is kept, and growing it left garbage to copy.
  const out = new Array<PolicyEntry>(run.length - (dropTo - dropFrom) + to - from);
  let k = 0;
  let i = 0;
  let d = dropFrom;
  const copyTo = (end: number) => {
    for (; i < end; i++) {
      if (d < dropTo && dropAt[d] === i) d++;
      else out[k++] = run[i]!;
    }
  };
  for (let a = from; a < to; a++) {
    const id = adding[a]!.identity;
    let lo = i;
    let hi = run.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (run[mid]!.identity <= id) lo = mid + 1;
      else hi = mid;
    }
    copyTo(lo);
    out[k++] = adding[a]!;
  }
  copyTo(run.length);
  return out;
}

/** Cuts `length` entries into runs of about RUN_SIZE (as even as they come): each run's [from, to). */
function forEachRunSpan(length: number, fn: (from: number, to: number) => void): void {
  const pieces = Math.ceil(length / RUN_SIZE);
  for (let p = 0; p < pieces; p++) fn(Math.floor((p * length) / pieces), Math.floor(((p + 1) * length) / pieces));
}

function flattenRuns(runs: readonly (readonly PolicyEntry[])[]): PolicyEntry[] {
  let n = 0;
  for (const run of runs) n += run.length;
  const out = new Array<PolicyEntry>(n);
  let k = 0;
  for (const run of runs) for (const e of run) out[k++] = e;
  return out;
}

/**
 * A result's endpoint policy. Its entries are the result's runs, flattened each time they are
 * read: the datapath reads them only for a full write (a patch hands it the changed peers'
 * entries), so patched results never hold a flat copy. `entries` is an own enumerable accessor,
 * so spreads, JSON and deep equality see a plain EndpointPolicy.
 */
class RunPolicy implements EndpointPolicy {
  readonly ingressEnforced: boolean;
  readonly egressEnforced: boolean;
  declare readonly entries: PolicyEntry[];
  readonly #runs: readonly (readonly PolicyEntry[])[];

  constructor(ingressEnforced: boolean, egressEnforced: boolean, runs: readonly (readonly PolicyEntry[])[]) {
    this.ingressEnforced = ingressEnforced;
    this.egressEnforced = egressEnforced;
    this.#runs = runs;
    Object.defineProperty(this, 'entries', RunPolicy.#entries);
  }

  // One descriptor for every instance, so that they share one hidden class.
  static readonly #entries: PropertyDescriptor = {
    enumerable: true,
    get(this: RunPolicy): PolicyEntry[] {
      return flattenRuns(this.#runs);
    },
  };
}

const PORT_SPAN = 65536;

/** (direction, verdict, protocol, portLow, portHigh) in one number below 2^42; sorts ingress, deny first. */
function packGroup(
  rule: Pick<CompiledRule, 'direction' | 'verdict'>,
  protocol: number,
  portLow: number,
  portHigh: number,
): number {
  const head = (rule.direction === 'ingress' ? 0 : 2) + (rule.verdict === 'deny' ? 0 : 1);
  return ((head * 256 + protocol) * PORT_SPAN + portLow) * PORT_SPAN + portHigh;
}

function unpackGroup(g: number): Omit<PolicyEntry, 'identity'> {
  const portHigh = g % PORT_SPAN;
  const portLow = Math.floor(g / PORT_SPAN) % PORT_SPAN;
  const protocol = Math.floor(g / PORT_SPAN / PORT_SPAN) % 256;
  const head = Math.floor(g / PORT_SPAN / PORT_SPAN / 256);
  return {
    protocol,
    portLow,
    portHigh,
    direction: head >= 2 ? 'egress' : 'ingress',
    verdict: head % 2 === 0 ? 'deny' : 'allow',
  };
}

/**
 * A flush's peer changes, one object per distinct content (its peers are the flush's): the results
 * of a hundred policies often change the same way (one peer's port), and the datapath compiles
 * each change object once per enforcement.
 */
class DistinctChanges {
  private readonly seen: PeerPolicyChange[] = [];

  intern(change: PeerPolicyChange): PeerPolicyChange {
    for (const c of this.seen) if (sameEntryList(c.entries, change.entries)) return c;
    // Past a few dozen the changes are mostly distinct: stop looking.
    if (this.seen.length < 32) this.seen.push(change);
    return change;
  }
}

function sameEntryList(a: readonly PolicyEntry[], b: readonly PolicyEntry[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameEntry(a[i]!, b[i]!)) return false;
  return true;
}

function sameResult(a: Computed, b: Computed): boolean {
  return (
    a.policy.ingressEnforced === b.policy.ingressEnforced &&
    a.policy.egressEnforced === b.policy.egressEnforced &&
    sameRuns(a.runs, b.runs)
  );
}

/** Whether two runs lists hold the same entries (runs may be cut differently; shared ones are skipped). */
function sameRuns(a: readonly (readonly PolicyEntry[])[], b: readonly (readonly PolicyEntry[])[]): boolean {
  let ra = 0;
  let ia = 0;
  let rb = 0;
  let ib = 0;
  for (;;) {
    if (ra < a.length && ia === a[ra]!.length) {
      ra++;
      ia = 0;
    } else if (rb < b.length && ib === b[rb]!.length) {
      rb++;
      ib = 0;
    } else if (ra === a.length || rb === b.length) {
      return ra === a.length && rb === b.length;
    } else if (ia === 0 && ib === 0 && a[ra] === b[rb]) {
      ra++;
      rb++;
    } else {
      if (!sameEntry(a[ra]![ia]!, b[rb]![ib]!)) return false;
      ia++;
      ib++;
    }
  }
}

function sameEntry(x: PolicyEntry, y: PolicyEntry): boolean {
  return (
    x.identity === y.identity &&
    x.protocol === y.protocol &&
    x.portLow === y.portLow &&
    x.portHigh === y.portHigh &&
    x.direction === y.direction &&
    x.verdict === y.verdict
  );
}

/**
 * A flush's delta. The changed endpoints are kept as parallel arrays (a change can reach thousands
 * of them); the maps by key are built when first read.
 */
class CollectedDelta<Handle> implements PolicyDelta<Handle> {
  removedEndpoints: string[] = [];
  readonly endpointIdentities = new Map<string, number>();
  ipcache: PolicyDelta['ipcache'] = { upserted: [], removed: [] };
  identities: PolicyDelta['identities'] = { added: [], removed: [] };
  private readonly keys: string[] = [];
  private readonly policies: EndpointPolicy[] = [];
  private readonly changes: (PeerPolicyChange | undefined)[] = [];
  private readonly handles: (Handle | undefined)[] = [];
  private byKey?: Map<string, EndpointPolicy>;
  private changesByKey?: Map<string, PeerPolicyChange>;

  /** Each endpoint once per flush (collect takes a record at most once). */
  add(key: string, policy: EndpointPolicy, change: PeerPolicyChange | undefined, handle: Handle | undefined): void {
    this.keys.push(key);
    this.policies.push(policy);
    this.changes.push(change);
    this.handles.push(handle);
  }

  get endpoints(): Map<string, EndpointPolicy> {
    if (!this.byKey) {
      this.byKey = new Map();
      for (let i = 0; i < this.keys.length; i++) this.byKey.set(this.keys[i]!, this.policies[i]!);
    }
    return this.byKey;
  }

  get changedPeers(): Map<string, PeerPolicyChange> {
    if (!this.changesByKey) {
      this.changesByKey = new Map();
      for (let i = 0; i < this.keys.length; i++) {
        const change = this.changes[i];
        if (change) this.changesByKey.set(this.keys[i]!, change);
      }
    }
    return this.changesByKey;
  }

  forEachEndpoint(fn: EndpointVisitor<Handle>): void {
    for (let i = 0; i < this.keys.length; i++)
      fn(this.policies[i]!, this.changes[i], this.handles[i], this.keys[i]!);
  }
}

/** An identity's named ports, in one comparable string. */
function namedPortsText(ident: IdentityRecord): string {
  return [...ident.namedPorts]
    .map(([key, ports]) => `${key}:${[...ports.keys()].sort((a, b) => a - b).join(',')}`)
    .sort()
    .join(' ');
}

function sameLabels(a: Namespace['labels'], b: Namespace['labels']): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
