/* The events ring buffer: drops always, policy verdicts and traces when weft_config asks. */
#pragma once
#include "common.h"

/* weft_config.flags */
#define WEFT_CFG_F_VERDICT_EVENTS (1U << 0)
#define WEFT_CFG_F_TRACE_EVENTS (1U << 1)

struct weft_config {
	__u32 flags;
	__u32 pad;
};

struct weft_event {
	__u64 timestamp_ns;
	enum weft_event_type type;
	enum weft_drop_reason reason; /* WEFT_DROP_NONE unless type is WEFT_EVENT_DROP */
	__u32 endpoint_id;
	__u32 peer_identity;
	__u32 ifindex;
	__u32 pkt_len;
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport_be16;
	__be16 dport_be16;
	__u8 family;
	__u8 protocol;
	/* One byte each; typed as enums so that BTF carries them for the contract test. */
	enum weft_direction direction : 8;
	enum weft_verdict verdict : 8;
	enum weft_ct_status ct_status : 8;
	__u8 pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct weft_config);
	__uint(max_entries, 1);
	WEFT_PIN_BY_NAME;
} weft_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	WEFT_PIN_BY_NAME;
} weft_events SEC(".maps");

/* Events are assembled here rather than on the 512-byte stack; it also records struct weft_event
 * in the object's BTF, where the struct contract test finds it. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct weft_event);
	__uint(max_entries, 1);
	WEFT_PIN_BY_NAME;
} weft_event_scratch SEC(".maps");

static __always_inline __u32 config_flags(void)
{
	__u32 zero = 0;
	struct weft_config *cfg = bpf_map_lookup_elem(&weft_config, &zero);
	return cfg ? cfg->flags : 0;
}
