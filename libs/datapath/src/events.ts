import {
  decodeAddress,
  enumName,
  RingBuffer,
  WEFT_CT_STATUS,
  WEFT_DIRECTION,
  WEFT_DROP_REASON,
  WEFT_EVENT_TYPE,
  WEFT_VERDICT,
  weftEvent,
  type Codec,
  type WeftEvent,
} from '@weft/bpf';
import type { TrafficDirection } from './policy-types';

export type DropReason = keyof typeof WEFT_DROP_REASON;

/** One record of the events ring, decoded for people and the agent's API. */
export interface DatapathEvent {
  type: 'drop' | 'policy-verdict' | 'trace';
  /** The C enumerator of enum weft_drop_reason, e.g. "WEFT_DROP_POLICY_DENY". */
  reason: DropReason | `unknown(${number})`;
  endpointId: number;
  peerIdentity: number;
  direction: TrafficDirection;
  verdict: 'allow' | 'deny' | 'none';
  ctStatus: 'new' | 'established' | 'reply' | 'related';
  ifindex: number;
  length: number;
  protocol: number;
  source: string;
  destination: string;
  sourcePort: number;
  destinationPort: number;
  /** CLOCK_MONOTONIC nanoseconds (comparable with process.hrtime.bigint()). */
  timestampNs: bigint;
}

const TYPES: Record<number, DatapathEvent['type']> = {
  [WEFT_EVENT_TYPE.WEFT_EVENT_DROP]: 'drop',
  [WEFT_EVENT_TYPE.WEFT_EVENT_POLICY_VERDICT]: 'policy-verdict',
  [WEFT_EVENT_TYPE.WEFT_EVENT_TRACE]: 'trace',
};
const VERDICTS: Record<number, DatapathEvent['verdict']> = {
  [WEFT_VERDICT.WEFT_VERDICT_ALLOW]: 'allow',
  [WEFT_VERDICT.WEFT_VERDICT_DENY]: 'deny',
};
const CT: Record<number, DatapathEvent['ctStatus']> = {
  [WEFT_CT_STATUS.WEFT_CT_NEW]: 'new',
  [WEFT_CT_STATUS.WEFT_CT_ESTABLISHED]: 'established',
  [WEFT_CT_STATUS.WEFT_CT_REPLY]: 'reply',
  [WEFT_CT_STATUS.WEFT_CT_RELATED]: 'related',
};

export function toDatapathEvent(e: WeftEvent): DatapathEvent {
  return {
    type: TYPES[e.type] ?? 'trace',
    reason: enumName(WEFT_DROP_REASON, e.reason) as DatapathEvent['reason'],
    endpointId: e.endpoint_id,
    peerIdentity: e.peer_identity,
    direction: e.direction === WEFT_DIRECTION.WEFT_DIR_EGRESS ? 'egress' : 'ingress',
    verdict: VERDICTS[e.verdict] ?? 'none',
    ctStatus: CT[e.ct_status] ?? 'new',
    ifindex: e.ifindex,
    length: e.pkt_len,
    protocol: e.protocol,
    source: decodeAddress(e.family, e.saddr),
    destination: decodeAddress(e.family, e.daddr),
    sourcePort: e.sport_be16,
    destinationPort: e.dport_be16,
    timestampNs: e.timestamp_ns,
  };
}

const eventCodec: Codec<DatapathEvent> = {
  size: weftEvent.size,
  encode: () => {
    throw new Error('events are read-only');
  },
  decode: (bytes) => toDatapathEvent(weftEvent.decode(bytes)),
};

/** The events ring buffer, decoded: `for await (const ev of dp.events())`. */
export class DatapathEvents extends RingBuffer<DatapathEvent> {
  constructor(pinnedPath: string, opts: { ref?: boolean } = {}) {
    super(pinnedPath, eventCodec, opts);
  }
}
