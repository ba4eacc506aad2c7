/* Endpoints: one entry per pod address, so the programs (shared by all pods) learn which pod a
 * packet belongs to from its source (leaving) or destination (entering) address. */
#pragma once
#include "common.h"

/* endpoint_info.flags */
#define WEFT_EP_F_INGRESS_ENFORCED (1U << 0) /* a policy selects the pod for ingress */
#define WEFT_EP_F_EGRESS_ENFORCED (1U << 1)  /* a policy selects the pod for egress */
#define WEFT_EP_F_IN_POD_NETNS (1U << 2)     /* programs sit on the pod interface (IPvlan/ENI) */

struct endpoint_key {
	__u8 addr[16]; /* network order; IPv4 in the first 4 bytes, rest zero */
	__u8 family;   /* WEFT_AF_INET or WEFT_AF_INET6 */
	__u8 pad[3];
};

struct endpoint_info {
	__u32 endpoint_id;
	__u32 identity;
	__u32 ifindex; /* where from-container is attached: packets from elsewhere are spoofed */
	__u32 flags;   /* WEFT_EP_F_* */
	__u8 mac[6];
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, 65536);
	WEFT_PIN_BY_NAME;
} weft_endpoints SEC(".maps");
