/* Per-endpoint policy: one LPM trie shared by all endpoints, the endpoint id leading the key.
 *
 * A key matches (endpoint, direction, peer identity) exactly, then protocol and destination port
 * as a prefix: protocol "any" stops the prefix before the protocol byte, port "any" before the
 * port, and a port range is stored as its aligned power-of-two blocks (at most 30), each a prefix
 * of the 16-bit port. A packet needs two O(log n) lookups: its peer's identity, and identity 0
 * ("any peer"). Userspace resolves "deny wins" when it writes the map: an allow block covered by
 * a deny at the same identity is stored as deny, and a deny block inside an allow block is the
 * longer prefix, so it wins the trie lookup. Across the two lookups deny wins too. */
#pragma once
#include "common.h"

struct policy_key {
	__u32 prefixlen;   /* 72 exact bits + 8 (protocol) + 0..16 (port) */
	__u32 endpoint_id; /* fully matched, host order */
	__u32 identity;    /* peer identity, fully matched; 0 = any peer */
	__u8 direction;    /* enum weft_direction, fully matched */
	__u8 protocol;     /* IPPROTO_*, masked when "any" */
	__be16 dport_be16; /* masked to the block's prefix */
};

#define WEFT_POLICY_EXACT_BITS 72
#define WEFT_POLICY_FULL_BITS 96

struct policy_value {
	__u64 packets; /* packets evaluated against this entry: new flows and drops */
	__u64 bytes;
	__u8 verdict; /* enum weft_verdict */
	__u8 pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
	__uint(max_entries, 1048576);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	WEFT_PIN_BY_NAME;
} weft_policy SEC(".maps");

static __always_inline struct policy_value *policy_match(__u32 endpoint_id, __u8 direction, __u32 identity,
							 __u8 protocol, __be16 dport)
{
	struct policy_key key = {
		.prefixlen = WEFT_POLICY_FULL_BITS,
		.endpoint_id = endpoint_id,
		.identity = identity,
		.direction = direction,
		.protocol = protocol,
		.dport_be16 = dport,
	};
	return bpf_map_lookup_elem(&weft_policy, &key);
}

static __always_inline void policy_count(struct policy_value *v, __u32 len)
{
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, len);
}

/* Returns WEFT_VERDICT_ALLOW, or the drop reason through *reason. */
static __always_inline enum weft_verdict policy_decide(__u32 endpoint_id, __u8 direction, __u32 peer_identity,
						       __u8 protocol, __be16 dport, __u32 len,
						       enum weft_drop_reason *reason)
{
	struct policy_value *peer = policy_match(endpoint_id, direction, peer_identity, protocol, dport);
	struct policy_value *any = policy_match(endpoint_id, direction, WEFT_IDENTITY_ANY, protocol, dport);
	__u8 v_peer = peer ? peer->verdict : WEFT_VERDICT_NONE;
	__u8 v_any = any ? any->verdict : WEFT_VERDICT_NONE;

	if (peer)
		policy_count(peer, len);
	if (any)
		policy_count(any, len);
	if (v_peer == WEFT_VERDICT_DENY || v_any == WEFT_VERDICT_DENY) {
		*reason = WEFT_DROP_POLICY_DENY;
		return WEFT_VERDICT_DENY;
	}
	if (v_peer == WEFT_VERDICT_ALLOW || v_any == WEFT_VERDICT_ALLOW)
		return WEFT_VERDICT_ALLOW;
	*reason = WEFT_DROP_POLICY_DEFAULT;
	return WEFT_VERDICT_DENY;
}
