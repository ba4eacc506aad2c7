/**
 * The agent: endpoint registry + policy engine + datapath, fed by a source (manifests dir or
 * Kubernetes) and by weft-cni's registrations, serving the agent API.
 *
 * Life cycle:
 *   start      registry and identities from disk, API socket up (registrations wait), source started
 *   synced     queue replayed (weft-cni's work from while the agent was down), dead endpoints
 *              collected, ONE full policy computation, datapath reconciled: ipcache rewritten and
 *              stale prefixes removed, every endpoint re-attached with its policy (idempotent:
 *              the same programs stay, conntrack is untouched, established flows go on)
 *   ready      each source batch / registration / removal is one engine transaction whose delta
 *              (ipcache edits, endpoints whose policy or identity changed) is written at once
 *   stop       socket closed; pins, programs and map contents stay (enforcement goes on)
 *
 * Every mutation runs synchronously from engine transaction to the last map write, so API
 * requests never interleave with half-applied changes and what the API shows is in the kernel.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  AGENT_API_VERSION,
  attachmentId as attachmentIdOf,
  dequeue,
  parseAttachmentId,
  readQueue,
  type AgentHealth,
  type AgentStatus,
  type BpfPolicyEntry,
  type EndpointRegistered,
  type EndpointRegistration,
  type EndpointSummary,
  type EventsQuery,
  type FlowEvent,
  type IdentitySummary,
  type PolicySummary,
  type QueuedWork,
  type TraceResponse,
} from '@weft/agent-api';
import type { EndpointPolicy, EndpointRecord, EndpointSpec, PolicyCounter } from '@weft/datapath';
import {
  PolicyEngine,
  PolicyEngineError,
  RESERVED_IDENTITY,
  type PersistedIdentity,
  type Pod,
  type PolicyDelta,
  type PolicyWriter,
} from '@weft/policy';
import type { Logger } from 'pino';
import { AgentApiServer, type AgentApiHandlers } from './api/server';
import { validateRegistration, validateTraceRequest } from './api/validate';
import type { AgentDatapath, DatapathMaps } from './datapath/agent-datapath';
import { AgentError, BadRequestError, NotFoundError, NotReadyError } from './errors';
import { EventsHub } from './events-hub';
import { AgentMetrics } from './metrics';
import { effectivePod, podKeyOfRegistration } from './pod-identity';
import { EndpointRegistry, MAX_AGENT_ENDPOINT_ID, type RegisteredEndpoint } from './registry';
import type { PolicySource, SourceChange } from './sources/source';
import { readJson, writeJsonAtomic } from './state-files';

declare const __WEFT_BUILD__: { version: string } | undefined;
export const AGENT_VERSION = typeof __WEFT_BUILD__ !== 'undefined' ? __WEFT_BUILD__.version : 'dev';

const RESERVED_NAMES = new Map<number, string>(
  Object.entries(RESERVED_IDENTITY)
    .filter(([, id]) => id !== 0)
    .map(([name, id]) => [id, `reserved:${name === 'remoteNode' ? 'remote-node' : name}`]),
);

export interface AgentOptions {
  nodeName: string;
  /** Root of weft's state (/var/lib/weft); the agent keeps its files in `<stateDir>/agent`. */
  stateDir: string;
  queueDir: string;
  socketPath: string;
  datapath: AgentDatapath;
  /** Map inspection (status, metrics, ipcache reconcile); absent: those are skipped. */
  maps?: DatapathMaps;
  source?: PolicySource;
  logger: Logger;
  metricsAddress?: { host: string; port: number };
  /** 0: only at start. */
  gcIntervalMs?: number;
  /** How long an identity no pod holds stays allocated (default 60 s; 0: released at once). */
  identityReleaseDelayMs?: number;
  /** Run the endpoint GC during restore (default true). */
  gcOnStart?: boolean;
  /** How long a registration waits for the agent to become ready before 503 (default 2 s). */
  readyWaitMs?: number;
  /** Whether a path is (still) a network namespace; default @weft/netns isNetnsPath. */
  isNetns?: (path: string) => boolean;
  /** Read the events ring (default true). */
  events?: boolean;
  /** Process metrics (default true; several agents in one process would register them twice). */
  defaultMetrics?: boolean;
}

type Trigger = 'restore' | 'source' | 'registration' | 'removal' | 'identity-release';

interface AttachState {
  state: 'ready' | 'error';
  error?: string;
  identity: number;
  ingressEnforced: boolean;
  egressEnforced: boolean;
}

/** One registered attachment and what the datapath was last given for it (none: not attached yet). */
interface Attachment {
  endpoint: RegisteredEndpoint;
  state?: AttachState;
  /** Set while writeDelta re-attaches it in full (a flag: a Set lookup per endpoint cost more). */
  reattach: boolean;
}

export class Agent implements AgentApiHandlers {
  readonly registry: EndpointRegistry;
  readonly metrics: AgentMetrics;
  readonly events: EventsHub;
  /** Bound to each pod key: its attachments (the podIndex list), handed back with every delta. */
  private engine!: PolicyEngine<Attachment[]>;
  private readonly log: Logger;
  private readonly agentDir: string;
  private readonly identitiesFile: string;
  private readonly server: AgentApiServer;
  private readonly startedAt = Date.now();
  /** Source pods by `ns/name`; `deleted`: gone from the source but an attachment still uses it. */
  private readonly sourcePods = new Map<string, { pod: Pod; deleted: boolean }>();
  /**
   * Pod key → its attachments (the same objects as in `attachments`): a change names pods. Each
   * list is bound to its key in the engine and edited in place, so deltas hand it back.
   */
  private readonly podIndex = new Map<string, Attachment[]>();
  private readonly attachments = new Map<string, Attachment>();
  private preSync: SourceChange[] = [];
  private sourceSynced = false;
  private ready = false;
  private readonly readyPromise: Promise<void>;
  private resolveReady!: () => void;
  private revision = 0;
  private replayed = 0;
  private gcTimer?: NodeJS.Timeout;
  private identityReleaseTimer?: { at: number; timer: NodeJS.Timeout };
  private stopped = false;
  /** Live identities (reserved ones included); undefined: recount when asked. */
  private identityCount?: number;
  private persistTimer?: NodeJS.Timeout;
  private isNetns: (path: string) => boolean;
  metricsPort?: number;

  constructor(private readonly options: AgentOptions) {
    this.log = options.logger;
    this.agentDir = join(options.stateDir, 'agent');
    this.identitiesFile = join(this.agentDir, 'identities.json');
    this.registry = new EndpointRegistry(this.agentDir);
    this.readyPromise = new Promise((r) => (this.resolveReady = r));
    this.isNetns = options.isNetns ?? (() => true);
    this.metrics = new AgentMetrics(
      {
        endpoints: () => this.registry.size,
        identities: () => this.liveIdentities(),
        policies: () => (this.engine ? this.engine.policyStatus().length : 0),
        mapStats: () => this.mapStats(),
        queuePending: () => this.queuePending(),
      },
      { defaultMetrics: options.defaultMetrics },
    );
    this.events = new EventsHub(
      options.datapath,
      {
        endpointName: (id) => {
          const e = this.registry.byEndpointId(id);
          return e ? podKeyOfRegistration(e.registration) : undefined;
        },
        identityLabels: (id) => this.labelsOf(id),
      },
      this.metrics,
      this.log,
    );
    this.server = new AgentApiServer(this, this.metrics, this.log.child({ component: 'api' }));
  }

  // ------------------------------------------------------------------ life cycle

  async start(): Promise<void> {
    mkdirSync(this.agentDir, { recursive: true, mode: 0o700 });
    if (!this.options.isNetns) {
      const { isNetnsPath } = await import('@weft/netns');
      this.isNetns = isNetnsPath;
    }
    const restored = this.registry.load();
    for (const bad of this.registry.unreadable)
      this.log.error(bad, 'endpoint record unreadable; ignored (left on disk)');
    let identities: PersistedIdentity[] = [];
    try {
      identities = readJson<PersistedIdentity[]>(this.identitiesFile) ?? [];
    } catch (err) {
      this.log.error({ err, file: this.identitiesFile }, 'identity snapshot unreadable; allocating anew');
    }
    this.engine = new PolicyEngine({
      nodeName: this.options.nodeName,
      identities,
      identityReleaseDelayMs: this.options.identityReleaseDelayMs ?? 60_000,
    });
    for (const e of restored) this.index(e);
    this.log.info(
      { endpoints: restored.length, identities: identities.length, node: this.options.nodeName },
      'state loaded',
    );
    await this.server.listenUnix(this.options.socketPath);
    if (this.options.metricsAddress) {
      const { host, port } = this.options.metricsAddress;
      this.metricsPort = (await this.server.listenMetrics(host, port)).port;
      this.log.info({ address: `${host}:${this.metricsPort}` }, 'serving /metrics');
    }
    this.log.info({ socket: this.options.socketPath }, 'agent API listening');
    if (this.options.events !== false) this.events.start();
    const source = this.options.source;
    if (!source) {
      this.sourceSynced = true;
      this.restore();
    } else {
      this.log.info({ source: source.description }, 'starting source');
      await source.start({
        apply: (changes) => this.applySourceChanges(changes),
        synced: () => {
          this.sourceSynced = true;
          this.log.info({ source: source.description }, 'source synced');
          this.restore();
        },
      });
    }
    const every = this.options.gcIntervalMs ?? 60_000;
    if (every > 0) {
      this.gcTimer = setInterval(() => this.housekeeping(), every);
      this.gcTimer.unref();
    }
  }

  /** Resolves once the source synced and the datapath was reconciled. */
  whenReady(): Promise<void> {
    return this.readyPromise;
  }

  get isReady(): boolean {
    return this.ready;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.gcTimer);
    clearTimeout(this.identityReleaseTimer?.timer);
    if (this.persistTimer) {
      clearTimeout(this.persistTimer);
      this.persistTimer = undefined;
      this.persistIdentities();
    }
    await this.options.source?.stop();
    await this.server.close();
    this.events.stop();
    this.options.maps?.close();
    this.options.datapath.close();
    this.log.info('agent stopped; pinned maps and programs stay in place');
  }

  // ------------------------------------------------------------------ restore

  private restore(): void {
    if (this.ready || this.stopped) return;
    const started = process.hrtime.bigint();
    const dp = this.options.datapath;
    // 1. Work weft-cni queued while we were down, at the registry level (attached below).
    const replayedFiles = this.replayQueueIntoRegistry();
    // 2. Endpoints whose pod is gone.
    if (this.options.gcOnStart !== false) {
      for (const e of this.registry.all()) {
        if (this.isNetns(e.registration.netns)) continue;
        this.log.info(
          { attachment: e.attachmentId, netns: e.registration.netns },
          'netns gone; removing endpoint',
        );
        this.unindex(e);
        this.registry.remove(e.attachmentId);
        dp.detachEndpoint(e.endpointId);
      }
    }
    // 3. One full computation from the synced source plus every registration.
    const buffered = this.preSync;
    this.preSync = [];
    const t = process.hrtime.bigint();
    this.engine.transaction((w) => {
      this.applyChanges(w, buffered);
      for (const key of this.podIndex.keys()) this.writePod(w, key);
    });
    this.observe(this.metrics.policyComputation, 'restore', t);
    this.persistIdentities();
    // 4. The datapath as the computation says.
    const tw = process.hrtime.bigint();
    this.reconcileDatapath();
    this.observe(this.metrics.datapathWrite, 'restore', tw);
    for (const file of replayedFiles) {
      const ref = file.ref;
      if (ref) dequeue(ref, this.options.queueDir);
    }
    this.ready = true;
    this.revision++;
    this.resolveReady();
    this.log.info(
      {
        endpoints: this.registry.size,
        policies: this.engine.policyStatus().length,
        replayed: replayedFiles.length,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
      },
      'datapath reconciled; agent ready',
    );
  }

  private replayQueueIntoRegistry(): { ref?: { containerId: string; ifname: string } }[] {
    const dp = this.options.datapath;
    const done: { ref?: { containerId: string; ifname: string } }[] = [];
    for (const item of readQueue(this.options.queueDir)) {
      const work = this.checkQueued(item);
      if (!work) continue;
      if (work.kind === 'delete') {
        const e = this.registry.get(attachmentIdOf(work));
        if (e) {
          this.unindex(e);
          this.registry.remove(e.attachmentId);
          dp.detachEndpoint(e.endpointId);
        }
        this.log.info({ attachment: attachmentIdOf(work), known: !!e }, 'replayed queued deletion');
        done.push({ ref: work });
      } else {
        // Adopt a degraded endpoint: weft-cni's attachment goes, ours is made in the reconcile.
        dp.detachEndpoint(work.degradedEndpointId);
        const { entry } = this.registry.upsert(work.registration);
        this.index(entry);
        this.log.info(
          {
            attachment: entry.attachmentId,
            degradedEndpointId: work.degradedEndpointId,
            endpointId: entry.endpointId,
          },
          'adopted degraded endpoint',
        );
        done.push({ ref: work.registration });
      }
      this.replayed++;
      this.metrics.queueReplays.inc({ kind: work.kind, result: 'ok' });
    }
    return done;
  }

  /** A queue entry that is well-formed, else undefined (logged, counted, left on disk). */
  private checkQueued(item: { file: string; work?: QueuedWork; error?: string }): QueuedWork | undefined {
    const w = item.work;
    try {
      if (!w) throw new Error(item.error ?? 'unreadable');
      if (w.kind === 'delete') {
        if (!parseAttachmentId(attachmentIdOf(w))) throw new Error('bad attachment');
        return w;
      }
      if (w.kind === 'register') {
        const registration = validateRegistration(w.registration);
        if (
          !Number.isInteger(w.degradedEndpointId) ||
          w.degradedEndpointId <= 0 ||
          w.degradedEndpointId > 0xffffffff
        )
          throw new Error('bad degradedEndpointId');
        return { ...w, registration };
      }
      throw new Error(`unknown kind ${JSON.stringify((w as { kind?: unknown }).kind)}`);
    } catch (err) {
      this.log.error(
        { file: item.file, error: (err as Error).message },
        'queued work is invalid; left in place',
      );
      this.metrics.queueReplays.inc({
        kind: (w as { kind?: string } | undefined)?.kind ?? 'unknown',
        result: 'invalid',
      });
      return undefined;
    }
  }

  private reconcileDatapath(): void {
    const dp = this.options.datapath;
    const ipcache = this.engine.ipcache();
    dp.upsertIpcache(ipcache);
    for (const e of this.registry.all()) this.attach(e);
    // Datapath records the registry does not know: ours are stale, weft-cni's (degraded) wait.
    const records = dp.listEndpoints();
    for (const r of records) {
      if (this.registry.byEndpointId(r.endpointId)) continue;
      if (r.endpointId <= MAX_AGENT_ENDPOINT_ID) {
        this.log.warn(
          { endpointId: r.endpointId, ips: r.ips },
          'datapath endpoint unknown to the registry; detaching',
        );
        dp.detachEndpoint(r.endpointId);
      } else {
        this.log.warn(
          { endpointId: r.endpointId, ips: r.ips },
          'degraded endpoint without queued registration; left as is',
        );
      }
    }
    // Prefixes nobody wants any more (a policy deleted while we were down).
    if (this.options.maps) {
      const keep = new Set(ipcache.map((e) => e.cidr));
      for (const r of dp.listEndpoints())
        for (const ip of r.ips) keep.add(`${ip}/${ip.includes(':') ? 128 : 32}`);
      const stale = this.options.maps
        .ipcache()
        .map((e) => e.cidr)
        .filter((c) => !keep.has(c));
      if (stale.length > 0) {
        dp.deleteIpcache(stale);
        this.log.info({ prefixes: stale.length }, 'removed stale ipcache prefixes');
      }
    }
  }

  // ------------------------------------------------------------------ source

  /**
   * What sources call: applied at once when ready (engine transaction + map writes, returns when
   * done), buffered until the initial sync otherwise.
   */
  applySourceChanges(changes: SourceChange[]): void {
    if (this.stopped) return;
    if (!this.ready) {
      this.preSync.push(...changes);
      return;
    }
    this.mutate('source', (w) => this.applyChanges(w, changes));
  }

  /** Source changes into the engine; a change the engine refuses is logged and skipped. */
  private applyChanges(w: PolicyWriter, changes: SourceChange[]): void {
    for (const c of changes) {
      try {
        if (c.kind === 'Namespace') {
          if (c.op === 'upsert') w.upsertNamespace(c.namespace);
          else w.deleteNamespace(c.name);
        } else if (c.kind === 'Policy') {
          if (c.op === 'upsert') w.upsertPolicy(c.policy);
          else w.deletePolicy(c.key);
        } else if (c.op === 'upsert') {
          const key = `${c.pod.namespace}/${c.pod.name}`;
          this.sourcePods.set(key, { pod: c.pod, deleted: false });
          this.writePod(w, key);
        } else {
          const key = `${c.namespace}/${c.name}`;
          const have = this.sourcePods.get(key);
          // A pod deleted in the API before CNI DEL keeps its labels until the attachment goes.
          if (have && this.podIndex.has(key)) have.deleted = true;
          else {
            this.sourcePods.delete(key);
            this.writePod(w, key);
          }
        }
      } catch (err) {
        this.log.error(
          { change: describe(c), error: (err as Error).message },
          'change refused by the policy engine',
        );
      }
    }
  }

  private writePod(w: PolicyWriter, key: string): void {
    const regs = (this.podIndex.get(key) ?? []).map((a) => a.endpoint.registration);
    const pod = effectivePod(key, this.sourcePods.get(key)?.pod, regs, this.options.nodeName);
    const slash = key.indexOf('/');
    if (pod) w.upsertPod(pod);
    else w.deletePod(key.slice(0, slash), key.slice(slash + 1));
  }

  // ------------------------------------------------------------------ mutations

  /** One engine transaction and its delta written to the datapath, synchronously. */
  private mutate(
    trigger: Trigger,
    fn: (w: PolicyWriter) => void,
    attachNow: RegisteredEndpoint[] = [],
  ): PolicyDelta {
    const t = process.hrtime.bigint();
    const delta = this.engine.transaction(fn);
    this.observe(this.metrics.policyComputation, trigger, t);
    const tw = process.hrtime.bigint();
    this.writeDelta(delta, attachNow);
    this.observe(this.metrics.datapathWrite, trigger, tw);
    if (delta.identities.added.length > 0) this.schedulePersistIdentities();
    if (delta.identities.added.length > 0 || delta.identities.removed.length > 0)
      this.identityCount = undefined;
    this.revision++;
    this.scheduleIdentityRelease();
    return delta;
  }

  /** A timer for the earliest lingering identity (see --identity-release-delay). */
  private scheduleIdentityRelease(): void {
    const due = this.engine.nextIdentityRelease();
    const pending = this.identityReleaseTimer;
    if (due === undefined || this.stopped || (pending && pending.at <= due)) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.identityReleaseTimer = undefined;
      if (this.stopped) return;
      this.mutate('identity-release', (w) => w.releaseExpiredIdentities());
    }, Math.max(0, due - Date.now()));
    timer.unref();
    this.identityReleaseTimer = { at: due, timer };
  }

  private writeDelta(delta: PolicyDelta<Attachment[]>, attachNow: RegisteredEndpoint[]): void {
    const dp = this.options.datapath;
    // New identities first, so the policies written next resolve their peers; removals last.
    if (delta.ipcache.upserted.length > 0) dp.upsertIpcache(delta.ipcache.upserted);
    const reattach: Attachment[] = [];
    const mark = (a: Attachment | undefined) => {
      if (a === undefined || a.reattach) return;
      a.reattach = true;
      reattach.push(a);
    };
    for (const e of attachNow) mark(this.attachments.get(e.attachmentId));
    for (const key of delta.endpointIdentities.keys()) for (const a of this.podIndex.get(key) ?? []) mark(a);
    // A change can reach thousands of endpoints: the engine hands back each one's attachments.
    delta.forEachEndpoint((policy, change, attachments) => {
      if (attachments === undefined) return;
      for (const a of attachments) {
        if (a.reattach) continue;
        try {
          dp.updatePolicy(a.endpoint.endpointId, policy, change);
          // A peer change leaves the enforcement as it was (and a.state is one more object to read).
          if (a.state && change === undefined) {
            a.state.ingressEnforced = policy.ingressEnforced;
            a.state.egressEnforced = policy.egressEnforced;
          }
        } catch {
          mark(a); // not attached (an earlier attach failed): try the full attach
        }
      }
    });
    for (const a of reattach) {
      a.reattach = false;
      if (this.attachments.get(a.endpoint.attachmentId) === a) this.attach(a.endpoint);
    }
    if (delta.ipcache.removed.length > 0) dp.deleteIpcache(delta.ipcache.removed);
  }

  /** Attaches (or re-attaches, idempotently) one endpoint with its identity and policy. */
  private attach(e: RegisteredEndpoint): AttachState {
    const key = podKeyOfRegistration(e.registration);
    const identity = this.engine.identityOf(key);
    const policy = this.engine.endpointPolicy(key);
    let state: AttachState;
    try {
      if (identity === undefined || !policy)
        throw new AgentError('ENDPOINT_NOT_COMPUTED', `the policy engine has no endpoint ${key}`);
      this.options.datapath.attachEndpoint(this.specFor(e, identity, policy));
      state = {
        state: 'ready',
        identity,
        ingressEnforced: policy.ingressEnforced,
        egressEnforced: policy.egressEnforced,
      };
    } catch (err) {
      this.log.error(
        { attachment: e.attachmentId, endpointId: e.endpointId, err },
        'attaching the endpoint failed',
      );
      state = {
        state: 'error',
        error: (err as Error).message,
        identity: identity ?? RESERVED_IDENTITY.init,
        ingressEnforced: policy?.ingressEnforced ?? false,
        egressEnforced: policy?.egressEnforced ?? false,
      };
    }
    const a = this.attachments.get(e.attachmentId);
    if (a) a.state = state;
    return state;
  }

  private specFor(e: RegisteredEndpoint, identity: number, policy: EndpointPolicy): EndpointSpec {
    const r = e.registration;
    return {
      endpointId: e.endpointId,
      identity,
      ips: r.ips,
      ...(r.podMac !== undefined && { mac: r.podMac }),
      ...(r.attachInPod
        ? { pod: { netnsPath: r.netns, ifname: r.podIfname } }
        : r.hostIfname !== undefined
          ? { ifname: r.hostIfname }
          : { ifindex: r.hostIfindex }),
      policy,
    };
  }

  private index(e: RegisteredEndpoint): void {
    const key = podKeyOfRegistration(e.registration);
    const have = this.attachments.get(e.attachmentId);
    if (have && podKeyOfRegistration(have.endpoint.registration) === key) {
      have.endpoint = e; // re-registered for the same pod
      return;
    }
    if (have) this.unindex(have.endpoint); // now another pod's
    const a: Attachment = { endpoint: e, reattach: false };
    this.attachments.set(e.attachmentId, a);
    const list = this.podIndex.get(key);
    if (list) list.push(a);
    else {
      const fresh = [a];
      this.podIndex.set(key, fresh);
      this.engine.bindEndpoint(key, fresh);
    }
  }

  private unindex(e: RegisteredEndpoint): string {
    const key = podKeyOfRegistration(e.registration);
    const a = this.attachments.get(e.attachmentId);
    this.attachments.delete(e.attachmentId);
    const list = this.podIndex.get(key) ?? [];
    const at = a === undefined ? -1 : list.indexOf(a);
    if (at >= 0) list.splice(at, 1);
    if (list.length === 0) {
      this.podIndex.delete(key);
      this.engine.bindEndpoint(key, undefined);
      if (this.sourcePods.get(key)?.deleted) this.sourcePods.delete(key);
    }
    return key;
  }

  // ------------------------------------------------------------------ API: endpoints

  health(): AgentHealth {
    return { ok: true, version: AGENT_VERSION };
  }

  async registerEndpoint(id: string, body: unknown): Promise<EndpointRegistered> {
    if (!parseAttachmentId(id))
      throw new BadRequestError(
        'INVALID_ATTACHMENT_ID',
        `${JSON.stringify(id)} is not <containerId>:<ifname>`,
      );
    const reg = validateRegistration(body);
    if (attachmentIdOf(reg) !== id)
      throw new BadRequestError(
        'ATTACHMENT_MISMATCH',
        `the body is for ${attachmentIdOf(reg)}, the path for ${id}`,
      );
    if (!this.ready) {
      const wait = this.options.readyWaitMs ?? 2000;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.readyPromise, new Promise((r) => (timer = setTimeout(r, wait)))]);
      clearTimeout(timer);
      if (!this.ready)
        throw new NotReadyError(
          this.sourceSynced
            ? 'the agent is restoring its state; try again'
            : 'the policy source has not synced yet; try again',
        );
    }
    if (this.stopped) throw new NotReadyError('the agent is stopping');
    return this.register(reg);
  }

  /** Registers (or re-registers) synchronously; used by the API and the queue replay. */
  private register(reg: EndpointRegistration): EndpointRegistered {
    const previous = this.registry.get(attachmentIdOf(reg));
    const oldKey = previous ? podKeyOfRegistration(previous.registration) : undefined;
    const key = podKeyOfRegistration(reg);
    // Same attachment, other pod name (should not happen, but then the old pod loses it).
    if (previous && oldKey !== key) this.unindex(previous);
    const { entry, created } = this.registry.upsert(reg);
    this.index(entry);
    this.mutate(
      'registration',
      (w) => {
        this.writePod(w, key);
        if (oldKey !== undefined && oldKey !== key) this.writePod(w, oldKey);
      },
      [entry],
    );
    const s = this.attachments.get(entry.attachmentId)!.state!;
    if (s.state === 'error')
      throw new AgentError(
        'DATAPATH_ATTACH_FAILED',
        `endpoint ${entry.endpointId} (${entry.attachmentId}): ${s.error}`,
        500,
      );
    this.log.info(
      {
        attachment: entry.attachmentId,
        endpointId: entry.endpointId,
        identity: s.identity,
        pod: key,
        created,
      },
      created ? 'endpoint registered' : 'endpoint re-registered',
    );
    return {
      endpointId: entry.endpointId,
      identity: s.identity,
      ingressEnforced: s.ingressEnforced,
      egressEnforced: s.egressEnforced,
    };
  }

  removeEndpoint(id: string, reason = 'CNI DEL'): void {
    if (!parseAttachmentId(id))
      throw new BadRequestError(
        'INVALID_ATTACHMENT_ID',
        `${JSON.stringify(id)} is not <containerId>:<ifname>`,
      );
    const e = this.registry.get(id);
    if (!e) return;
    const key = this.unindex(e);
    this.registry.remove(id);
    // Programs and map entries go first; then peers lose the identity (if nobody else has it).
    this.options.datapath.detachEndpoint(e.endpointId);
    if (this.ready) this.mutate('removal', (w) => this.writePod(w, key));
    this.log.info({ attachment: id, endpointId: e.endpointId, pod: key, reason }, 'endpoint removed');
  }

  listEndpoints(): EndpointSummary[] {
    const out: EndpointSummary[] = [];
    const records = new Map(this.safeRecords().map((r) => [r.endpointId, r]));
    for (const e of this.registry.all()) {
      const r = e.registration;
      const key = podKeyOfRegistration(r);
      // Before the restore: what the kernel holds from the previous run.
      const s = this.attachments.get(e.attachmentId)?.state ?? recordState(records.get(e.endpointId));
      const status = this.ready ? this.engine.endpointStatus(key) : undefined;
      out.push({
        endpointId: e.endpointId,
        identity: s?.identity ?? RESERVED_IDENTITY.init,
        ingressEnforced: s?.ingressEnforced ?? false,
        egressEnforced: s?.egressEnforced ?? false,
        attachmentId: e.attachmentId,
        containerId: r.containerId,
        ifname: r.ifname,
        network: r.network,
        netns: r.netns,
        mode: r.mode,
        pod: key,
        ips: r.ips,
        interface: r.attachInPod ? `${r.podIfname} (in pod)` : (r.hostIfname ?? `ifindex ${r.hostIfindex}`),
        labels: status?.labels ?? [],
        state: s?.state ?? 'degraded',
        ...(status?.l7NotEnforced && { l7NotEnforced: true }),
      });
    }
    // weft-cni's own attachments not adopted yet (agent just started, queue not replayed).
    for (const r of records.values()) {
      if (r.endpointId <= MAX_AGENT_ENDPOINT_ID || this.registry.byEndpointId(r.endpointId)) continue;
      out.push({
        endpointId: r.endpointId,
        identity: r.identity,
        ingressEnforced: r.ingressEnforced,
        egressEnforced: r.egressEnforced,
        attachmentId: '',
        containerId: '',
        ifname: '',
        network: '',
        netns: r.netns ?? '',
        mode: r.inPodNetns ? 'ipvlan' : 'veth',
        ips: r.ips,
        interface: r.ifname ?? `ifindex ${r.ifindex}`,
        labels: this.labelsOf(r.identity) ?? [],
        state: 'degraded',
      });
    }
    return out.sort((a, b) => a.endpointId - b.endpointId);
  }

  // ------------------------------------------------------------------ API: state

  status(): AgentStatus {
    return {
      version: AGENT_VERSION,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      source: this.options.source?.kind ?? 'none',
      sourceSynced: this.sourceSynced,
      nodeName: this.options.nodeName,
      endpoints: this.registry.size,
      identities: this.liveIdentities(),
      policies: this.engine ? this.engine.policyStatus().length : 0,
      datapath: {
        pinRoot: this.options.datapath.pinRoot,
        programsPinned: this.options.maps?.programsPinned() ?? true,
        maps: this.mapStats(),
      },
      queue: { replayed: this.replayed, pending: this.queuePending() },
      ready: this.ready,
      revision: this.revision,
    };
  }

  listIdentities(): IdentitySummary[] {
    const counts = new Map<number, number>();
    for (const { state: s } of this.attachments.values())
      if (s) counts.set(s.identity, (counts.get(s.identity) ?? 0) + 1);
    const out: IdentitySummary[] = [];
    for (const [id, name] of RESERVED_NAMES)
      out.push({ identity: id, labels: [name], reserved: true, endpoints: counts.get(id) ?? 0 });
    if (this.engine) {
      for (const { id } of this.engine.identitySnapshot()) {
        const labels = this.engine.identityLabels(id);
        if (labels) out.push({ identity: id, labels, reserved: false, endpoints: counts.get(id) ?? 0 });
      }
    }
    return out;
  }

  listPolicies(): PolicySummary[] {
    if (!this.engine) return [];
    const selects = new Map<string, string[]>();
    for (const key of [...this.engine.endpointPolicies().keys()].sort()) {
      for (const p of this.engine.endpointStatus(key)?.policies ?? []) {
        let list = selects.get(p);
        if (!list) selects.set(p, (list = []));
        list.push(key);
      }
    }
    return this.engine
      .policyStatus()
      .map((p) => ({
        kind: p.kind,
        ...(p.namespace !== undefined && { namespace: p.namespace }),
        name: p.key.slice(p.key.lastIndexOf('/') + 1),
        selects: selects.get(p.key) ?? [],
        warnings: p.warnings.map((w) => ({ code: w.code, message: w.message })),
      }))
      .sort((a, b) =>
        `${a.kind}/${a.namespace ?? ''}/${a.name}` < `${b.kind}/${b.namespace ?? ''}/${b.name}` ? -1 : 1,
      );
  }

  trace(body: unknown): TraceResponse {
    const req = validateTraceRequest(body);
    if (!this.ready) throw new NotReadyError('the policy source has not synced yet');
    try {
      const r = this.engine.trace(req.from, req.to, req.port, req.protocol);
      return {
        ...r,
        verdict: r.verdict === 'allow' ? 'allowed' : 'denied',
        port: req.port,
        protocol: req.protocol,
      };
    } catch (err) {
      if (err instanceof PolicyEngineError) {
        if (err.code === 'UNKNOWN_ENDPOINT') throw new NotFoundError('UNKNOWN_ENDPOINT', err.message);
        throw new BadRequestError('INVALID_TRACE_REQUEST', err.message);
      }
      throw err;
    }
  }

  bpfPolicy(endpoint: string): BpfPolicyEntry[] {
    const id = this.resolveEndpoint(endpoint);
    let counters: PolicyCounter[];
    try {
      counters = this.options.datapath.readPolicyCounters(id);
    } catch (err) {
      throw new AgentError(
        'DATAPATH_ERROR',
        `reading the policy map of endpoint ${id}: ${(err as Error).message}`,
        500,
      );
    }
    const proto = (n: number | null) => (n === null ? 'ANY' : (PROTO_NAMES[n] ?? String(n)));
    return counters
      .map((c) => ({
        verdict: c.verdict,
        direction: c.direction,
        identity: c.identity,
        labels: c.identity === 0 ? ['reserved:all'] : (this.labelsOf(c.identity) ?? []),
        port:
          c.protocol === null
            ? 'ANY'
            : c.port === null
              ? `ANY/${proto(c.protocol)}`
              : c.portLow === c.portHigh
                ? `${c.portLow}/${proto(c.protocol)}`
                : `${c.portLow}-${c.portHigh}/${proto(c.protocol)}`,
        packets: c.packets.toString(),
        bytes: c.bytes.toString(),
        sortPort: c.portLow,
      }))
      .sort(
        (a, b) =>
          (a.direction === b.direction ? 0 : a.direction === 'ingress' ? -1 : 1) ||
          a.identity - b.identity ||
          a.sortPort - b.sortPort ||
          (a.port < b.port ? -1 : a.port > b.port ? 1 : 0),
      )
      .map(({ sortPort: _s, ...entry }) => entry);
  }

  /** An endpoint id from `12`, `<containerId>:<ifname>` or `NS/POD`. */
  private resolveEndpoint(text: string): number {
    if (/^\d+$/.test(text)) {
      const id = Number(text);
      if (this.registry.byEndpointId(id) || this.safeRecords().some((r) => r.endpointId === id)) return id;
      throw new NotFoundError('UNKNOWN_ENDPOINT', `no endpoint ${id}`);
    }
    if (text.includes('/')) {
      const ids = (this.podIndex.get(text) ?? []).map((a) => a.endpoint.endpointId);
      if (ids.length === 1) return ids[0]!;
      if (ids.length > 1)
        throw new AgentError(
          'AMBIGUOUS_ENDPOINT',
          `pod ${text} has endpoints ${ids.join(', ')}; give one id`,
          409,
        );
      throw new NotFoundError('UNKNOWN_ENDPOINT', `no endpoint for pod ${text}`);
    }
    const e = this.registry.get(text);
    if (e) return e.endpointId;
    throw new NotFoundError(
      'UNKNOWN_ENDPOINT',
      `no endpoint ${JSON.stringify(text)} (give an id, <containerId>:<ifname> or NS/POD)`,
    );
  }

  recentEvents(last: number, type?: FlowEvent['type']): FlowEvent[] {
    return this.events.recent(last, type);
  }

  followEvents(query: EventsQuery, send: (e: FlowEvent) => void): () => void {
    return this.events.follow(query, send);
  }

  /** The engine's identity labels, or a reserved identity's name. */
  private labelsOf(id: number): string[] | undefined {
    const reserved = RESERVED_NAMES.get(id);
    if (reserved) return [reserved];
    return this.engine?.identityLabels(id);
  }

  // ------------------------------------------------------------------ housekeeping

  /** Periodic: endpoints whose netns is gone, and work weft-cni queued while we looked away. */
  housekeeping(): void {
    if (!this.ready || this.stopped) return;
    try {
      for (const e of this.registry.all()) {
        if (!this.isNetns(e.registration.netns)) this.removeEndpoint(e.attachmentId, 'netns gone (GC)');
      }
      this.replayQueue();
    } catch (err) {
      this.log.error({ err }, 'housekeeping failed');
    }
  }

  /** Replays the queue through the normal paths (agent ready). */
  replayQueue(): number {
    let n = 0;
    for (const item of readQueue(this.options.queueDir)) {
      const work = this.checkQueued(item);
      if (!work) continue;
      try {
        if (work.kind === 'delete') {
          this.removeEndpoint(attachmentIdOf(work), 'queued deletion');
          dequeue(work, this.options.queueDir);
        } else {
          this.options.datapath.detachEndpoint(work.degradedEndpointId);
          this.register(work.registration);
          dequeue(work.registration, this.options.queueDir);
        }
        this.metrics.queueReplays.inc({ kind: work.kind, result: 'ok' });
        this.replayed++;
        n++;
      } catch (err) {
        this.metrics.queueReplays.inc({ kind: work.kind, result: 'error' });
        this.log.error({ file: item.file, err }, 'replaying queued work failed; will retry');
      }
    }
    return n;
  }

  private queuePending(): number {
    try {
      return readQueue(this.options.queueDir).length;
    } catch {
      return 0;
    }
  }

  private mapStats() {
    try {
      return this.options.maps?.stats() ?? [];
    } catch (err) {
      this.log.warn({ err }, 'cannot read BPF map stats');
      return [];
    }
  }

  private safeRecords() {
    try {
      return this.options.datapath.listEndpoints();
    } catch {
      return [];
    }
  }

  private persistIdentities(): void {
    try {
      writeJsonAtomic(this.identitiesFile, this.engine.identitySnapshot());
    } catch (err) {
      this.log.error({ err }, 'cannot persist identities');
    }
  }

  private liveIdentities(): number {
    if (this.identityCount === undefined) {
      let n = RESERVED_NAMES.size;
      if (this.engine)
        for (const { id } of this.engine.identitySnapshot()) if (this.engine.identityLabels(id)) n++;
      this.identityCount = n;
    }
    return this.identityCount;
  }

  /**
   * New identities reach the disk within 50 ms, off the path of the change itself. A crash in
   * between only costs the numbers of those identities: the restore allocates them anew and
   * rewrites every map consistently.
   */
  private schedulePersistIdentities(): void {
    if (this.persistTimer) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      this.persistIdentities();
    }, 50);
  }

  private observe(h: AgentMetrics['policyComputation'], trigger: Trigger, since: bigint): void {
    h.observe({ trigger }, Number(process.hrtime.bigint() - since) / 1e9);
  }
}

function recordState(r: EndpointRecord | undefined): AttachState | undefined {
  return (
    r && {
      state: 'ready',
      identity: r.identity,
      ingressEnforced: r.ingressEnforced,
      egressEnforced: r.egressEnforced,
    }
  );
}

const PROTO_NAMES: Record<number, string> = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP' };

function describe(c: SourceChange): string {
  if (c.kind === 'Namespace') return `${c.op} Namespace/${c.op === 'upsert' ? c.namespace.name : c.name}`;
  if (c.kind === 'Pod')
    return `${c.op} Pod/${c.op === 'upsert' ? `${c.pod.namespace}/${c.pod.name}` : `${c.namespace}/${c.name}`}`;
  return `${c.op} ${c.op === 'upsert' ? `${c.policy.kind}/${c.policy.metadata.name}` : c.key}`;
}

export { AGENT_API_VERSION };
