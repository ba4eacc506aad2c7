/**
 * The agent API: HTTP/1.1 with JSON bodies over the unix socket /var/run/weft/agent.sock (0600).
 * weft-cni registers and removes endpoints; the `weft` CLI reads state. This file is the whole
 * wire contract; the server (apps/agent) and the client (./client.ts) both import it.
 *
 *   GET    /v1/healthz                      -> AgentHealth
 *   GET    /v1/status                       -> AgentStatus
 *   PUT    /v1/endpoints/{attachmentId}     EndpointRegistration -> EndpointRegistered
 *   DELETE /v1/endpoints/{attachmentId}     -> 204 (also when unknown: DEL is idempotent)
 *   GET    /v1/endpoints                    -> EndpointSummary[]
 *   GET    /v1/identities                   -> IdentitySummary[]
 *   GET    /v1/policies                     -> PolicySummary[]
 *   POST   /v1/policy/trace                 TraceRequest -> TraceResponse
 *   GET    /v1/bpf/policy/{endpoint}        -> BpfPolicyEntry[]   (endpoint: id, attachment id or NS/POD)
 *   GET    /v1/events[?follow=1&last=N&type=drop&verdicts=1]
 *                                           -> FlowEvent per line (newline-delimited JSON): the last N
 *                                              events the agent kept, then (follow=1) live ones
 *   GET    /metrics                         -> Prometheus text
 *
 * Errors: a non-2xx status with an ApiErrorBody.
 */

export const DEFAULT_AGENT_SOCKET = '/var/run/weft/agent.sock';
/** Where weft-cni leaves work for an agent that was down (replayed by the agent on start). */
export const DEFAULT_AGENT_QUEUE_DIR = '/var/lib/weft/queue';
export const AGENT_API_VERSION = 'v1';

/** How weft-cni attached the pod (what the datapath hooks onto). */
export type EndpointMode = 'veth' | 'ipvlan' | 'eni' | 'generic-veth' | 'terway';

/** One CNI attachment: a container and the interface name it asked for. */
export interface AttachmentRef {
  containerId: string;
  ifname: string;
}

/** `<containerId>:<ifname>`, the key of an endpoint in the API and on disk. */
export function attachmentId(ref: AttachmentRef): string {
  return `${ref.containerId}:${ref.ifname}`;
}

export function parseAttachmentId(id: string): AttachmentRef | undefined {
  const i = id.lastIndexOf(':');
  if (i <= 0 || i === id.length - 1) return undefined;
  return { containerId: id.slice(0, i), ifname: id.slice(i + 1) };
}

/** What weft-cni tells the agent after ADD has set up the interfaces. */
export interface EndpointRegistration extends AttachmentRef {
  /** Network name of the conf (several networks may share an agent). */
  network: string;
  /** CNI_NETNS of the pod. */
  netns: string;
  mode: EndpointMode;
  /** K8S_POD_NAMESPACE / K8S_POD_NAME / K8S_POD_UID from CNI_ARGS, when given. */
  podNamespace?: string;
  podName?: string;
  podUid?: string;
  /** Labels from the CNI `args.cni.labels` convention (merged with the pod source's labels). */
  labels?: Record<string, string>;
  /** The pod's addresses, without prefix length (IPv4 and/or IPv6). */
  ips: string[];
  /** Interface name inside the pod netns (CNI_IFNAME, or the one a previous plugin made). */
  podIfname: string;
  podMac?: string;
  /** veth pods: the host-side peer; the datapath attaches to it. */
  hostIfname?: string;
  hostIfindex?: number;
  /** IPvlan/ENI pods (no host veth): attach inside the pod netns on podIfname. */
  attachInPod: boolean;
  /** ENI or IPvlan master the traffic leaves by (terway chaining, eni/ipvlan modes). */
  parentDevice?: string;
}

export interface EndpointRegistered {
  endpointId: number;
  identity: number;
  ingressEnforced: boolean;
  egressEnforced: boolean;
}

export interface EndpointSummary extends EndpointRegistered {
  attachmentId: string;
  containerId: string;
  ifname: string;
  network: string;
  netns: string;
  mode: EndpointMode;
  pod?: string; // NS/NAME
  ips: string[];
  interface: string; // what the programs are on ("lxc1234abcd", or "eth0 (in pod)")
  labels: string[];
  /** ready: programs attached; degraded: attached by weft-cni without the agent (pending replay). */
  state: 'ready' | 'degraded' | 'error';
  l7NotEnforced?: boolean;
}

export interface IdentitySummary {
  identity: number;
  labels: string[];
  reserved: boolean;
  endpoints: number;
}

export interface PolicySummary {
  kind: string;
  namespace?: string;
  name: string;
  /** Endpoints (NS/POD) the policy selects on this node. */
  selects: string[];
  warnings: { code: string; message: string }[];
}

export interface TraceRequest {
  from: string; // NS/POD
  to: string; // NS/POD
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
}

/** The policy engine's trace result, passed through as JSON. */
export interface TraceResponse {
  verdict: 'allowed' | 'denied';
  [key: string]: unknown;
}

export interface BpfPolicyEntry {
  verdict: 'allow' | 'deny';
  direction: 'ingress' | 'egress';
  identity: number;
  labels: string[];
  /** "80/TCP", "8000-8080/UDP", "ANY". */
  port: string;
  packets: string; // bigint as decimal
  bytes: string;
}

/** One record of the datapath's events ring, as the agent streams it (GET /v1/events). */
export interface FlowEvent {
  /** Wall-clock time of the event (derived from the kernel's monotonic timestamp). */
  time: string;
  type: 'drop' | 'policy-verdict' | 'trace';
  /** The C enumerator of enum weft_drop_reason, e.g. "WEFT_DROP_POLICY_DENY". */
  reason: string;
  verdict: 'allow' | 'deny' | 'none';
  /** Relative to the endpoint: ingress = towards the pod. */
  direction: 'ingress' | 'egress';
  ctStatus: 'new' | 'established' | 'reply' | 'related';
  endpointId: number;
  /** NS/POD of the endpoint, when the agent knows it. */
  endpoint?: string;
  peerIdentity: number;
  peerLabels?: string[];
  /** IANA number, and its name when it has one (TCP, UDP, ICMP, ...). */
  protocol: number;
  protocolName?: string;
  source: string;
  sourcePort: number;
  destination: string;
  destinationPort: number;
  length: number;
  ifindex: number;
  /** CLOCK_MONOTONIC nanoseconds, as decimal. */
  timestampNs: string;
}

export interface EventsQuery {
  /** Keep the stream open for live events (default false: the kept events, then end). */
  follow?: boolean;
  /** How many kept events to send first (default 100; 0: none). */
  last?: number;
  /** Only this type. */
  type?: FlowEvent['type'];
  /** Ask the datapath for policy-verdict events (new flows allowed) while this stream is open. */
  verdicts?: boolean;
}

export interface AgentHealth {
  ok: boolean;
  version: string;
}

export interface AgentStatus {
  version: string;
  uptimeSeconds: number;
  source: 'kubernetes' | 'manifests' | 'none';
  sourceSynced: boolean;
  nodeName: string;
  endpoints: number;
  identities: number;
  policies: number;
  datapath: {
    pinRoot: string;
    programsPinned: boolean;
    maps: { name: string; entries: number; maxEntries: number }[];
  };
  queue: { replayed: number; pending: number };
  /** Source synced and the datapath reconciled: registrations are served. */
  ready?: boolean;
  /** Increases with every change the agent applied (source batch, registration, removal). */
  revision?: number;
}

export interface ApiErrorBody {
  error: { code: string; message: string };
}

/** A deletion weft-cni could not hand to the agent (it was down); one JSON file per attachment. */
export interface QueuedDeletion extends AttachmentRef {
  kind: 'delete';
  network: string;
  queuedAt: string;
}

/** An endpoint weft-cni attached itself in degraded mode; the agent adopts it on start. */
export interface QueuedRegistration {
  kind: 'register';
  registration: EndpointRegistration;
  /** The endpoint id weft-cni used for its own attach (the agent re-keys it). */
  degradedEndpointId: number;
  queuedAt: string;
}

export type QueuedWork = QueuedDeletion | QueuedRegistration;
