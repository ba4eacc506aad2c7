/**
 * An EMULATOR of the Kubernetes API server's list/watch protocol, for tests: there is no
 * kube-apiserver on this machine. It serves the resources weft-agent watches (namespaces, pods,
 * networkpolicies, ciliumnetworkpolicies, ciliumclusterwidenetworkpolicies) over plain HTTP with
 * the real wire behaviour the client library depends on:
 *
 * - one global resourceVersion (like etcd's revision) stamped on every write;
 * - list: `{kind: XList, metadata: {resourceVersion}, items}` (built-in items without kind and
 *   apiVersion, custom resources with, as the real server sends them);
 * - watch (`?watch=1|true`): a chunked stream of `{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR,
 *   "object": ...}` lines; from `resourceVersion=N` it replays retained history after N, without
 *   one it starts with synthetic ADDED events for what exists;
 * - `allowWatchBookmarks=true`: periodic BOOKMARK events carrying the current resourceVersion;
 * - a resourceVersion older than the retained history (after `compact()`): the watch answers 200
 *   with one ERROR event (Status 410 Expired, "too old resource version") and ends, a list 410;
 * - fieldSelector (metadata.name, metadata.namespace, spec.nodeName for pods; =, ==, !=), with
 *   the transitions the real server sends (an object leaving the selector arrives as DELETED);
 *   simple labelSelector (k=v, k!=v, k, !k); timeoutSeconds; bearer-token authentication.
 *
 * Tests use `dropWatches()` (every watch connection destroyed mid-stream) and `compact()` to force
 * reconnects and relists. Not emulated: writes over HTTP (tests write through the methods below),
 * pagination (`limit`/`continue` are ignored), protobuf, admission, discovery beyond what is here.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';

export interface EmulatedResource {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  /** Built-in kinds: list items are sent without kind/apiVersion. */
  builtin: boolean;
}

export const EMULATED_RESOURCES: readonly EmulatedResource[] = [
  { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false, builtin: true },
  { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true, builtin: true },
  {
    group: 'networking.k8s.io',
    version: 'v1',
    plural: 'networkpolicies',
    kind: 'NetworkPolicy',
    namespaced: true,
    builtin: true,
  },
  {
    group: 'cilium.io',
    version: 'v2',
    plural: 'ciliumnetworkpolicies',
    kind: 'CiliumNetworkPolicy',
    namespaced: true,
    builtin: false,
  },
  {
    group: 'cilium.io',
    version: 'v2',
    plural: 'ciliumclusterwidenetworkpolicies',
    kind: 'CiliumClusterwideNetworkPolicy',
    namespaced: false,
    builtin: false,
  },
];

type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };
type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEntry {
  rv: number;
  plural: string;
  type: EventType;
  object: Obj;
  previous?: Obj;
}

interface WatchConn {
  resource: EmulatedResource;
  namespace?: string;
  match: (o: Obj) => boolean;
  res: ServerResponse;
  socket: Socket;
  bookmarks?: NodeJS.Timeout;
  timeout?: NodeJS.Timeout;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  watch: boolean;
  status: number;
}

export interface EmulatorOptions {
  /** Bookmark period for watches that allow them (0: never). Default 500 ms. */
  bookmarkIntervalMs?: number;
  /** Require `Authorization: Bearer <token>`. */
  token?: string;
  /** Serve the cilium.io CRDs (false: 404, as a cluster without Cilium). Default true. */
  ciliumCrds?: boolean;
  /** Where the resourceVersion starts (default 1000). */
  initialResourceVersion?: number;
}

const apiVersionOf = (r: EmulatedResource) => (r.group ? `${r.group}/${r.version}` : r.version);

function status(code: number, reason: string, message: string): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

function parseFieldSelector(text: string, r: EmulatedResource): (o: Obj) => boolean {
  const tests = text
    .split(',')
    .filter(Boolean)
    .map((term) => {
      const m = /^([a-zA-Z.]+)(==|!=|=)(.*)$/.exec(term);
      if (!m) throw new HttpError(400, 'BadRequest', `invalid field selector term ${JSON.stringify(term)}`);
      const [, field, op, value] = m;
      const allowed = ['metadata.name', 'metadata.namespace', ...(r.kind === 'Pod' ? ['spec.nodeName'] : [])];
      if (!allowed.includes(field!))
        throw new HttpError(400, 'BadRequest', `field label not supported: ${field}`);
      const get = (o: Obj): string => {
        const [a, b] = field!.split('.') as [string, string];
        return String(((o[a] ?? {}) as Record<string, unknown>)[b] ?? '');
      };
      return (o: Obj) => (op === '!=' ? get(o) !== value : get(o) === value);
    });
  return (o) => tests.every((t) => t(o));
}

function parseLabelSelector(text: string): (o: Obj) => boolean {
  const tests = text
    .split(',')
    .filter(Boolean)
    .map((term) => {
      const labels = (o: Obj) => (o.metadata.labels ?? {}) as Record<string, string>;
      let m = /^([\w./-]+)\s*(==|!=|=)\s*([\w.-]*)$/.exec(term);
      if (m) {
        const [, k, op, v] = m;
        return (o: Obj) => (op === '!=' ? labels(o)[k!] !== v : labels(o)[k!] === v);
      }
      m = /^(!?)([\w./-]+)$/.exec(term);
      if (m) {
        const [, not, k] = m;
        return (o: Obj) => k! in labels(o) !== (not === '!');
      }
      throw new HttpError(400, 'BadRequest', `unsupported label selector term ${JSON.stringify(term)}`);
    });
  return (o) => tests.every((t) => t(o));
}

export class KubeApiserverEmulator {
  private server?: Server;
  private rv = 1000;
  /** Watches from a resourceVersion below this answer 410 Expired. */
  private floor = 1000;
  private readonly store = new Map<string, Map<string, Obj>>();
  private history: HistoryEntry[] = [];
  private readonly watches = new Set<WatchConn>();
  readonly requests: RequestRecord[] = [];
  /** BOOKMARK events sent: resource plural and resourceVersion. */
  readonly bookmarksSent: { plural: string; resourceVersion: number }[] = [];
  url = '';

  constructor(private readonly options: EmulatorOptions = {}) {
    for (const r of EMULATED_RESOURCES) this.store.set(r.plural, new Map());
    this.rv = this.floor = options.initialResourceVersion ?? 1000;
  }

  /** Listens on 127.0.0.1 (port 0: any free one); returns the base URL. */
  async start(port = 0): Promise<string> {
    const server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    const addr = server.address();
    this.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.dropWatches();
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** A kubeconfig for the real client library pointing at this emulator. */
  writeKubeconfig(file: string): string {
    const token = this.options.token;
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: emulator`,
        // Plain HTTP: the client library accepts it only with TLS verification off.
        `  cluster: {server: "${this.url}", insecure-skip-tls-verify: true}`,
        'users:',
        `- name: tester`,
        `  user: {${token ? `token: "${token}"` : ''}}`,
        'contexts:',
        '- name: emulator',
        '  context: {cluster: emulator, user: tester}',
        'current-context: emulator',
        '',
      ].join('\n'),
    );
    return file;
  }

  get resourceVersion(): number {
    return this.rv;
  }

  /** Creates or replaces an object (kind picks the resource); returns it as stored. */
  apply(object: Record<string, unknown>): Obj {
    const r = this.resourceOf(String(object.kind));
    const o = structuredClone(object) as Obj;
    o.apiVersion = apiVersionOf(r);
    o.metadata = { ...(o.metadata ?? {}) };
    if (r.namespaced) o.metadata.namespace ??= 'default';
    else delete o.metadata.namespace;
    const key = this.keyOf(r, o);
    const objects = this.store.get(r.plural)!;
    const previous = objects.get(key);
    this.rv++;
    o.metadata.resourceVersion = String(this.rv);
    o.metadata.uid = previous?.metadata.uid ?? randomUUID();
    o.metadata.creationTimestamp = previous?.metadata.creationTimestamp ?? new Date().toISOString();
    objects.set(key, o);
    this.record({
      rv: this.rv,
      plural: r.plural,
      type: previous ? 'MODIFIED' : 'ADDED',
      object: o,
      previous,
    });
    return o;
  }

  delete(kind: string, name: string, namespace?: string): boolean {
    const r = this.resourceOf(kind);
    const key = r.namespaced ? `${namespace ?? 'default'}/${name}` : name;
    const objects = this.store.get(r.plural)!;
    const previous = objects.get(key);
    if (!previous) return false;
    objects.delete(key);
    this.rv++;
    const object = structuredClone(previous);
    object.metadata.resourceVersion = String(this.rv);
    this.record({ rv: this.rv, plural: r.plural, type: 'DELETED', object, previous });
    return true;
  }

  /** Forgets the history: watches from an older resourceVersion get 410 Expired. */
  compact(): void {
    this.history = [];
    this.floor = this.rv;
  }

  /** Destroys every open watch connection (the server side of a network failure). */
  dropWatches(): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) {
      this.endWatch(w);
      w.socket.destroy();
    }
    return n;
  }

  /** Watches currently open on a resource. */
  openWatches(plural?: string): number {
    return [...this.watches].filter((w) => !plural || w.resource.plural === plural).length;
  }

  /** Requests seen for one resource (`lists`, `watches`). */
  count(plural: string, what: 'list' | 'watch'): number {
    return this.requests.filter((r) => r.path.endsWith(`/${plural}`) && r.watch === (what === 'watch'))
      .length;
  }

  // ---------------------------------------------------------------- HTTP

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url || 'http://127.0.0.1');
    const query = Object.fromEntries(url.searchParams);
    const watch = query.watch === '1' || query.watch === 'true';
    const rec: RequestRecord = { method: req.method ?? 'GET', path: url.pathname, query, watch, status: 0 };
    this.requests.push(rec);
    const fail = (e: HttpError) => {
      rec.status = e.code;
      this.sendJson(res, e.code, status(e.code, e.reason, e.message));
    };
    try {
      if (this.options.token && req.headers.authorization !== `Bearer ${this.options.token}`)
        throw new HttpError(401, 'Unauthorized', 'Unauthorized');
      if (req.method !== 'GET')
        throw new HttpError(405, 'MethodNotAllowed', `${req.method} is not supported by the emulator`);
      if (url.pathname === '/version') {
        rec.status = 200;
        return this.sendJson(res, 200, { major: '1', minor: '31', gitVersion: 'v1.31.0-weft-emulator' });
      }
      const { resource, namespace } = this.route(url.pathname);
      const match = this.matcher(resource, namespace, query);
      rec.status = 200;
      if (watch) this.watch(req, res, resource, namespace, match, query);
      else this.list(res, resource, match, query, rec);
    } catch (err) {
      if (err instanceof HttpError) fail(err);
      else fail(new HttpError(500, 'InternalError', (err as Error).message));
    }
  }

  private route(path: string): { resource: EmulatedResource; namespace?: string } {
    // /api/v1/{plural} | /api/v1/namespaces/{ns}/{plural} | /apis/{g}/{v}/{plural} | /apis/{g}/{v}/namespaces/{ns}/{plural}
    const m =
      /^\/api\/(v1)\/(?:namespaces\/([^/]+)\/)?([a-z]+)$/.exec(path) ??
      /^\/apis\/([^/]+\/[^/]+)\/(?:namespaces\/([^/]+)\/)?([a-z]+)$/.exec(path);
    const resource = m && EMULATED_RESOURCES.find((r) => apiVersionOf(r) === m[1] && r.plural === m[3]);
    if (!m || !resource || (resource.group === 'cilium.io' && this.options.ciliumCrds === false))
      throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${path})`);
    if (m[2] !== undefined && !resource.namespaced)
      throw new HttpError(404, 'NotFound', `${resource.plural} is not namespaced`);
    return { resource, ...(m[2] !== undefined && { namespace: m[2] }) };
  }

  private matcher(r: EmulatedResource, namespace: string | undefined, query: Record<string, string>) {
    const field = query.fieldSelector ? parseFieldSelector(query.fieldSelector, r) : () => true;
    const label = query.labelSelector ? parseLabelSelector(query.labelSelector) : () => true;
    return (o: Obj) =>
      (namespace === undefined || o.metadata.namespace === namespace) && field(o) && label(o);
  }

  private list(
    res: ServerResponse,
    r: EmulatedResource,
    match: (o: Obj) => boolean,
    query: Record<string, string>,
    rec: RequestRecord,
  ): void {
    const asked = query.resourceVersion;
    if (asked && asked !== '0' && Number(asked) < this.floor) {
      rec.status = 410;
      return this.sendJson(
        res,
        410,
        status(410, 'Expired', `too old resource version: ${asked} (${this.floor})`),
      );
    }
    const items = [...this.store.get(r.plural)!.values()].filter(match).map((o) => {
      if (!r.builtin) return o;
      const { apiVersion: _a, kind: _k, ...rest } = o;
      return rest;
    });
    this.sendJson(res, 200, {
      kind: `${r.kind}List`,
      apiVersion: apiVersionOf(r),
      metadata: { resourceVersion: String(this.rv) },
      items,
    });
  }

  private watch(
    req: IncomingMessage,
    res: ServerResponse,
    r: EmulatedResource,
    namespace: string | undefined,
    match: (o: Obj) => boolean,
    query: Record<string, string>,
  ): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const w: WatchConn = {
      resource: r,
      ...(namespace !== undefined && { namespace }),
      match,
      res,
      socket: req.socket,
    };
    const from = query.resourceVersion;
    if (from && from !== '0' && Number(from) < this.floor) {
      this.send(w, {
        type: 'ERROR',
        object: status(410, 'Expired', `too old resource version: ${from} (${this.floor})`),
      });
      res.end();
      return;
    }
    this.watches.add(w);
    req.on('close', () => this.endWatch(w));
    if (!from || from === '0') {
      for (const o of this.store.get(r.plural)!.values())
        if (match(o)) this.send(w, { type: 'ADDED', object: o });
    } else {
      for (const h of this.history) if (h.rv > Number(from)) this.deliver(w, h);
    }
    const every = this.options.bookmarkIntervalMs ?? 500;
    if (query.allowWatchBookmarks === 'true' && every > 0) {
      w.bookmarks = setInterval(() => {
        this.bookmarksSent.push({ plural: r.plural, resourceVersion: this.rv });
        this.send(w, {
          type: 'BOOKMARK',
          object: {
            kind: r.kind,
            apiVersion: apiVersionOf(r),
            metadata: { resourceVersion: String(this.rv) },
          },
        });
      }, every);
    }
    const timeout = Number(query.timeoutSeconds ?? 0);
    if (timeout > 0) w.timeout = setTimeout(() => this.endWatch(w, true), timeout * 1000);
  }

  private record(h: HistoryEntry): void {
    this.history.push(h);
    for (const w of this.watches) this.deliver(w, h);
  }

  /** One history entry to one watch, with selector transitions. */
  private deliver(w: WatchConn, h: HistoryEntry): void {
    if (h.plural !== w.resource.plural) return;
    const now = h.type !== 'DELETED' && w.match(h.object);
    const before = h.previous !== undefined && w.match(h.previous);
    let type: EventType | undefined;
    if (h.type === 'DELETED') type = before ? 'DELETED' : undefined;
    else if (now && before) type = 'MODIFIED';
    else if (now) type = 'ADDED';
    else if (before) type = 'DELETED';
    if (type) this.send(w, { type, object: h.object });
  }

  private send(w: WatchConn, event: { type: string; object: unknown }): void {
    if (!w.res.writableEnded) w.res.write(`${JSON.stringify(event)}\n`);
  }

  private endWatch(w: WatchConn, graceful = false): void {
    clearInterval(w.bookmarks);
    clearTimeout(w.timeout);
    this.watches.delete(w);
    if (graceful && !w.res.writableEnded) w.res.end();
  }

  private sendJson(res: ServerResponse, code: number, body: unknown): void {
    const payload = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
    res.end(payload);
  }

  private resourceOf(kind: string): EmulatedResource {
    const r = EMULATED_RESOURCES.find((x) => x.kind === kind);
    if (!r) throw new Error(`the emulator does not serve kind ${kind}`);
    return r;
  }

  private keyOf(r: EmulatedResource, o: Obj): string {
    const name = String(o.metadata.name ?? '');
    if (!name) throw new Error('metadata.name is required');
    return r.namespaced ? `${String(o.metadata.namespace)}/${name}` : name;
  }
}
