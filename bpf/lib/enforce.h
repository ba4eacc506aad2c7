/* The per-packet decision shared by from-container (direction egress) and to-container
 * (direction ingress): find the local endpoint, pass tracked flows, police new ones. */
#pragma once
#include "common.h"
#include "parse.h"
#include "endpoint.h"
#include "ipcache.h"
#include "policy.h"
#include "conntrack.h"
#include "events.h"

static __always_inline void emit_event(struct __sk_buff *skb, const struct flow *f, enum weft_event_type type,
				       enum weft_drop_reason reason, __u32 endpoint_id, __u32 peer_identity,
				       __u8 direction, __u8 verdict, __u8 ct_status)
{
	__u32 zero = 0;
	struct weft_event *ev = bpf_map_lookup_elem(&weft_event_scratch, &zero);
	if (!ev)
		return;
	ev->timestamp_ns = bpf_ktime_get_ns();
	ev->type = type;
	ev->reason = reason;
	ev->endpoint_id = endpoint_id;
	ev->peer_identity = peer_identity;
	ev->ifindex = skb->ifindex;
	ev->pkt_len = skb->len;
	__builtin_memcpy(ev->saddr, f->saddr, 16);
	__builtin_memcpy(ev->daddr, f->daddr, 16);
	ev->sport_be16 = f->sport;
	ev->dport_be16 = f->dport;
	ev->family = f->family;
	ev->protocol = f->protocol;
	ev->direction = direction;
	ev->verdict = verdict;
	ev->ct_status = ct_status;
	/* A full ring buffer loses the event, never the packet decision. */
	bpf_ringbuf_output(&weft_events, ev, sizeof(*ev), 0);
}

static __always_inline int drop(struct __sk_buff *skb, const struct flow *f, enum weft_drop_reason reason,
				__u32 endpoint_id, __u32 peer_identity, __u8 direction)
{
	emit_event(skb, f, WEFT_EVENT_DROP, reason, endpoint_id, peer_identity, direction, WEFT_VERDICT_DENY,
		   WEFT_CT_NEW);
	return TC_ACT_SHOT;
}

static __always_inline int ipv6_link_local_or_unspecified(const __u8 *addr)
{
	if (addr[0] == 0xfe && (addr[1] & 0xc0) == 0x80)
		return 1;
	__u64 hi, lo;
	__builtin_memcpy(&hi, addr, 8);
	__builtin_memcpy(&lo, addr + 8, 8);
	return hi == 0 && lo == 0;
}

static __always_inline void ct_fill(struct ct_key *k, const struct flow *f, __u32 endpoint_id, __u8 direction,
				    int reversed)
{
	__builtin_memset(k, 0, sizeof(*k));
	if (reversed) {
		__builtin_memcpy(k->saddr, f->daddr, 16);
		__builtin_memcpy(k->daddr, f->saddr, 16);
		k->sport_be16 = f->dport;
		k->dport_be16 = f->sport;
	} else {
		__builtin_memcpy(k->saddr, f->saddr, 16);
		__builtin_memcpy(k->daddr, f->daddr, 16);
		k->sport_be16 = f->sport;
		k->dport_be16 = f->dport;
	}
	k->endpoint_id = endpoint_id;
	k->protocol = f->protocol;
	k->family = f->family;
	k->direction = direction;
}

/*
 * A packet weft lets through gets TC_ACT_UNSPEC, never TC_ACT_OK: under tcx OK means "accept and
 * skip the rest of the hook", which would bypass what later plugins add on the same device (the
 * bandwidth plugin's ingress qdisc and ifb); UNSPEC means "pass on" under both tcx and clsact.
 */
static __always_inline int enforce(struct __sk_buff *skb, __u8 direction)
{
	struct flow f;
	int parsed = parse_flow(skb, &f);

	if (parsed == PARSE_NOT_IP)
		return TC_ACT_UNSPEC; /* ARP and friends */
	if (parsed == PARSE_INVALID)
		return drop(skb, &f, WEFT_DROP_INVALID_PACKET, 0, 0, direction);

	/* The local endpoint owns the source address of what leaves it, the destination of what enters. */
	struct endpoint_key ek = { .family = f.family };
	__builtin_memcpy(ek.addr, direction == WEFT_DIR_EGRESS ? f.saddr : f.daddr, 16);
	struct endpoint_info *ep = bpf_map_lookup_elem(&weft_endpoints, &ek);
	__u32 trace = config_flags();

	if (!ep) {
		if (direction == WEFT_DIR_INGRESS)
			return TC_ACT_UNSPEC; /* broadcast, multicast, addresses weft does not manage */
		/* IPv6 neighbour discovery and DAD leave from link-local or unspecified sources. */
		if (f.family == WEFT_AF_INET6 && ipv6_link_local_or_unspecified(f.saddr))
			return TC_ACT_UNSPEC;
		return drop(skb, &f, WEFT_DROP_UNKNOWN_SOURCE, 0, 0, direction);
	}
	__u32 endpoint_id = ep->endpoint_id;
	if (direction == WEFT_DIR_EGRESS && ep->ifindex && ep->ifindex != skb->ifindex)
		return drop(skb, &f, WEFT_DROP_SPOOFED_SOURCE, endpoint_id, 0, direction);

	__u32 peer_identity = ipcache_identity(f.family, direction == WEFT_DIR_EGRESS ? f.daddr : f.saddr);
	__u64 now = bpf_ktime_get_ns();
	__u32 len = skb->len;

	if (f.related) {
		if (trace & WEFT_CFG_F_TRACE_EVENTS)
			emit_event(skb, &f, WEFT_EVENT_TRACE, WEFT_DROP_NONE, endpoint_id, peer_identity, direction,
				   WEFT_VERDICT_ALLOW, WEFT_CT_RELATED);
		return TC_ACT_UNSPEC;
	}

	struct ct_key key;
	ct_fill(&key, &f, endpoint_id, direction, 0);
	struct ct_entry *ct = bpf_map_lookup_elem(&weft_conntrack, &key);
	__u8 ct_status = WEFT_CT_ESTABLISHED;
	if (!ct || ct_expired(ct, f.protocol, now)) {
		ct_fill(&key, &f, endpoint_id, direction ^ 1, 1);
		ct = bpf_map_lookup_elem(&weft_conntrack, &key);
		ct_status = WEFT_CT_REPLY;
		if (ct && ct_expired(ct, f.protocol, now))
			ct = 0;
	}
	if (ct) {
		ct_touch(ct, ct_status == WEFT_CT_REPLY, len, f.tcp_flags, now);
		if (trace & WEFT_CFG_F_TRACE_EVENTS)
			emit_event(skb, &f, WEFT_EVENT_TRACE, WEFT_DROP_NONE, endpoint_id, peer_identity, direction,
				   WEFT_VERDICT_ALLOW, ct_status);
		return TC_ACT_UNSPEC;
	}

	__u32 enforced = direction == WEFT_DIR_INGRESS ? WEFT_EP_F_INGRESS_ENFORCED : WEFT_EP_F_EGRESS_ENFORCED;
	if (ep->flags & enforced) {
		enum weft_drop_reason reason = WEFT_DROP_NONE;
		if (policy_decide(endpoint_id, direction, peer_identity, f.protocol, f.dport, len, &reason) !=
		    WEFT_VERDICT_ALLOW)
			return drop(skb, &f, reason, endpoint_id, peer_identity, direction);
	}

	/* A new flow: remember it so its later packets and its replies pass without policy. */
	struct ct_entry entry = { .created_ns = now };
	ct_touch(&entry, 0, len, f.tcp_flags, now);
	ct_fill(&key, &f, endpoint_id, direction, 0);
	bpf_map_update_elem(&weft_conntrack, &key, &entry, BPF_ANY);
	if (trace & (WEFT_CFG_F_VERDICT_EVENTS | WEFT_CFG_F_TRACE_EVENTS))
		emit_event(skb, &f, (trace & WEFT_CFG_F_VERDICT_EVENTS) ? WEFT_EVENT_POLICY_VERDICT : WEFT_EVENT_TRACE,
			   WEFT_DROP_NONE, endpoint_id, peer_identity, direction, WEFT_VERDICT_ALLOW, WEFT_CT_NEW);
	return TC_ACT_UNSPEC;
}
