/* Parses the headers the policy needs into a struct flow. Reads with bpf_skb_load_bytes so that
 * non-linear skbs work without pulling data. */
#pragma once
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include "common.h"

#define ICMP_ECHO_REQUEST 8
#define ICMP_ECHO_REPLY 0
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

struct flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 family;
	__u8 protocol;
	__u8 tcp_flags;
	__u8 related; /* ICMP error or neighbour discovery: passes without policy */
};

enum parse_result { PARSE_OK, PARSE_NOT_IP, PARSE_INVALID };

static __always_inline int parse_l4(struct __sk_buff *skb, __u32 off, struct flow *f)
{
	__u8 l4[14];

	switch (f->protocol) {
	case IPPROTO_TCP:
		if (bpf_skb_load_bytes(skb, off, l4, 14) < 0)
			return PARSE_INVALID;
		f->tcp_flags = l4[13];
		/* fallthrough */
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		if (bpf_skb_load_bytes(skb, off, l4, 4) < 0)
			return PARSE_INVALID;
		__builtin_memcpy(&f->sport, l4, 2);
		__builtin_memcpy(&f->dport, l4 + 2, 2);
		return PARSE_OK;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		if (bpf_skb_load_bytes(skb, off, l4, 8) < 0)
			return PARSE_INVALID;
		__u8 type = l4[0];
		__be16 id;
		__builtin_memcpy(&id, l4 + 4, 2);
		/* Echo is tracked like a port pair: the identifier is the request's source port, the
		 * reply's destination port, so a reply is the request's reversed tuple. */
		if (type == ICMP_ECHO_REQUEST || type == ICMPV6_ECHO_REQUEST)
			f->sport = id;
		else if (type == ICMP_ECHO_REPLY || type == ICMPV6_ECHO_REPLY)
			f->dport = id;
		else if (f->protocol == IPPROTO_ICMP)
			f->related = type == 3 || type == 11 || type == 12; /* unreachable, time exceeded, param */
		else
			f->related = type < 128 || (type >= 133 && type <= 137); /* errors, NDP */
		return PARSE_OK;
	}
	default:
		return PARSE_OK;
	}
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct flow *f)
{
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0 || ip.ihl < 5)
		return PARSE_INVALID;
	f->family = WEFT_AF_INET;
	f->protocol = ip.protocol;
	__builtin_memcpy(f->saddr, &ip.saddr, 4);
	__builtin_memcpy(f->daddr, &ip.daddr, 4);
	/* Non-first fragments carry no ports: they are policed with ports 0. */
	if (ip.frag_off & bpf_htons(0x1fff))
		return PARSE_OK;
	return parse_l4(skb, ETH_HLEN + ip.ihl * 4, f);
}

#define IPV6_MAX_EXT_HEADERS 4

static __always_inline int parse_ipv6(struct __sk_buff *skb, struct flow *f)
{
	struct ipv6hdr ip6;
	__u32 off = ETH_HLEN + sizeof(ip6);

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
		return PARSE_INVALID;
	f->family = WEFT_AF_INET6;
	__builtin_memcpy(f->saddr, &ip6.saddr, 16);
	__builtin_memcpy(f->daddr, &ip6.daddr, 16);
	__u8 next = ip6.nexthdr;

#pragma unroll
	for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
		__u8 ext[2];
		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS &&
		    next != IPPROTO_FRAGMENT)
			break;
		if (bpf_skb_load_bytes(skb, off, ext, 2) < 0)
			return PARSE_INVALID;
		if (next == IPPROTO_FRAGMENT) {
			__be16 frag_off;
			if (bpf_skb_load_bytes(skb, off + 2, &frag_off, 2) < 0)
				return PARSE_INVALID;
			next = ext[0];
			off += 8;
			if (frag_off & bpf_htons(0xfff8)) {
				f->protocol = next;
				return PARSE_OK; /* non-first fragment: no ports */
			}
			continue;
		}
		next = ext[0];
		off += (ext[1] + 1) * 8;
	}
	f->protocol = next;
	return parse_l4(skb, off, f);
}

static __always_inline int parse_flow(struct __sk_buff *skb, struct flow *f)
{
	__builtin_memset(f, 0, sizeof(*f));
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return parse_ipv4(skb, f);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(skb, f);
	return PARSE_NOT_IP;
}
