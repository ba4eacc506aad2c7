/**
 * The Kubernetes source: informers (the client library's ListWatch: list, then watch from the
 * list's resourceVersion) on pods of this node (fieldSelector spec.nodeName), namespaces,
 * NetworkPolicies and the two cilium.io/v2 policy CRDs. The library relists by itself when a
 * watch says 410 Gone and reconnects after a clean close; when a list or watch fails it stops,
 * and this source restarts it with exponential backoff plus jitter. Watches ask for bookmarks so
 * a reconnect resumes from a recent resourceVersion instead of relisting.
 */
import {
  HttpMethod,
  IsomorphicFetchHttpLibrary,
  KubeConfig,
  ListWatch,
  RequestContext,
  Watch,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { policyKey } from '@weft/policy';
import { objectKey } from './manifest-objects';
import { kubeObjectRef, parseKubeObject, type KubeKind } from './kube-objects';
import type { PolicySource, SourceChange, SourceSink } from './source';

export interface KubernetesSourceOptions {
  /** A kubeconfig file; undefined: in-cluster (service account token, KUBERNETES_SERVICE_HOST). */
  kubeconfig?: string;
  nodeName: string;
  logger: Logger;
  /** Changes arriving within this many ms are applied as one batch. */
  batchMs?: number;
  /** Restart backoff after a failed list/watch: base, doubled per failure up to max, with jitter. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** A watch with no bytes for this long is considered dead and reopened. */
  watchIdleTimeoutMs?: number;
}

interface Resource {
  name: string;
  kind: KubeKind;
  path: string;
  fieldSelector?: string;
  /** CRDs may be absent from a cluster without Cilium: a 404 counts as an empty list. */
  optional: boolean;
  list: () => Promise<KubernetesListObject<KubernetesObject>>;
}

interface ResourceState {
  resource: Resource;
  informer: ListWatch<KubernetesObject>;
  listed: boolean;
  failures: number;
  restartTimer?: NodeJS.Timeout;
  /** Keys delivered as upserts (so deletes and relists only remove what the agent has). */
  known: Set<string>;
  lists: number;
  restarts: number;
}

/** A Watch that asks for bookmarks. */
class BookmarkingWatch extends Watch {
  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    return super.watch(path, { ...queryParams, allowWatchBookmarks: true }, callback, done);
  }
}

export class KubernetesSource implements PolicySource {
  readonly kind = 'kubernetes' as const;
  readonly description: string;
  private readonly kc = new KubeConfig();
  private readonly states: ResourceState[] = [];
  private pending: SourceChange[] = [];
  private flushTimer?: NodeJS.Timeout;
  private sink?: SourceSink;
  private synced = false;
  private stopped = false;
  private readonly log: Logger;

  constructor(private readonly options: KubernetesSourceOptions) {
    if (options.kubeconfig) this.kc.loadFromFile(options.kubeconfig);
    else this.kc.loadFromCluster();
    this.log = options.logger.child({ source: 'kubernetes' });
    this.description = `kubernetes ${this.kc.getCurrentCluster()?.server ?? '(no cluster)'}`;
  }

  /** Per resource: how often it was listed and restarted (tests, status). */
  stats(): { name: string; lists: number; restarts: number; objects: number }[] {
    return this.states.map((s) => ({
      name: s.resource.name,
      lists: s.lists,
      restarts: s.restarts,
      objects: s.known.size,
    }));
  }

  async start(sink: SourceSink): Promise<void> {
    this.sink = sink;
    const fieldSelector = `spec.nodeName=${this.options.nodeName}`;
    const list = (path: string, selector?: string) => () => this.rawList(path, selector);
    const resources: Resource[] = [
      { name: 'namespaces', kind: 'Namespace', path: '/api/v1/namespaces', optional: false },
      { name: 'pods', kind: 'Pod', path: '/api/v1/pods', fieldSelector, optional: false },
      {
        name: 'networkpolicies',
        kind: 'NetworkPolicy',
        path: '/apis/networking.k8s.io/v1/networkpolicies',
        optional: false,
      },
      {
        name: 'ciliumnetworkpolicies',
        kind: 'CiliumNetworkPolicy',
        path: '/apis/cilium.io/v2/ciliumnetworkpolicies',
        optional: true,
      },
      {
        name: 'ciliumclusterwidenetworkpolicies',
        kind: 'CiliumClusterwideNetworkPolicy',
        path: '/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies',
        optional: true,
      },
    ].map((r) => ({ ...r, kind: r.kind as KubeKind, list: list(r.path, r.fieldSelector) }));
    for (const r of resources) this.states.push(this.informerFor(r));
    for (const s of this.states) void this.run(s);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.flushTimer);
    for (const s of this.states) {
      clearTimeout(s.restartTimer);
      await s.informer.stop();
    }
  }

  /**
   * A list as the API server sends it, through the library's HTTP stack and authentication. Not
   * the typed clients: their models rename fields (`from` becomes `_from`), and the policy
   * parsers read the wire format.
   */
  private async rawList(
    path: string,
    fieldSelector?: string,
  ): Promise<KubernetesListObject<KubernetesObject>> {
    const server = this.kc.getCurrentCluster()?.server;
    if (!server) throw new Error('the kubeconfig has no current cluster');
    const url = new URL(server.replace(/\/+$/, '') + path);
    if (fieldSelector) url.searchParams.set('fieldSelector', fieldSelector);
    const ctx = new RequestContext(url.toString(), HttpMethod.GET);
    ctx.setHeaderParam('Accept', 'application/json');
    await this.kc.applySecurityAuthentication(ctx);
    const res = await this.http.send(ctx).toPromise();
    const text = await res.body.text();
    if (res.httpStatusCode !== 200) {
      let message = text.slice(0, 300);
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? message;
      } catch {
        /* not a Status */
      }
      throw Object.assign(new Error(`list ${path}: HTTP ${res.httpStatusCode}: ${message}`), {
        statusCode: res.httpStatusCode,
      });
    }
    return JSON.parse(text) as KubernetesListObject<KubernetesObject>;
  }

  private readonly http = new IsomorphicFetchHttpLibrary();

  private informerFor(resource: Resource): ResourceState {
    const watch = new BookmarkingWatch(this.kc);
    const idle = this.options.watchIdleTimeoutMs ?? 90_000;
    (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = idle;
    const state = {} as ResourceState;
    const list = async () => {
      let result: KubernetesListObject<KubernetesObject>;
      try {
        result = await resource.list();
      } catch (err) {
        if (resource.optional && statusOf(err) === 404) {
          this.log.debug(
            { resource: resource.name },
            'resource not served by this API server; treated as empty',
          );
          result = { apiVersion: 'v1', kind: 'List', metadata: {}, items: [] };
        } else throw err;
      }
      state.lists++;
      state.failures = 0;
      // Items of a list come without kind/apiVersion; ListWatch's callbacks run right after this
      // resolves, so "listed" is marked once they are done.
      setImmediate(() => this.listed(state));
      return result;
    };
    const informer = new ListWatch<KubernetesObject>(
      resource.path,
      watch,
      list,
      false,
      undefined,
      resource.fieldSelector,
    );
    Object.assign(state, {
      resource,
      informer,
      listed: false,
      failures: 0,
      known: new Set(),
      lists: 0,
      restarts: 0,
    });
    informer.on('add', (o) => this.upsert(state, o));
    informer.on('update', (o) => this.upsert(state, o));
    informer.on('delete', (o) => this.remove(state, o));
    informer.on('error', (err) => this.failed(state, err));
    return state;
  }

  private async run(state: ResourceState): Promise<void> {
    if (this.stopped) return;
    try {
      await state.informer.start();
    } catch (err) {
      this.failed(state, err);
    }
  }

  private failed(state: ResourceState, err: unknown): void {
    if (this.stopped) return;
    state.failures++;
    const base = this.options.backoffBaseMs ?? 500;
    const max = this.options.backoffMaxMs ?? 30_000;
    const delay = Math.min(max, base * 2 ** Math.min(state.failures - 1, 20));
    // Jitter spreads the reconnects of many agents after an API server restart.
    const jittered = Math.round(delay * (0.5 + Math.random() * 0.5));
    const status = statusOf(err);
    const quiet = state.resource.optional && status === 404;
    this.log[quiet ? 'debug' : 'warn'](
      {
        resource: state.resource.name,
        err: (err as Error)?.message ?? String(err),
        status,
        retryInMs: jittered,
      },
      'list/watch failed; restarting',
    );
    clearTimeout(state.restartTimer);
    state.restartTimer = setTimeout(() => {
      state.restarts++;
      void state.informer.stop().then(() => this.run(state));
    }, jittered);
  }

  private keyOf(state: ResourceState, raw: unknown): string {
    const ref = kubeObjectRef(raw);
    const kind = state.resource.kind;
    if (kind === 'Namespace') return `Namespace/${ref.name}`;
    if (kind === 'Pod') return `Pod/${ref.namespace ?? 'default'}/${ref.name}`;
    return policyKey({ kind, metadata: ref });
  }

  private upsert(state: ResourceState, raw: KubernetesObject): void {
    state.failures = 0;
    let parsed;
    try {
      parsed = parseKubeObject(state.resource.kind, raw);
    } catch (err) {
      // The previous version (if any) stays in force, like a manifest file that does not parse.
      this.log.error(
        { resource: state.resource.name, object: this.keyOf(state, raw), error: (err as Error).message },
        'object is invalid; keeping its previous version',
      );
      return;
    }
    state.known.add(objectKey(parsed));
    this.push({ op: 'upsert', ...parsed } as SourceChange);
  }

  private remove(state: ResourceState, raw: KubernetesObject): void {
    const key = this.keyOf(state, raw);
    if (!state.known.delete(key)) return;
    const ref = kubeObjectRef(raw);
    const kind = state.resource.kind;
    if (kind === 'Namespace') this.push({ op: 'delete', kind: 'Namespace', name: ref.name });
    else if (kind === 'Pod')
      this.push({ op: 'delete', kind: 'Pod', namespace: ref.namespace ?? 'default', name: ref.name });
    else this.push({ op: 'delete', kind: 'Policy', key });
  }

  private push(change: SourceChange): void {
    this.pending.push(change);
    if (!this.synced) return; // delivered with the initial state
    if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), this.options.batchMs ?? 10);
  }

  private flush(): void {
    this.flushTimer = undefined;
    if (this.stopped || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.sink?.apply(batch);
  }

  private listed(state: ResourceState): void {
    if (state.listed) return;
    state.listed = true;
    this.log.info({ resource: state.resource.name, objects: state.known.size }, 'initial list done');
    if (!this.synced && this.states.every((s) => s.listed)) {
      this.synced = true;
      this.flush();
      this.sink?.synced();
    }
  }
}

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | undefined;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  if (typeof e?.code === 'number') return e.code;
  return undefined;
}
