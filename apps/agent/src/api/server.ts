/**
 * The agent API: HTTP/1.1 over a unix socket (mode 0600), JSON in and out, errors as
 * ApiErrorBody with a stable code (the wire contract is @weft/agent-api's types.ts). The same
 * handlers also serve /metrics on an optional TCP address for Prometheus.
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import {
  AgentClient,
  AgentUnavailableError,
  type AgentHealth,
  type AgentStatus,
  type ApiErrorBody,
  type BpfPolicyEntry,
  type EndpointRegistered,
  type EndpointSummary,
  type EventsQuery,
  type FlowEvent,
  type IdentitySummary,
  type PolicySummary,
  type TraceResponse,
} from '@weft/agent-api';
import type { Logger } from 'pino';
import { AgentError, BadRequestError, NotFoundError, SocketInUseError } from '../errors';
import type { AgentMetrics } from '../metrics';

const MAX_BODY_BYTES = 1 << 20;
/** A follower that stops reading is skipped (not buffered without bound). */
const MAX_STREAM_BUFFER = 1 << 20;

export interface AgentApiHandlers {
  health(): AgentHealth;
  status(): AgentStatus;
  registerEndpoint(attachmentId: string, body: unknown): Promise<EndpointRegistered>;
  removeEndpoint(attachmentId: string): void;
  listEndpoints(): EndpointSummary[];
  listIdentities(): IdentitySummary[];
  listPolicies(): PolicySummary[];
  trace(body: unknown): TraceResponse;
  bpfPolicy(endpoint: string): BpfPolicyEntry[];
  recentEvents(last: number, type?: FlowEvent['type']): FlowEvent[];
  followEvents(query: EventsQuery, send: (e: FlowEvent) => void): () => void;
}

type Route = {
  method: string;
  pattern: RegExp;
  name: string;
  handle: (req: IncomingMessage, res: ServerResponse, m: RegExpExecArray, url: URL) => Promise<void> | void;
};

class MethodNotAllowedError extends AgentError {
  constructor(
    method: string,
    path: string,
    readonly allowed: string[],
  ) {
    super('METHOD_NOT_ALLOWED', `${method} is not allowed on ${path} (allowed: ${allowed.join(', ')})`, 405);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const payload = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': payload.length });
  res.end(payload);
}

function sendError(res: ServerResponse, err: AgentError): void {
  const body: ApiErrorBody = { error: { code: err.code, message: err.message } };
  if (err instanceof MethodNotAllowedError) res.setHeader('allow', err.allowed.join(', '));
  sendJson(res, err.status, body);
}

async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json')
    throw new AgentError(
      'UNSUPPORTED_MEDIA_TYPE',
      `expected content-type application/json, got ${JSON.stringify(type)}`,
      415,
    );
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES)
    throw new AgentError('PAYLOAD_TOO_LARGE', `body over ${MAX_BODY_BYTES} bytes`, 413);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES)
      throw new AgentError('PAYLOAD_TOO_LARGE', `body over ${MAX_BODY_BYTES} bytes`, 413);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BadRequestError('INVALID_JSON', `body is not JSON: ${(err as Error).message}`);
  }
}

function decodeParam(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new BadRequestError('INVALID_PATH', `bad percent-encoding in ${JSON.stringify(raw)}`);
  }
}

function flag(url: URL, name: string): boolean {
  const v = url.searchParams.get(name);
  return v === '1' || v === 'true' || v === '';
}

export class AgentApiServer {
  private readonly routes: Route[];
  private readonly servers: Server[] = [];
  private readonly streams = new Set<ServerResponse>();
  private socketIno?: number;

  constructor(
    private readonly api: AgentApiHandlers,
    private readonly metrics: AgentMetrics,
    private readonly logger: Logger,
  ) {
    const json = (fn: () => unknown) => (_q: IncomingMessage, res: ServerResponse) =>
      sendJson(res, 200, fn());
    this.routes = [
      { method: 'GET', pattern: /^\/v1\/healthz$/, name: 'healthz', handle: json(() => api.health()) },
      { method: 'GET', pattern: /^\/v1\/status$/, name: 'status', handle: json(() => api.status()) },
      {
        method: 'GET',
        pattern: /^\/v1\/endpoints$/,
        name: 'endpoints',
        handle: json(() => api.listEndpoints()),
      },
      {
        method: 'PUT',
        pattern: /^\/v1\/endpoints\/([^/]+)$/,
        name: 'endpoint',
        handle: async (req, res, m) => {
          const id = decodeParam(m[1]!);
          const body = await readJsonBody(req);
          sendJson(res, 200, await api.registerEndpoint(id, body));
        },
      },
      {
        method: 'DELETE',
        pattern: /^\/v1\/endpoints\/([^/]+)$/,
        name: 'endpoint',
        handle: (_req, res, m) => {
          api.removeEndpoint(decodeParam(m[1]!));
          res.writeHead(204).end();
        },
      },
      {
        method: 'GET',
        pattern: /^\/v1\/identities$/,
        name: 'identities',
        handle: json(() => api.listIdentities()),
      },
      {
        method: 'GET',
        pattern: /^\/v1\/policies$/,
        name: 'policies',
        handle: json(() => api.listPolicies()),
      },
      {
        method: 'POST',
        pattern: /^\/v1\/policy\/trace$/,
        name: 'trace',
        handle: async (req, res) => sendJson(res, 200, api.trace(await readJsonBody(req))),
      },
      {
        method: 'GET',
        pattern: /^\/v1\/bpf\/policy\/([^/]+)$/,
        name: 'bpf-policy',
        handle: (_req, res, m) => sendJson(res, 200, api.bpfPolicy(decodeParam(m[1]!))),
      },
      {
        method: 'GET',
        pattern: /^\/v1\/events$/,
        name: 'events',
        handle: (req, res, _m, url) => this.events(req, res, url),
      },
      {
        method: 'GET',
        pattern: /^\/metrics$/,
        name: 'metrics',
        handle: async (_req, res) => {
          const text = await this.metrics.text();
          res.writeHead(200, { 'content-type': this.metrics.contentType });
          res.end(text);
        },
      },
    ];
  }

  /**
   * Listens on the unix socket: refuses when a live agent answers there, replaces a stale socket
   * file, creates the new one with mode 0600 (umask while binding, chmod after).
   */
  async listenUnix(path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    let existing;
    try {
      existing = lstatSync(path);
    } catch {
      existing = undefined;
    }
    if (existing) {
      if (!existing.isSocket())
        throw new SocketInUseError(
          'SOCKET_PATH_IN_USE',
          `${path} exists and is not a socket; not replacing it`,
        );
      try {
        const h = await new AgentClient({ socketPath: path, timeoutMs: 1000 }).health();
        throw new SocketInUseError(
          'AGENT_ALREADY_RUNNING',
          `another weft-agent (version ${h.version}) is serving ${path}; stop it first`,
        );
      } catch (err) {
        if (err instanceof SocketInUseError) throw err;
        if (!(err instanceof AgentUnavailableError)) {
          // Something answered, but not as an agent: still not ours to remove.
          throw new SocketInUseError(
            'SOCKET_PATH_IN_USE',
            `${path} is answered by something else: ${(err as Error).message}`,
          );
        }
        this.logger.info({ socket: path }, 'replacing a stale socket file');
        unlinkSync(path);
      }
    }
    const server = this.makeServer();
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(old);
    }
    chmodSync(path, 0o600);
    this.socketIno = lstatSync(path).ino;
    this.socketPath = path;
    this.servers.push(server);
  }

  private socketPath?: string;

  /** Prometheus on TCP: /metrics and /v1/healthz only (the rest of the API stays on the socket). */
  async listenMetrics(host: string, port: number): Promise<{ port: number }> {
    const server = this.makeServer(new Set(['metrics', 'healthz']));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.servers.push(server);
    const addr = server.address();
    return { port: typeof addr === 'object' && addr ? addr.port : port };
  }

  async close(): Promise<void> {
    for (const s of this.streams) s.destroy();
    this.streams.clear();
    await Promise.all(
      this.servers.splice(0).map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    // Remove the socket file if it is still the one we made (not a successor's).
    if (this.socketPath) {
      try {
        if (lstatSync(this.socketPath).ino === this.socketIno) unlinkSync(this.socketPath);
      } catch {
        /* already gone */
      }
    }
  }

  private makeServer(only?: Set<string>): Server {
    const server = createServer((req, res) => void this.dispatch(req, res, only));
    server.requestTimeout = 30_000;
    server.headersTimeout = 10_000;
    return server;
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse, only?: Set<string>): Promise<void> {
    const method = req.method ?? 'GET';
    let routeName = 'unknown';
    try {
      const url = new URL(req.url ?? '/', 'http://weft-agent');
      const matching = this.routes.filter((r) => (!only || only.has(r.name)) && r.pattern.test(url.pathname));
      if (matching.length === 0) throw new NotFoundError('NOT_FOUND', `no such API path ${url.pathname}`);
      const route = matching.find((r) => r.method === method || (method === 'HEAD' && r.method === 'GET'));
      if (!route)
        throw new MethodNotAllowedError(method, url.pathname, [...new Set(matching.map((r) => r.method))]);
      routeName = route.name;
      await route.handle(req, res, route.pattern.exec(url.pathname)!, url);
    } catch (err) {
      const e =
        err instanceof AgentError
          ? err
          : typeof (err as { code?: unknown })?.code === 'string' &&
              /^[A-Z_]+$/.test((err as { code: string }).code)
            ? new AgentError((err as { code: string }).code, (err as Error).message, 500)
            : new AgentError('INTERNAL', (err as Error)?.message ?? String(err), 500);
      if (e.status >= 500) this.logger.error({ err, route: routeName, method }, 'API request failed');
      else
        this.logger.debug(
          { code: e.code, route: routeName, method, message: e.message },
          'API request refused',
        );
      if (!res.headersSent) sendError(res, e);
      else res.destroy();
    } finally {
      this.metrics.apiRequests.inc({ method, route: routeName, code: String(res.statusCode) });
    }
  }

  private events(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const type = url.searchParams.get('type') ?? undefined;
    if (type !== undefined && !['drop', 'policy-verdict', 'trace'].includes(type))
      throw new BadRequestError(
        'INVALID_QUERY',
        `type: drop, policy-verdict or trace, got ${JSON.stringify(type)}`,
      );
    const lastText = url.searchParams.get('last');
    const last = lastText === null ? 100 : Number(lastText);
    if (!Number.isInteger(last) || last < 0 || last > 100_000)
      throw new BadRequestError(
        'INVALID_QUERY',
        `last: an integer 0..100000, got ${JSON.stringify(lastText)}`,
      );
    const query: EventsQuery = {
      follow: flag(url, 'follow'),
      last,
      ...(type && { type: type as FlowEvent['type'] }),
      verdicts: flag(url, 'verdicts'),
    };
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    const send = (e: FlowEvent) => {
      if (res.writableLength > MAX_STREAM_BUFFER) return; // a stalled reader loses events, the agent does not
      res.write(`${JSON.stringify(e)}\n`);
    };
    for (const e of this.api.recentEvents(last, query.type)) send(e);
    if (!query.follow) {
      res.end();
      return;
    }
    this.streams.add(res);
    const unfollow = this.api.followEvents(query, send);
    const done = () => {
      unfollow();
      this.streams.delete(res);
    };
    req.on('close', done);
    res.on('close', done);
    res.on('error', done);
  }
}
