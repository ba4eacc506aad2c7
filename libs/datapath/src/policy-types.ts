/**
 * What the policy engine hands the datapath for one endpoint: a flat list of map entries.
 * These mirror (but are not) the BPF map structs in bpf/lib/policy.h.
 */
export type TrafficDirection = 'ingress' | 'egress';
export type PolicyVerdict = 'allow' | 'deny';

/** IANA protocol numbers; 0 matches any protocol. */
export const IPPROTO = { ANY: 0, ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58, SCTP: 132 } as const;

export interface PolicyEntry {
  /** Peer security identity; 0 = any peer. */
  identity: number;
  /** IANA protocol number; 0 = any. */
  protocol: number;
  /** Destination port range, inclusive; 0..0 = any port. */
  portLow: number;
  portHigh: number;
  direction: TrafficDirection;
  verdict: PolicyVerdict;
}

export interface EndpointPolicy {
  /** A policy selects the endpoint for ingress: unmatched ingress is dropped. */
  ingressEnforced: boolean;
  /** A policy selects the endpoint for egress: unmatched egress is dropped. */
  egressEnforced: boolean;
  entries: PolicyEntry[];
}

/**
 * A change to an endpoint policy confined to some peer identities (a peer's pods changed labels or
 * named ports): every other entry and the enforcement stay as they were.
 */
export interface PeerPolicyChange {
  peers: ReadonlySet<number>;
  /** The endpoint's entries whose identity is in `peers`, after the change (maybe none). */
  entries: readonly PolicyEntry[];
}

/** ipcache: which identity a prefix belongs to (longest prefix wins). */
export interface IpcacheEntry {
  cidr: string;
  identity: number;
}

/** Reserved identities (numbers fixed: they are stored in pinned maps). */
export const RESERVED_IDENTITY = {
  unknown: 0,
  host: 1,
  world: 2,
  unmanaged: 3,
  health: 4,
  init: 5,
  remoteNode: 6,
} as const;

/** First identity allocated for label sets. */
export const FIRST_LOCAL_IDENTITY = 256;
