/**
 * Mirrors of the enums in bpf/lib/common.h (the struct contract test checks names and values against
 * BTF). Keys are the C enumerator names.
 */

/** enum weft_drop_reason */
export const WEFT_DROP_REASON = {
  WEFT_DROP_NONE: 0,
  WEFT_DROP_POLICY_DENY: 1,
  WEFT_DROP_POLICY_DEFAULT: 2,
  WEFT_DROP_INVALID_PACKET: 3,
  WEFT_DROP_UNKNOWN_SOURCE: 4,
  WEFT_DROP_SPOOFED_SOURCE: 5,
} as const;

/** enum weft_event_type */
export const WEFT_EVENT_TYPE = {
  WEFT_EVENT_DROP: 1,
  WEFT_EVENT_POLICY_VERDICT: 2,
  WEFT_EVENT_TRACE: 3,
} as const;

/** enum weft_direction */
export const WEFT_DIRECTION = { WEFT_DIR_INGRESS: 0, WEFT_DIR_EGRESS: 1 } as const;

/** enum weft_verdict */
export const WEFT_VERDICT = { WEFT_VERDICT_NONE: 0, WEFT_VERDICT_ALLOW: 1, WEFT_VERDICT_DENY: 2 } as const;

/** enum weft_ct_status */
export const WEFT_CT_STATUS = {
  WEFT_CT_NEW: 0,
  WEFT_CT_ESTABLISHED: 1,
  WEFT_CT_REPLY: 2,
  WEFT_CT_RELATED: 3,
} as const;

/** The C enums that userspace mirrors, by their C name (for the contract test). */
export const MIRRORED_ENUMS: Record<string, Record<string, number>> = {
  weft_drop_reason: WEFT_DROP_REASON,
  weft_event_type: WEFT_EVENT_TYPE,
  weft_direction: WEFT_DIRECTION,
  weft_verdict: WEFT_VERDICT,
  weft_ct_status: WEFT_CT_STATUS,
};

/** Reverse lookup: the C enumerator name of a value, or `unknown(<n>)`. */
export function enumName(e: Record<string, number>, value: number): string {
  for (const [name, v] of Object.entries(e)) if (v === value) return name;
  return `unknown(${value})`;
}

/** #defines of bpf/lib/*.h that userspace writes (not in BTF: kept in sync by review). */
export const WEFT_EP_F = { INGRESS_ENFORCED: 1 << 0, EGRESS_ENFORCED: 1 << 1, IN_POD_NETNS: 1 << 2 } as const;
export const WEFT_CFG_F = { VERDICT_EVENTS: 1 << 0, TRACE_EVENTS: 1 << 1 } as const;
export const WEFT_CT_F = { CLOSING: 1 << 0 } as const;
/** policy_key.prefixlen: bits matched exactly (endpoint, identity, direction) and in all. */
export const WEFT_POLICY_EXACT_BITS = 72;
export const WEFT_POLICY_FULL_BITS = 96;
export const WEFT_AF = { INET: 2, INET6: 10 } as const;
