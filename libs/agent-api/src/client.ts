/**
 * Client of the agent API over its unix socket (node:http with socketPath). Used by weft-cni
 * (register/remove endpoints) and the weft CLI (read state).
 */
import { request, type IncomingMessage } from 'node:http';
import { createInterface } from 'node:readline';
import {
  DEFAULT_AGENT_SOCKET,
  type AgentHealth,
  type AgentStatus,
  type ApiErrorBody,
  type AttachmentRef,
  type BpfPolicyEntry,
  type EndpointRegistered,
  type EndpointRegistration,
  type EndpointSummary,
  type EventsQuery,
  type FlowEvent,
  type IdentitySummary,
  type PolicySummary,
  type TraceRequest,
  type TraceResponse,
  attachmentId,
} from './types';

/** Socket errors that mean "no agent is listening" (as opposed to "the agent said no"). */
const UNREACHABLE_CODES = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EACCES']);

/** The agent could not be reached: not running, socket missing, or no answer in time. */
export class AgentUnavailableError extends Error {
  readonly code = 'AGENT_UNAVAILABLE';
  readonly retryable = true;
  constructor(
    readonly socketPath: string,
    reason: string,
  ) {
    super(`weft-agent is not reachable at ${socketPath}: ${reason}`);
    this.name = 'AgentUnavailableError';
  }
}

/** The agent answered with an error status. */
export class AgentApiError extends Error {
  readonly retryable: boolean;
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AgentApiError';
    this.retryable = status === 503 || status === 429;
  }
}

export interface AgentClientOptions {
  socketPath?: string;
  /** Per request (default 10 s; weft-cni sets less). */
  timeoutMs?: number;
}

export class AgentClient {
  readonly socketPath: string;
  readonly timeoutMs: number;

  constructor(options: AgentClientOptions = {}) {
    this.socketPath = options.socketPath ?? DEFAULT_AGENT_SOCKET;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  health(): Promise<AgentHealth> {
    return this.call('GET', '/v1/healthz');
  }

  status(): Promise<AgentStatus> {
    return this.call('GET', '/v1/status');
  }

  registerEndpoint(reg: EndpointRegistration): Promise<EndpointRegistered> {
    return this.call('PUT', `/v1/endpoints/${encodeURIComponent(attachmentId(reg))}`, reg);
  }

  /** Succeeds when the endpoint is unknown. */
  async removeEndpoint(ref: AttachmentRef): Promise<void> {
    await this.call('DELETE', `/v1/endpoints/${encodeURIComponent(attachmentId(ref))}`);
  }

  listEndpoints(): Promise<EndpointSummary[]> {
    return this.call('GET', '/v1/endpoints');
  }

  listIdentities(): Promise<IdentitySummary[]> {
    return this.call('GET', '/v1/identities');
  }

  listPolicies(): Promise<PolicySummary[]> {
    return this.call('GET', '/v1/policies');
  }

  trace(req: TraceRequest): Promise<TraceResponse> {
    return this.call('POST', '/v1/policy/trace', req);
  }

  bpfPolicy(endpoint: string): Promise<BpfPolicyEntry[]> {
    return this.call('GET', `/v1/bpf/policy/${encodeURIComponent(endpoint)}`);
  }

  metrics(): Promise<string> {
    return this.call('GET', '/metrics', undefined, 'text');
  }

  /**
   * Datapath events (GET /v1/events), one per iteration. With `follow` the stream stays open until
   * the loop breaks, `signal` aborts, or the agent goes away (then the iterator ends).
   */
  async *observe(query: EventsQuery = {}, signal?: AbortSignal): AsyncGenerator<FlowEvent> {
    const params = new URLSearchParams();
    if (query.follow) params.set('follow', '1');
    if (query.last !== undefined) params.set('last', String(query.last));
    if (query.type) params.set('type', query.type);
    if (query.verdicts) params.set('verdicts', '1');
    const qs = params.toString();
    const res = await this.open('GET', `/v1/events${qs ? `?${qs}` : ''}`, signal);
    const lines = createInterface({ input: res, crlfDelay: Infinity });
    // Closing the interface ends the iteration (a destroyed stream alone may never say "end").
    const stop = () => {
      lines.close();
      res.destroy();
    };
    res.on('close', () => lines.close());
    signal?.addEventListener('abort', stop, { once: true });
    try {
      for await (const line of lines) {
        if (line.trim() === '') continue;
        yield JSON.parse(line) as FlowEvent;
      }
    } catch (err) {
      // An abort or the agent closing the stream ends iteration; anything else is reported.
      if (!signal?.aborted && (err as NodeJS.ErrnoException).code !== 'ECONNRESET') throw err;
    } finally {
      signal?.removeEventListener('abort', stop);
      lines.close();
      res.destroy();
    }
  }

  /** A streaming request: resolves with the response once its status is 2xx. */
  private open(method: string, path: string, signal?: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          method,
          path,
          headers: { host: 'weft-agent', accept: 'application/x-ndjson' },
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve(res);
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => reject(apiError(status, Buffer.concat(chunks).toString('utf8'))));
        },
      );
      // Only the connection attempt is timed: a followed stream may stay quiet for hours.
      const timer = setTimeout(
        () =>
          req.destroy(Object.assign(new Error(`no answer in ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' })),
        this.timeoutMs,
      );
      req.on('response', () => clearTimeout(timer));
      req.on('close', () => clearTimeout(timer));
      signal?.addEventListener('abort', () => req.destroy(), { once: true });
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (err.code && UNREACHABLE_CODES.has(err.code))
          reject(new AgentUnavailableError(this.socketPath, `${err.code}: ${err.message}`));
        else reject(err);
      });
      req.end();
    });
  }

  /** One request; JSON in and out. 204 resolves to undefined. */
  call<T>(method: string, path: string, body?: unknown, as: 'json' | 'text' = 'json'): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          // A connection per request: a kept-alive one may be closed by the agent (its keep-alive
          // timeout, or a restart on the same path) just as it is reused, and the write fails with
          // EPIPE. Connecting to a unix socket costs microseconds.
          agent: false,
          method,
          path,
          headers: {
            host: 'weft-agent',
            accept: as === 'json' ? 'application/json' : 'text/plain',
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => reject(new AgentUnavailableError(this.socketPath, err.message)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status < 200 || status >= 300) {
              reject(apiError(status, text));
              return;
            }
            if (status === 204 || text === '') return resolve(undefined as T);
            if (as === 'text') return resolve(text as T);
            try {
              resolve(JSON.parse(text) as T);
            } catch {
              reject(
                new AgentApiError(status, 'BAD_RESPONSE', `agent sent invalid JSON: ${text.slice(0, 200)}`),
              );
            }
          });
        },
      );
      req.on('timeout', () =>
        req.destroy(Object.assign(new Error(`no answer in ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' })),
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code && UNREACHABLE_CODES.has(err.code))
          reject(new AgentUnavailableError(this.socketPath, `${err.code}: ${err.message}`));
        else reject(err);
      });
      req.end(payload);
    });
  }
}

/** An ApiErrorBody (or any other text) as an AgentApiError. */
function apiError(status: number, text: string): AgentApiError {
  let code = `HTTP_${status}`;
  let message = text.trim() || `agent answered ${status}`;
  try {
    const parsed = JSON.parse(text) as ApiErrorBody;
    if (parsed?.error) ({ code, message } = parsed.error);
  } catch {
    /* not JSON: keep the raw text */
  }
  return new AgentApiError(status, code, message);
}
