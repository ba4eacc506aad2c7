import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** A short unique name with a prefix, safe for netns and link names (≤ 15 bytes). */
export function scratchName(prefix: string): string {
  return `${prefix}${randomBytes(3).toString('hex')}`.slice(0, 15);
}

/** A named netns made with iproute2 for tests; `path` is what CNI_NETNS takes. */
export class ScratchNetns {
  readonly name: string;
  readonly path: string;

  constructor(prefix = 'wt') {
    this.name = scratchName(prefix);
    execFileSync('ip', ['netns', 'add', this.name]);
    this.path = `/var/run/netns/${this.name}`;
    this.exec('ip', 'link', 'set', 'lo', 'up');
  }

  /** Runs a command inside the namespace and returns stdout. */
  exec(cmd: string, ...args: string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.name, cmd, ...args], { encoding: 'utf8' });
  }

  remove(): void {
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
}
