// SPDX-License-Identifier: GPL-2.0
/* Packets leaving a pod: tc ingress on the host-side veth, or tc egress on the pod interface
 * inside its netns (IPvlan/ENI). The pod's egress policy applies. */
#include "lib/enforce.h"

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	return enforce(skb, WEFT_DIR_EGRESS);
}

char LICENSE[] SEC("license") = "GPL";
