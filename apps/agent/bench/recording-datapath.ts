/**
 * The benchmark's datapath: does what the real one does in user space (compiles every endpoint
 * policy into trie entries with @weft/datapath's own compilePolicy, keeps endpoint records) and
 * counts the entries it would write, instead of writing them. Why not the kernel: 10,000
 * endpoints x ~250 entries is ~2.5 million policy entries, past weft_policy's 1,048,576
 * max_entries, and 10,000 veths cost minutes to make. Entries are not kept: in production they
 * live in the kernel, not in the agent's heap, so RSS stays representative.
 */
import {
  compilePeerEntries,
  compilePolicy,
  type DatapathEvent,
  type EndpointPolicy,
  type EndpointRecord,
  type EndpointSpec,
  type IpcacheEntry,
  type PeerPolicyChange,
  type PolicyCounter,
} from '@weft/datapath';
import type { AgentDatapath, EventStream } from '../src/datapath/agent-datapath';

export class RecordingDatapath implements AgentDatapath {
  readonly pinRoot = '(recording, no kernel maps)';
  private readonly records = new Map<number, EndpointRecord>();
  private readonly ipcache = new Map<string, number>();
  /** Trie entries compiled since the last reset (what the kernel would get written). */
  entriesWritten = 0;
  attaches = 0;
  policyUpdates = 0;

  attachEndpoint(spec: EndpointSpec): EndpointRecord {
    if (spec.policy) this.entriesWritten += compilePolicy(spec.policy).length;
    const rec: EndpointRecord = {
      endpointId: spec.endpointId,
      identity: spec.identity,
      ips: spec.ips,
      ifindex: spec.ifindex ?? 0,
      ...(spec.ifname !== undefined && { ifname: spec.ifname }),
      inPodNetns: !!spec.pod,
      ingressEnforced: spec.policy?.ingressEnforced ?? false,
      egressEnforced: spec.policy?.egressEnforced ?? false,
    };
    for (const ip of spec.ips) this.ipcache.set(`${ip}/${ip.includes(':') ? 128 : 32}`, spec.identity);
    this.records.set(spec.endpointId, rec);
    this.attaches++;
    return rec;
  }

  detachEndpoint(endpointId: number): boolean {
    return this.records.delete(endpointId);
  }

  updatePolicy(endpointId: number, policy: EndpointPolicy, change?: PeerPolicyChange): void {
    const rec = this.records.get(endpointId);
    if (!rec) throw Object.assign(new Error(`endpoint ${endpointId} is not attached`), { code: 'ENOENT' });
    const sameEnforcement =
      rec.ingressEnforced === policy.ingressEnforced && rec.egressEnforced === policy.egressEnforced;
    // As the real Datapath: with the engine's changed peers, only their entries are compiled.
    if (sameEnforcement && change) {
      for (const entries of compilePeerEntries(policy, change).values()) this.entriesWritten += entries.size;
    } else this.entriesWritten += compilePolicy(policy).length;
    rec.ingressEnforced = policy.ingressEnforced;
    rec.egressEnforced = policy.egressEnforced;
    this.policyUpdates++;
  }

  upsertIpcache(entries: IpcacheEntry[]): void {
    for (const e of entries) this.ipcache.set(e.cidr, e.identity);
  }

  deleteIpcache(cidrs: string[]): number {
    let n = 0;
    for (const c of cidrs) if (this.ipcache.delete(c)) n++;
    return n;
  }

  readPolicyCounters(): PolicyCounter[] {
    return [];
  }

  listEndpoints(): EndpointRecord[] {
    return [...this.records.values()];
  }

  setEventConfig(): void {}

  events(): EventStream {
    const empty: AsyncIterable<DatapathEvent> = {
      [Symbol.asyncIterator]: () => ({ next: () => new Promise(() => undefined) }),
    };
    return Object.assign(empty, { close: () => undefined });
  }

  close(): void {}

  get ipcacheSize(): number {
    return this.ipcache.size;
  }
}
