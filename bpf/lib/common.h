/* Shared constants and enums of the weft datapath. Every enum here that userspace reads is
 * mirrored in libs/bpf/src/enums.ts; the struct contract test checks them against BTF. */
#pragma once

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define WEFT_AF_INET 2
#define WEFT_AF_INET6 10

/* Why a packet was dropped. Values are stored in events read by the agent: append only. */
enum weft_drop_reason {
	WEFT_DROP_NONE = 0,
	WEFT_DROP_POLICY_DENY = 1,      /* an explicit deny entry matched */
	WEFT_DROP_POLICY_DEFAULT = 2,   /* a policy selects the endpoint and no allow entry matched */
	WEFT_DROP_INVALID_PACKET = 3,   /* truncated or malformed headers */
	WEFT_DROP_UNKNOWN_SOURCE = 4,   /* a pod sent from an address that is not one of its own */
	WEFT_DROP_SPOOFED_SOURCE = 5,   /* a pod sent from another endpoint's address */
};

enum weft_event_type {
	WEFT_EVENT_DROP = 1,
	WEFT_EVENT_POLICY_VERDICT = 2, /* a new flow was allowed by policy (when enabled) */
	WEFT_EVENT_TRACE = 3,          /* every packet seen (when enabled): debugging only */
};

/* Seen from the endpoint: ingress = entering the pod, egress = leaving it. */
enum weft_direction {
	WEFT_DIR_INGRESS = 0,
	WEFT_DIR_EGRESS = 1,
};

enum weft_verdict {
	WEFT_VERDICT_NONE = 0, /* no entry matched */
	WEFT_VERDICT_ALLOW = 1,
	WEFT_VERDICT_DENY = 2,
};

enum weft_ct_status {
	WEFT_CT_NEW = 0,
	WEFT_CT_ESTABLISHED = 1,
	WEFT_CT_REPLY = 2,
	WEFT_CT_RELATED = 3, /* ICMP errors and IPv6 neighbour discovery: never policed */
};

/* Reserved identities (libs/datapath/src/policy-types.ts RESERVED_IDENTITY). */
#define WEFT_IDENTITY_ANY 0
#define WEFT_IDENTITY_WORLD 2

#define WEFT_PIN_BY_NAME __uint(pinning, LIBBPF_PIN_BY_NAME)
