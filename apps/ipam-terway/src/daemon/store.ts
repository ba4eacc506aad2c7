/**
 * Durable pod↔IP records: one JSON file, replaced atomically (write temp, fsync, rename,
 * fsync dir). Saves are coalesced: every caller of `save()` resolves after a write that began
 * after its call, so a burst of 100 allocations costs a handful of fsyncs, not 100.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export type IpState = 'idle' | 'allocated' | 'releasing';

export interface StoredIp {
  ip: string;
  family: 4 | 6;
  eniId: string;
  state: IpState;
  /** The ENI's primary address cannot be unassigned, only used. */
  primary?: boolean;
  /** Allocation key when allocated. */
  owner?: string;
  /** ms since epoch when it last became idle. */
  idleSince: number;
}

export type EniPhase = 'attaching' | 'ready' | 'detaching';

export interface StoredEni {
  id: string;
  mac: string;
  vSwitchId: string;
  phase: EniPhase;
  /** Exclusive mode: the allocation key that owns the whole ENI (never used for shared addresses). */
  exclusive?: string;
  /** Routing table on the node for traffic from this ENI's addresses. */
  table?: number;
  gateway?: string;
  cidr?: string;
  gateway6?: string;
  cidr6?: string;
}

export interface Allocation {
  containerId: string;
  ifname: string;
  netns: string;
  /** CNI network name: GC of one network never touches another's attachments. */
  network?: string;
  podNamespace?: string;
  podName?: string;
  podUid?: string;
  eniId: string;
  ipv4?: string;
  ipv6?: string;
  /** The pod has the whole ENI (moved into its netns). */
  exclusive?: boolean;
  createdAt: number;
}

export interface PoolState {
  version: 1;
  enis: Record<string, StoredEni>;
  ips: Record<string, StoredIp>;
  allocations: Record<string, Allocation>;
  /** ENI creations begun: clientToken → when. Cleared once the ENI is recorded. */
  createIntents: Record<string, { vSwitchId: string; at: number }>;
}

export const emptyState = (): PoolState => ({
  version: 1,
  enis: {},
  ips: {},
  allocations: {},
  createIntents: {},
});

export const allocationKey = (containerId: string, ifname: string): string => `${containerId}/${ifname}`;

export class StateFile {
  readonly path: string;
  private writing: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  writes = 0;

  constructor(
    dir: string,
    private readonly snapshot: () => PoolState,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, 'eni-pool.json');
  }

  load(): PoolState | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const state = JSON.parse(text) as PoolState;
    if (state.version !== 1)
      throw new Error(`${this.path}: unsupported state version ${String(state.version)}`);
    return { ...emptyState(), ...state };
  }

  /** Persists the current snapshot; see the class comment for the coalescing. */
  save(): Promise<void> {
    if (!this.writing) {
      this.writing = this.write().finally(() => (this.writing = undefined));
      return this.writing;
    }
    // A write is running with an older snapshot: one more write after it serves all who wait now.
    this.queued ??= this.writing.then(() => {
      this.queued = undefined;
      return this.save();
    });
    return this.queued;
  }

  private async write(): Promise<void> {
    const data = JSON.stringify(this.snapshot());
    const tmp = `${this.path}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path);
    const dir = await open(dirname(this.path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    this.writes++;
  }
}
