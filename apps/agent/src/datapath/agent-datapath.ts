/**
 * What the agent needs of the datapath: @weft/datapath's Datapath satisfies this structurally.
 * The agent is written against the interface so that the benchmark can measure the agent path at
 * a scale the kernel maps of this machine cannot hold (see bench/agent.bench.ts); everything else,
 * tests included, runs the real Datapath.
 */
import type {
  DatapathEvent,
  EndpointPolicy,
  EndpointRecord,
  EndpointSpec,
  IpcacheEntry,
  PeerPolicyChange,
  PolicyCounter,
} from '@weft/datapath';

export interface EventStream extends AsyncIterable<DatapathEvent> {
  close(): void;
}

export interface AgentDatapath {
  readonly pinRoot: string;
  attachEndpoint(spec: EndpointSpec): EndpointRecord;
  detachEndpoint(endpointId: number): boolean;
  /** `change`: only entries of its peers changed (from PolicyDelta.changedPeers). */
  updatePolicy(endpointId: number, policy: EndpointPolicy, change?: PeerPolicyChange): void;
  upsertIpcache(entries: IpcacheEntry[]): void;
  deleteIpcache(cidrs: string[]): number;
  readPolicyCounters(endpointId: number): PolicyCounter[];
  listEndpoints(): EndpointRecord[];
  setEventConfig(opts: { verdicts?: boolean; trace?: boolean }): void;
  events(opts?: { ref?: boolean }): EventStream;
  close(): void;
}

export interface MapStats {
  name: string;
  entries: number;
  maxEntries: number;
}

/** Read-only views of the pinned maps the Datapath class does not expose. */
export interface DatapathMaps {
  stats(): MapStats[];
  /** Every prefix in the ipcache map with its identity. */
  ipcache(): { cidr: string; identity: number }[];
  programsPinned(): boolean;
  close(): void;
}
