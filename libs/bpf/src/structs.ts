/**
 * Mirrors of the map and event structs in bpf/lib/*.h. Each codec names its C struct; the struct
 * contract test (struct-contract.test.ts) checks sizes and offsets against the objects' BTF.
 */
import { defineStruct } from './codec';

const ADDR = { bytes: 16 } as const;

/** struct endpoint_key (bpf/lib/endpoint.h) */
export const endpointKey = defineStruct('endpoint_key', 20, {
  addr: [0, ADDR],
  family: [16, 'u8'],
} as const);

/** struct endpoint_info (bpf/lib/endpoint.h) */
export const endpointInfo = defineStruct('endpoint_info', 24, {
  endpoint_id: [0, 'u32'],
  identity: [4, 'u32'],
  ifindex: [8, 'u32'],
  flags: [12, 'u32'],
  mac: [16, { bytes: 6 }],
} as const);

/** struct ipcache_key (bpf/lib/ipcache.h) */
export const ipcacheKey = defineStruct('ipcache_key', 24, {
  prefixlen: [0, 'u32'],
  family: [4, 'u8'],
  addr: [8, ADDR],
} as const);

/** struct ipcache_value (bpf/lib/ipcache.h) */
export const ipcacheValue = defineStruct('ipcache_value', 8, {
  identity: [0, 'u32'],
  flags: [4, 'u32'],
} as const);

/** struct policy_key (bpf/lib/policy.h) */
export const policyKey = defineStruct('policy_key', 16, {
  prefixlen: [0, 'u32'],
  endpoint_id: [4, 'u32'],
  identity: [8, 'u32'],
  direction: [12, 'u8'],
  protocol: [13, 'u8'],
  dport_be16: [14, 'be16'],
} as const);

/** struct policy_value (bpf/lib/policy.h) */
export const policyValue = defineStruct('policy_value', 24, {
  packets: [0, 'u64'],
  bytes: [8, 'u64'],
  verdict: [16, 'u8'],
} as const);

/** struct ct_key (bpf/lib/conntrack.h) */
export const ctKey = defineStruct('ct_key', 44, {
  saddr: [0, ADDR],
  daddr: [16, ADDR],
  sport_be16: [32, 'be16'],
  dport_be16: [34, 'be16'],
  endpoint_id: [36, 'u32'],
  protocol: [40, 'u8'],
  family: [41, 'u8'],
  direction: [42, 'u8'],
} as const);

/** struct ct_entry (bpf/lib/conntrack.h) */
export const ctEntry = defineStruct('ct_entry', 56, {
  created_ns: [0, 'u64'],
  last_seen_ns: [8, 'u64'],
  fwd_packets: [16, 'u64'],
  fwd_bytes: [24, 'u64'],
  rev_packets: [32, 'u64'],
  rev_bytes: [40, 'u64'],
  flags: [48, 'u32'],
  tcp_flags_seen: [52, 'u8'],
} as const);

/** struct weft_config (bpf/lib/events.h) */
export const weftConfig = defineStruct('weft_config', 8, {
  flags: [0, 'u32'],
} as const);

/** struct weft_event (bpf/lib/events.h): one ring-buffer record. */
export const weftEvent = defineStruct('weft_event', 80, {
  timestamp_ns: [0, 'u64'],
  type: [8, 'u32'],
  reason: [12, 'u32'],
  endpoint_id: [16, 'u32'],
  peer_identity: [20, 'u32'],
  ifindex: [24, 'u32'],
  pkt_len: [28, 'u32'],
  saddr: [32, ADDR],
  daddr: [48, ADDR],
  sport_be16: [64, 'be16'],
  dport_be16: [66, 'be16'],
  family: [68, 'u8'],
  protocol: [69, 'u8'],
  direction: [70, 'u8'],
  verdict: [71, 'u8'],
  ct_status: [72, 'u8'],
} as const);

type Decoded<C> = C extends { decode(b: Buffer): infer T } ? T : never;
export type EndpointKey = Decoded<typeof endpointKey>;
export type EndpointInfo = Decoded<typeof endpointInfo>;
export type IpcacheKey = Decoded<typeof ipcacheKey>;
export type IpcacheValue = Decoded<typeof ipcacheValue>;
export type PolicyKey = Decoded<typeof policyKey>;
export type PolicyValue = Decoded<typeof policyValue>;
export type CtKey = Decoded<typeof ctKey>;
export type CtEntry = Decoded<typeof ctEntry>;
export type WeftConfig = Decoded<typeof weftConfig>;
export type WeftEvent = Decoded<typeof weftEvent>;

/** Every mirror, for the struct contract test. */
export const STRUCT_MIRRORS = [
  endpointKey,
  endpointInfo,
  ipcacheKey,
  ipcacheValue,
  policyKey,
  policyValue,
  ctKey,
  ctEntry,
  weftConfig,
  weftEvent,
];
