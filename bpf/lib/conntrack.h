/* Connection tracking, scoped per endpoint and direction: a flow A->B between two local pods has
 * one entry at A's egress and one at B's ingress, so passing A's egress never lets a packet skip
 * B's ingress policy. A packet is "established" when its own tuple is found in its direction, and
 * a "reply" when its reversed tuple is found in the opposite direction of the same endpoint. */
#pragma once
#include "common.h"

#define WEFT_CT_LIFETIME_TCP_NS (21600ULL * 1000000000ULL)
#define WEFT_CT_LIFETIME_CLOSING_NS (10ULL * 1000000000ULL)
#define WEFT_CT_LIFETIME_OTHER_NS (60ULL * 1000000000ULL)

/* ct_entry.flags */
#define WEFT_CT_F_CLOSING (1U << 0) /* FIN or RST seen */

struct ct_key {
	__u8 saddr[16]; /* network order; IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__be16 sport_be16; /* ICMP echo: the identifier on the request side, 0 on the other */
	__be16 dport_be16;
	__u32 endpoint_id;
	__u8 protocol;
	__u8 family;
	__u8 direction; /* enum weft_direction in which the flow was opened */
	__u8 pad;
};

struct ct_entry {
	__u64 created_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 last_seen_ns;
	__u64 fwd_packets;
	__u64 fwd_bytes;
	__u64 rev_packets;
	__u64 rev_bytes;
	__u32 flags; /* WEFT_CT_F_* */
	__u8 tcp_flags_seen;
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
	__uint(max_entries, 262144);
	WEFT_PIN_BY_NAME;
} weft_conntrack SEC(".maps");

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_RST 0x04

static __always_inline int ct_expired(const struct ct_entry *e, __u8 protocol, __u64 now)
{
	__u64 lifetime = WEFT_CT_LIFETIME_OTHER_NS;
	if (protocol == 6 /* TCP */)
		lifetime = (e->flags & WEFT_CT_F_CLOSING) ? WEFT_CT_LIFETIME_CLOSING_NS : WEFT_CT_LIFETIME_TCP_NS;
	return now - e->last_seen_ns > lifetime;
}

static __always_inline void ct_touch(struct ct_entry *e, int reply, __u32 len, __u8 tcp_flags, __u64 now)
{
	e->last_seen_ns = now;
	if (reply) {
		__sync_fetch_and_add(&e->rev_packets, 1);
		__sync_fetch_and_add(&e->rev_bytes, len);
	} else {
		__sync_fetch_and_add(&e->fwd_packets, 1);
		__sync_fetch_and_add(&e->fwd_bytes, len);
	}
	if (tcp_flags) {
		e->tcp_flags_seen |= tcp_flags;
		if (tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
			e->flags |= WEFT_CT_F_CLOSING;
	}
}
