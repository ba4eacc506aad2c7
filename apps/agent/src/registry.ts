/**
 * The endpoint registry: one record per CNI attachment (`<containerId>:<ifname>`), each with the
 * u32 endpoint id the datapath knows it by. Records are files under `<stateDir>/agent/endpoints`,
 * so a restarted agent finds every endpoint again with the same id. Ids come from a persisted
 * counter and are not reused while the counter lasts (a stale map entry never names someone
 * else); they stay below 2^31, weft-cni's degraded ids have the top bit set. The counter file
 * holds the end of a lease of ids (written once per LEASE allocations, not per endpoint); a
 * restart continues after the lease, skipping what it did not use.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { attachmentId, type EndpointRegistration } from '@weft/agent-api';
import { readJson, writeFileAtomic, writeJsonAtomic } from './state-files';

/** Highest id the agent allocates (weft-cni's degraded ids are above). */
export const MAX_AGENT_ENDPOINT_ID = 0x7fffffff;
const LEASE = 1024;

export interface RegisteredEndpoint {
  attachmentId: string;
  endpointId: number;
  registration: EndpointRegistration;
  registeredAt: string;
  updatedAt: string;
}

export interface UpsertResult {
  entry: RegisteredEndpoint;
  created: boolean;
  /** The registration differs from the stored one (false for a repeated identical PUT). */
  changed: boolean;
}

export class EndpointRegistry {
  private readonly dir: string;
  private readonly counterFile: string;
  private readonly byAttachment = new Map<string, RegisteredEndpoint>();
  private readonly byId = new Map<number, RegisteredEndpoint>();
  private next = 1;
  /** Ids below this are covered by the counter on disk. */
  private leaseEnd = 1;
  /** Files that could not be read at load (kept on disk for a human to look at). */
  readonly unreadable: { file: string; error: string }[] = [];

  constructor(agentStateDir: string) {
    this.dir = join(agentStateDir, 'endpoints');
    this.counterFile = join(agentStateDir, 'next-endpoint-id');
  }

  /** Reads every record; call once at start. */
  load(): RegisteredEndpoint[] {
    this.byAttachment.clear();
    this.byId.clear();
    this.unreadable.length = 0;
    let names: string[] = [];
    try {
      names = readdirSync(this.dir).filter((n) => n.endsWith('.json'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const name of names.sort()) {
      const file = join(this.dir, name);
      try {
        const rec = readJson<RegisteredEndpoint>(file)!;
        if (
          typeof rec?.attachmentId !== 'string' ||
          !Number.isInteger(rec.endpointId) ||
          rec.endpointId < 1 ||
          rec.endpointId > MAX_AGENT_ENDPOINT_ID ||
          rec.attachmentId !== attachmentId(rec.registration) ||
          this.byId.has(rec.endpointId)
        )
          throw new Error('not an endpoint record (or a duplicate id)');
        this.byAttachment.set(rec.attachmentId, rec);
        this.byId.set(rec.endpointId, rec);
      } catch (err) {
        this.unreadable.push({ file, error: (err as Error).message });
      }
    }
    const counter = Number(readJson<number>(this.counterFile) ?? 1);
    const maxId = Math.max(0, ...this.byId.keys());
    this.next = Math.max(Number.isInteger(counter) ? counter : 1, maxId + 1);
    this.leaseEnd = this.next;
    return [...this.byAttachment.values()];
  }

  get(attachment: string): RegisteredEndpoint | undefined {
    return this.byAttachment.get(attachment);
  }

  byEndpointId(id: number): RegisteredEndpoint | undefined {
    return this.byId.get(id);
  }

  all(): RegisteredEndpoint[] {
    return [...this.byAttachment.values()];
  }

  get size(): number {
    return this.byAttachment.size;
  }

  /** Stores the registration; an attachment already known keeps its endpoint id. */
  upsert(reg: EndpointRegistration, now = new Date()): UpsertResult {
    const key = attachmentId(reg);
    const prev = this.byAttachment.get(key);
    if (prev && JSON.stringify(prev.registration) === JSON.stringify(reg))
      return { entry: prev, created: false, changed: false };
    const at = now.toISOString();
    const entry: RegisteredEndpoint = prev
      ? { ...prev, registration: reg, updatedAt: at }
      : {
          attachmentId: key,
          endpointId: this.allocate(),
          registration: reg,
          registeredAt: at,
          updatedAt: at,
        };
    writeJsonAtomic(this.fileOf(key), entry);
    this.byAttachment.set(key, entry);
    this.byId.set(entry.endpointId, entry);
    return { entry, created: !prev, changed: true };
  }

  remove(attachment: string): RegisteredEndpoint | undefined {
    const entry = this.byAttachment.get(attachment);
    if (!entry) return undefined;
    rmSync(this.fileOf(attachment), { force: true });
    this.byAttachment.delete(attachment);
    this.byId.delete(entry.endpointId);
    return entry;
  }

  private allocate(): number {
    let id = this.next;
    // Past the top, wrap and take the first free id (only after 2^31 allocations).
    for (let tries = 0; this.byId.has(id) || id > MAX_AGENT_ENDPOINT_ID; tries++) {
      if (tries > MAX_AGENT_ENDPOINT_ID) throw new Error('endpoint id space exhausted');
      id = id >= MAX_AGENT_ENDPOINT_ID ? 1 : id + 1;
    }
    // The counter is on disk (ahead of the id) before the id is used anywhere.
    if (id >= this.leaseEnd || id < this.next) {
      this.leaseEnd = Math.min(id + LEASE, MAX_AGENT_ENDPOINT_ID + 1);
      writeFileAtomic(this.counterFile, `${this.leaseEnd}\n`);
    }
    this.next = id + 1;
    return id;
  }

  private fileOf(attachment: string): string {
    return join(this.dir, `${encodeURIComponent(attachment)}.json`);
  }
}
