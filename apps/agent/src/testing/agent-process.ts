/**
 * weft-agent as its own process for the privileged tests: bundled once with esbuild (as the
 * shipped binary is) and started with `nsenter --net=<node netns>` so it runs where an agent runs
 * on a node, next to the host ends of the pods' veths. Its JSON logs go to a file that the tests
 * print when something fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildSync } from 'esbuild';
import { AgentClient, type AgentStatus } from '@weft/agent-api';

export const REPO_ROOT = resolve(__dirname, '../../../..');
export const BPF_OBJECT_DIR = join(REPO_ROOT, 'bpf/build');
export const NATIVE_DIR = join(REPO_ROOT, 'libs/native/build/Release');

/** Bundles src/testing/agent-bin.ts into `<outDir>/weft-agent.cjs`. */
export function bundleAgent(outDir: string): string {
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, 'weft-agent.cjs');
  buildSync({
    entryPoints: [join(__dirname, 'agent-bin.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outfile,
    logLevel: 'error',
  });
  return outfile;
}

export interface AgentProcessOptions {
  bundle: string;
  args: string[];
  socketPath: string;
  /** Run inside this netns (the test's "node"). */
  netnsPath?: string;
  logFile: string;
  /** Per API request (default 5 s). */
  clientTimeoutMs?: number;
}

export class AgentProcess {
  readonly client: AgentClient;
  private child?: ChildProcess;
  private exited?: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(readonly options: AgentProcessOptions) {
    this.client = new AgentClient({ socketPath: options.socketPath, timeoutMs: options.clientTimeoutMs ?? 5000 });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the agent and waits until it reports ready. */
  async start(timeoutMs = 20_000): Promise<AgentStatus> {
    const log = openSync(this.options.logFile, 'a');
    const node = [process.execPath, this.options.bundle, ...this.options.args];
    const [cmd, ...args] = this.options.netnsPath
      ? ['nsenter', `--net=${this.options.netnsPath}`, '--', ...node]
      : node;
    const env: NodeJS.ProcessEnv = { ...process.env, WEFT_NATIVE_DIR: NATIVE_DIR };
    delete env.NODE_EXTRA_CA_CERTS;
    const child = spawn(cmd!, args, { stdio: ['ignore', log, log], env });
    closeSync(log);
    this.child = child;
    this.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    for (;;) {
      if (exited) throw new Error(`weft-agent exited during start:\n${this.logTail()}`);
      try {
        const s = await this.client.status();
        if (s.ready) return s;
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline)
        throw new Error(`weft-agent not ready after ${timeoutMs} ms:\n${this.logTail()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends a signal and waits for the exit. */
  async kill(
    signal: NodeJS.Signals = 'SIGKILL',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.child || !this.exited) return { code: null, signal: null };
    this.child.kill(signal);
    const r = await this.exited;
    this.child = undefined;
    return r;
  }

  async stop(): Promise<void> {
    if (this.child) await this.kill('SIGTERM');
  }

  logTail(lines = 40): string {
    if (!existsSync(this.options.logFile)) return '(no log)';
    return readFileSync(this.options.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  }
}
