/**
 * A helper process inside a network namespace that speaks JSON lines: it prints `{"ready":true}`
 * once its servers listen, then answers each request written to its stdin (`{"id", ...}`) with a
 * line carrying the same id. The test pods' pod-helper.mjs and sctp-helper.py are such helpers.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface HelperAnswer {
  ok: boolean;
  data?: string;
  error?: string;
  bytes?: number;
  closed?: boolean;
}

export class NetnsLineHelper {
  private nextId = 1;
  private readonly waiting = new Map<number, (r: HelperAnswer) => void>();

  private constructor(private readonly proc: ChildProcessWithoutNullStreams) {}

  /** Runs `command` in the named netns (`ip netns exec`) and waits for its ready line. */
  static async start(label: string, netns: string, command: string[]): Promise<NetnsLineHelper> {
    const proc = spawn('ip', ['netns', 'exec', netns, ...command]);
    const helper = new NetnsLineHelper(proc);
    proc.stderr.on('data', (d: Buffer) => process.stderr.write(`[${label}] ${d}`));
    const lines = createInterface({ input: proc.stdout });
    await new Promise<void>((resolve, reject) => {
      proc.once('exit', (code) => reject(new Error(`${label} exited (${code})`)));
      lines.on('line', (line) => {
        const msg = JSON.parse(line) as HelperAnswer & { id?: number; ready?: boolean };
        if (msg.ready) return resolve();
        const w = msg.id !== undefined ? helper.waiting.get(msg.id) : undefined;
        if (w) {
          helper.waiting.delete(msg.id!);
          w(msg);
        }
      });
    });
    return helper;
  }

  request(req: Record<string, unknown>): Promise<HelperAnswer> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.proc.stdin.write(JSON.stringify({ id, ...req }) + '\n');
    });
  }

  kill(): void {
    this.proc.kill('SIGKILL');
  }
}
