/**
 * The daemon's API: JSON over HTTP on a unix socket (mode 0600), used by the `weft-eni` IPAM
 * plugin. Errors come back as `{ code, msg, details }` with the CNI error number as `code`.
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { CNI_CODES, EniIpamError } from '../errors';
import type { Log } from './log';
import type { AllocateRequest, AllocationResult, EniPool, PoolStatus } from './pool';
import { allocationKey, type PoolState } from './store';

const MAX_BODY = 1 << 20;

/** Where the daemon listens (BRIEF: /var/run/weft/eni.sock); the config's default. */
export const DEFAULT_ENI_SOCKET = '/var/run/weft/eni.sock';

export interface AttachmentRef {
  containerId: string;
  ifname: string;
}

interface ErrorBody {
  code: number;
  msg: string;
  details?: string;
}

class BadRequest extends EniIpamError {
  constructor(msg: string) {
    super(CNI_CODES.invalidConfig, msg);
  }
}

function text(v: unknown, name: string, max: number, pattern?: RegExp): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max)
    throw new BadRequest(`${name} must be a string of 1..${max} characters`);
  if (pattern && !pattern.test(v)) throw new BadRequest(`${name} has characters that are not allowed`);
  return v;
}

const optText = (v: unknown, name: string): string | undefined =>
  v === undefined || v === '' ? undefined : text(v, name, 253);

function attachment(v: unknown): AttachmentRef {
  const o = (v ?? {}) as Record<string, unknown>;
  return {
    containerId: text(o.containerId, 'containerId', 256, /^[\w.-]+$/),
    // Linux interface names: at most 15 bytes, no '/', ':' or whitespace.
    ifname: text(o.ifname, 'ifname', 15, /^[^/:\s]+$/),
  };
}

function allocateRequest(v: unknown): AllocateRequest {
  const o = (v ?? {}) as Record<string, unknown>;
  return {
    ...attachment(o),
    netns: text(o.netns, 'netns', 4096),
    network: optText(o.network, 'network'),
    exclusive: o.exclusive === undefined ? undefined : o.exclusive === true,
    podNamespace: optText(o.podNamespace, 'podNamespace'),
    podName: optText(o.podName, 'podName'),
    podUid: optText(o.podUid, 'podUid'),
  };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new BadRequest('request body too large');
    chunks.push(c as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new EniIpamError(CNI_CODES.decodeFailure, 'request body is not JSON');
  }
}

export async function serveEniApi(pool: EniPool, socketPath: string, log: Log): Promise<Server> {
  const server = createServer((req, res) => void route(pool, req, res, log));
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o755 });
  rmSync(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  return server;
}

async function route(pool: EniPool, req: IncomingMessage, res: ServerResponse, log: Log): Promise<void> {
  const send = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  try {
    const path = `${req.method} ${new URL(req.url ?? '/', 'http://eni').pathname}`;
    switch (path) {
      case 'POST /v1/allocate': {
        const a = await pool.allocate(allocateRequest(await readJson(req)));
        return send(200, pool.result(a));
      }
      case 'POST /v1/release': {
        const r = attachment(await readJson(req));
        return send(200, { released: await pool.release(r.containerId, r.ifname) });
      }
      case 'POST /v1/check': {
        const r = attachment(await readJson(req));
        const a = pool.allocationOf(r.containerId, r.ifname);
        if (!a)
          return send(404, {
            code: CNI_CODES.unknownContainer,
            msg: `no ENI address for ${r.containerId}/${r.ifname}`,
          } satisfies ErrorBody);
        return send(200, pool.result(a));
      }
      case 'POST /v1/gc': {
        const body = (await readJson(req)) as { valid?: unknown; network?: unknown };
        if (!Array.isArray(body.valid)) throw new BadRequest('valid must be a list of {containerId, ifname}');
        const valid = new Set(
          body.valid.map((v) => attachment(v)).map((v) => allocationKey(v.containerId, v.ifname)),
        );
        return send(200, { released: await pool.gc(valid, optText(body.network, 'network')) });
      }
      case 'GET /v1/status':
        return send(200, pool.status());
      case 'GET /v1/state':
        return send(200, pool.state);
      default:
        return send(404, {
          code: CNI_CODES.invalidConfig,
          msg: `no such endpoint: ${path}`,
        } satisfies ErrorBody);
    }
  } catch (err) {
    if (err instanceof EniIpamError) {
      const status = err.cniCode === CNI_CODES.tryAgainLater ? 503 : 400;
      return send(status, { code: err.cniCode, msg: err.message, details: err.details } satisfies ErrorBody);
    }
    log.error('API request failed', { err: String(err) });
    send(500, { code: CNI_CODES.tryAgainLater, msg: `ENI daemon error: ${String(err)}` } satisfies ErrorBody);
  }
}

/** The plugin's side of the socket. */
export class EniDaemonClient {
  constructor(
    readonly socketPath: string,
    private readonly timeoutMs = 120_000,
  ) {}

  private call<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          socketPath: this.socketPath,
          method,
          path,
          headers: payload
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
            : {},
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            try {
              resolve({
                status: res.statusCode ?? 0,
                body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as T,
              });
            } catch (err) {
              reject(new EniIpamError(CNI_CODES.ioFailure, `bad answer from the ENI daemon: ${String(err)}`));
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) =>
        reject(
          new EniIpamError(
            CNI_CODES.tryAgainLater,
            `ENI daemon not reachable at ${this.socketPath}: ${err.code ?? err.message}`,
            'is `weft-eni daemon` running?',
          ),
        ),
      );
      req.end(payload);
    });
  }

  private async ok<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const r = await this.call<T | ErrorBody>(method, path, body);
    if (r.status !== 200) {
      const e = r.body as ErrorBody;
      throw new EniIpamError(e.code ?? CNI_CODES.tryAgainLater, e.msg ?? `HTTP ${r.status}`, e.details ?? '');
    }
    return r.body as T;
  }

  allocate(req: AllocateRequest): Promise<AllocationResult> {
    return this.ok('POST', '/v1/allocate', req);
  }
  release(ref: AttachmentRef): Promise<{ released: boolean }> {
    return this.ok('POST', '/v1/release', ref);
  }
  check(ref: AttachmentRef): Promise<AllocationResult> {
    return this.ok('POST', '/v1/check', ref);
  }
  gc(valid: AttachmentRef[], network?: string): Promise<{ released: string[] }> {
    return this.ok('POST', '/v1/gc', { valid, network });
  }
  status(): Promise<PoolStatus> {
    return this.ok('GET', '/v1/status');
  }
  state(): Promise<PoolState> {
    return this.ok('GET', '/v1/state');
  }
}
