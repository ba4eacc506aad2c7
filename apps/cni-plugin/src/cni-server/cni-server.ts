/**
 * The CNI server inside weft-agent: runs the requests the weft-cni shim forwards (shim/) with the
 * same code a weft-cni process runs, only warm. Each connection carries one request.
 *
 * A request's environment is its own: the plugin reads CNI_* and WEFT_LOG_* from it, not from the
 * agent's. Plugins it delegates to (IPAM other than weft-host-local) are started with the agent's
 * environment plus the request's CNI_* variables, as a weft-cni process would start them.
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { decodeRequest, encodeResponse, MAX_REQUEST_BYTES, type CniWireRequest } from './wire';

/** Where the shim looks for an agent's CNI server: its API socket's path, `.sock` -> `-cni.sock`. */
export function cniSocketFor(agentSocket: string): string {
  return `${agentSocket.replace(/\.sock$/, '')}-cni.sock`;
}

export interface CniServerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export type CniRunner = (req: CniWireRequest) => Promise<{ exitCode: number; stdout: string; stderr: string }>;

/** Runs one request through weft-cni's dispatcher, collecting what it prints. */
export const runForwardedRequest: CniRunner = async (req) => {
  // Loaded on the first request, like a mode: an agent that serves none never evaluates it.
  const { runWeftCniWith } = await import('../cni-main');
  const out: string[] = [];
  const exitCode = await runWeftCniWith({
    env: req.env,
    stdin: req.stdin,
    stdout: { write: (chunk: string) => out.push(chunk) },
  });
  return { exitCode, stdout: out.join(''), stderr: '' };
};

export class CniServer {
  private server?: Server;
  private socketIno?: number;
  private readonly connections = new Set<Socket>();
  /** Requests running now (what stop waits for: a half-done ADD is worse than a late exit). */
  private readonly running = new Set<Promise<unknown>>();

  constructor(
    readonly socketPath: string,
    private readonly logger: CniServerLogger,
    private readonly run: CniRunner = runForwardedRequest,
  ) {}

  async start(): Promise<void> {
    mkdirSync(dirname(this.socketPath), { recursive: true, mode: 0o755 });
    try {
      // The agent's own socket was checked for a live agent already: a socket here is stale.
      if (lstatSync(this.socketPath).isSocket()) unlinkSync(this.socketPath);
      else throw new Error(`${this.socketPath} exists and is not a socket; not replacing it`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // The shim half-closes after its request; the answer still has to go back.
    const server = createServer({ allowHalfOpen: true }, (socket) => this.serve(socket));
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(old);
    }
    chmodSync(this.socketPath, 0o600);
    this.socketIno = lstatSync(this.socketPath).ino;
    this.server = server;
    this.logger.info({ socket: this.socketPath }, 'serving CNI requests');
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    // No new requests (the shim then runs them itself); the ones running finish and answer.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    try {
      if (lstatSync(this.socketPath).ino === this.socketIno) unlinkSync(this.socketPath);
    } catch {
      /* already gone */
    }
    await Promise.allSettled([...this.running]);
    for (const c of this.connections) c.destroy();
    await closed;
  }

  private serve(socket: Socket): void {
    this.connections.add(socket);
    socket.on('close', () => this.connections.delete(socket));
    socket.on('error', () => socket.destroy());
    const chunks: Buffer[] = [];
    let size = 0;
    let started = false;
    socket.on('data', (chunk: Buffer) => {
      if (started) return;
      chunks.push(chunk);
      size += chunk.length;
      let req: CniWireRequest | undefined;
      try {
        if (size > MAX_REQUEST_BYTES) throw new Error(`request larger than ${MAX_REQUEST_BYTES} bytes`);
        req = decodeRequest(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'refused a malformed CNI request');
        socket.destroy(); // the shim then runs the request itself and reports what is wrong
        return;
      }
      if (!req) return;
      started = true;
      const t0 = process.hrtime.bigint();
      const work = this.run(req).then(
        (r) => {
          socket.end(encodeResponse(r.exitCode, r.stdout, r.stderr));
          this.logger.info(
            {
              command: req.env.CNI_COMMAND,
              containerId: req.env.CNI_CONTAINERID,
              ifname: req.env.CNI_IFNAME,
              exitCode: r.exitCode,
              ms: Math.round(Number(process.hrtime.bigint() - t0) / 1e5) / 10,
            },
            'CNI request',
          );
        },
        (err: unknown) => {
          this.logger.warn({ err: (err as Error)?.message }, 'CNI request failed in the server');
          socket.destroy();
        },
      );
      this.running.add(work);
      void work.finally(() => this.running.delete(work));
    });
  }
}
