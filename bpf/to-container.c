// SPDX-License-Identifier: GPL-2.0
/* Packets entering a pod: tc egress on the host-side veth, or tc ingress on the pod interface
 * inside its netns (IPvlan/ENI). The pod's ingress policy applies. */
#include "lib/enforce.h"

SEC("tc")
int to_container(struct __sk_buff *skb)
{
	return enforce(skb, WEFT_DIR_INGRESS);
}

char LICENSE[] SEC("license") = "GPL";
