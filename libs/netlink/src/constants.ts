// Numbers from the kernel's uapi headers (linux/netlink.h, rtnetlink.h, if_link.h, if_addr.h,
// neighbour.h, fib_rules.h). Only what this library sends or reads.

export const NETLINK_ROUTE = 0;

export const NLMSG_ERROR = 2;

export const NLM_F = {
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  DUMP: 0x300, // ROOT | MATCH
} as const;

export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  SETLINK: 19,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
  NEWNEIGH: 28,
  DELNEIGH: 29,
  GETNEIGH: 30,
  NEWRULE: 32,
  DELRULE: 33,
  GETRULE: 34,
} as const;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

/** Attribute type bits (the kernel may set NLA_F_NESTED / NLA_F_NET_BYTEORDER above them). */
export const NLA_TYPE_MASK = 0x3fff;

export const IFF_UP = 0x1;

export const IFLA = {
  ADDRESS: 1,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  MASTER: 10,
  TXQLEN: 13,
  OPERSTATE: 16,
  LINKINFO: 18,
  NET_NS_FD: 28,
  LINK_NETNSID: 37,
} as const;

export const IFLA_INFO = { KIND: 1, DATA: 2 } as const;

/** IFLA_INFO_DATA of a veth: the peer is a nested ifinfomsg followed by its own IFLA_* attributes. */
export const VETH_INFO_PEER = 1;

export const IFLA_IPVLAN = { MODE: 1, FLAGS: 2 } as const; // both u16
export const IPVLAN_MODE = { l2: 0, l3: 1, l3s: 2 } as const;
export const IPVLAN_F = { bridge: 0, private: 0x01, vepa: 0x02 } as const;

export const IFLA_MACVLAN_MODE = 1; // u32
export const MACVLAN_MODE = { private: 1, vepa: 2, bridge: 4, passthru: 8, source: 16 } as const;

export const OPERSTATES = [
  'unknown',
  'notpresent',
  'down',
  'lowerlayerdown',
  'testing',
  'dormant',
  'up',
] as const;

export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, BROADCAST: 4, FLAGS: 8 } as const;
export const IFA_F_NODAD = 0x02;

export const RTA = {
  DST: 1,
  SRC: 2,
  OIF: 4,
  GATEWAY: 5,
  PRIORITY: 6,
  PREFSRC: 7,
  TABLE: 15,
} as const;

export const RTNH_F_ONLINK = 0x4;

export const RT_SCOPE = { universe: 0, site: 200, link: 253, host: 254, nowhere: 255 } as const;
export const RTN = {
  unspec: 0,
  unicast: 1,
  local: 2,
  broadcast: 3,
  anycast: 4,
  multicast: 5,
  blackhole: 6,
  unreachable: 7,
  prohibit: 8,
  throw: 9,
} as const;
export const RTPROT = { unspec: 0, redirect: 1, kernel: 2, boot: 3, static: 4 } as const;
export const RT_TABLE = { unspec: 0, main: 254, local: 255 } as const;

export const NDA = { DST: 1, LLADDR: 2 } as const;
export const NUD = {
  incomplete: 0x01,
  reachable: 0x02,
  stale: 0x04,
  delay: 0x08,
  probe: 0x10,
  failed: 0x20,
  noarp: 0x40,
  permanent: 0x80,
} as const;

export const FRA = {
  DST: 1,
  SRC: 2,
  IIFNAME: 3,
  PRIORITY: 6,
  FWMARK: 10,
  TABLE: 15,
  FWMASK: 16,
  OIFNAME: 17,
} as const;
export const FR_ACT_TO_TBL = 1;
export const FIB_RULE_INVERT = 0x2;

/** Header sizes: ifinfomsg, ifaddrmsg, rtmsg, ndmsg, fib_rule_hdr. */
export const SIZEOF = { ifinfomsg: 16, ifaddrmsg: 8, rtmsg: 12, ndmsg: 12, fib_rule_hdr: 12 } as const;
