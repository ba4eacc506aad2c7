/**
 * One JSON record per attachment under <stateDir>/cni/<network>/: what ADD made, so that DEL
 * without a netns, GC (which only gets the valid list) and CHECK know what is weft's. Written
 * atomically (tmp + rename) after the interfaces exist, removed at the end of DEL.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EndpointMode } from '@weft/agent-api';
import type { CniResult } from '@weft/cni';

export interface AttachmentRecord {
  containerId: string;
  ifname: string;
  network: string;
  mode: EndpointMode;
  netns: string;
  ips: string[];
  podIfname: string;
  hostIfname?: string;
  /** Where the endpoint was registered: with the agent, or attached by weft-cni itself (degraded). */
  registeredWith: 'agent' | 'degraded' | 'none';
  endpointId?: number;
  /** What the IPAM plugin returned: CHECK hands it back to IPAM, which knows nothing of weft's gateways. */
  ipamResult?: CniResult;
  /** ipvlan/eni: the parent device. */
  parentDevice?: string;
  createdAt: string;
}

export class AttachmentStore {
  readonly dir: string;

  constructor(stateDir: string, network: string) {
    this.dir = join(stateDir, 'cni', network);
  }

  private file(containerId: string, ifname: string): string {
    return join(this.dir, `${encodeURIComponent(`${containerId}:${ifname}`)}.json`);
  }

  get(containerId: string, ifname: string): AttachmentRecord | undefined {
    try {
      return JSON.parse(readFileSync(this.file(containerId, ifname), 'utf8')) as AttachmentRecord;
    } catch {
      return undefined;
    }
  }

  put(record: AttachmentRecord): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const file = this.file(record.containerId, record.ifname);
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(record, null, 2), { mode: 0o600 });
    renameSync(tmp, file);
  }

  remove(containerId: string, ifname: string): void {
    rmSync(this.file(containerId, ifname), { force: true });
  }

  list(): AttachmentRecord[] {
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => n.endsWith('.json'));
    } catch {
      return [];
    }
    const out: AttachmentRecord[] = [];
    for (const n of names) {
      try {
        out.push(JSON.parse(readFileSync(join(this.dir, n), 'utf8')) as AttachmentRecord);
      } catch {
        /* a torn record cannot exist (rename); anything else unreadable is not ours to judge */
      }
    }
    return out;
  }
}
