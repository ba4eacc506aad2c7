/* ipcache: which security identity an address belongs to, longest prefix wins. */
#pragma once
#include "common.h"

struct ipcache_key {
	__u32 prefixlen; /* 32 (family + pad) + the CIDR's prefix length */
	__u8 family;
	__u8 pad[3];
	__u8 addr[16]; /* network order; IPv4 in the first 4 bytes */
};

struct ipcache_value {
	__u32 identity;
	__u32 flags; /* reserved */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	WEFT_PIN_BY_NAME;
} weft_ipcache SEC(".maps");

static __always_inline __u32 ipcache_identity(__u8 family, const __u8 *addr)
{
	struct ipcache_key key = { .prefixlen = 32 + (family == WEFT_AF_INET ? 32 : 128), .family = family };
	__builtin_memcpy(key.addr, addr, 16);
	struct ipcache_value *v = bpf_map_lookup_elem(&weft_ipcache, &key);
	return v ? v->identity : WEFT_IDENTITY_WORLD;
}
