import { formatMac, parseMac } from './addr';
import {
  attr,
  nested,
  parseAttrs,
  rawStrAttr,
  readS32,
  readStr,
  readU16,
  readU32,
  readU8,
  strAttr,
  u16Attr,
  u32Attr,
} from './attrs';
import {
  AF_UNSPEC,
  IFF_UP,
  IFLA,
  IFLA_INFO,
  IFLA_IPVLAN,
  IFLA_MACVLAN_MODE,
  IPVLAN_F,
  IPVLAN_MODE,
  MACVLAN_MODE,
  OPERSTATES,
  SIZEOF,
  VETH_INFO_PEER,
} from './constants';
import { NetlinkError } from './errors';

export type IpvlanMode = keyof typeof IPVLAN_MODE;
export type IpvlanFlag = keyof typeof IPVLAN_F;
export type MacvlanMode = keyof typeof MACVLAN_MODE;

export interface Link {
  index: number;
  name: string;
  /** IFF_* flags. */
  flags: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  operState: (typeof OPERSTATES)[number];
  mtu: number;
  mac?: string;
  /** IFLA_INFO_KIND: "veth", "bridge", "macvlan", "ipvlan", ... (absent for physical devices). */
  kind?: string;
  /**
   * IFLA_LINK: for a veth the peer's ifindex, for macvlan/ipvlan the master's. It is an index in
   * the namespace named by `linkNetnsId` when that is set (a peer in another namespace).
   */
  linkIndex?: number;
  /** IFLA_LINK_NETNSID: the peer's namespace as seen from this one; absent when it is the same. */
  linkNetnsId?: number;
  /** IFLA_MASTER: the bridge/bond this link is enslaved to. */
  master?: number;
  ipvlan?: { mode: IpvlanMode | number; flags: IpvlanFlag | number };
  macvlan?: { mode: MacvlanMode | number };
}

/** Like the kernel's dev_valid_name: 1-15 bytes, no '/', ':' or whitespace, not "." or "..". */
export function assertLinkName(name: string): void {
  const ok =
    typeof name === 'string' &&
    name.length > 0 &&
    Buffer.byteLength(name) <= 15 &&
    name !== '.' &&
    name !== '..' &&
    !/[/:\s\0]/.test(name);
  if (!ok) throw NetlinkError.invalid(`invalid link name ${JSON.stringify(name)}`);
}

export function ifinfomsg(index = 0, flags = 0, change = 0, family = AF_UNSPEC): Buffer {
  const b = Buffer.alloc(SIZEOF.ifinfomsg);
  b.writeUInt8(family, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
}

/** IFLA attributes common to every link we create: name, MTU, MAC, target namespace. */
export interface CommonLinkAttrs {
  name: string;
  mtu?: number;
  mac?: string;
  /** An open netns fd: the link is created directly inside that namespace. */
  netnsFd?: number;
}

function commonAttrs(l: CommonLinkAttrs): Buffer[] {
  assertLinkName(l.name);
  const out = [strAttr(IFLA.IFNAME, l.name)];
  if (l.mtu !== undefined) out.push(u32Attr(IFLA.MTU, checkMtu(l.mtu)));
  if (l.mac !== undefined) out.push(attr(IFLA.ADDRESS, parseMac(l.mac)));
  if (l.netnsFd !== undefined) out.push(u32Attr(IFLA.NET_NS_FD, l.netnsFd));
  return out;
}

function checkMtu(mtu: number): number {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw NetlinkError.invalid(`invalid MTU ${mtu}`);
  return mtu;
}

function linkInfo(kind: string, data?: Buffer[]): Buffer {
  const info = [rawStrAttr(IFLA_INFO.KIND, kind)];
  if (data) info.push(nested(IFLA_INFO.DATA, data));
  return nested(IFLA.LINKINFO, info);
}

/** RTM_NEWLINK payload of a veth pair; the peer (with its own name/MTU/MAC/netns) nests in INFO_DATA. */
export function encodeVeth(host: CommonLinkAttrs, peer: CommonLinkAttrs): Buffer {
  const peerInfo = Buffer.concat([ifinfomsg(), ...commonAttrs(peer)]);
  return Buffer.concat([
    ifinfomsg(),
    ...commonAttrs(host),
    linkInfo('veth', [attr(VETH_INFO_PEER, peerInfo)]),
  ]);
}

export function encodeIpvlan(
  l: CommonLinkAttrs & { master: number; mode: IpvlanMode; flags?: IpvlanFlag },
): Buffer {
  const mode = IPVLAN_MODE[l.mode];
  const flags = IPVLAN_F[l.flags ?? 'bridge'];
  if (mode === undefined) throw NetlinkError.invalid(`invalid ipvlan mode ${JSON.stringify(l.mode)}`);
  if (flags === undefined) throw NetlinkError.invalid(`invalid ipvlan flags ${JSON.stringify(l.flags)}`);
  return Buffer.concat([
    ifinfomsg(),
    ...commonAttrs(l),
    u32Attr(IFLA.LINK, l.master),
    linkInfo('ipvlan', [u16Attr(IFLA_IPVLAN.MODE, mode), u16Attr(IFLA_IPVLAN.FLAGS, flags)]),
  ]);
}

export function encodeMacvlan(l: CommonLinkAttrs & { master: number; mode: MacvlanMode }): Buffer {
  const mode = MACVLAN_MODE[l.mode];
  if (mode === undefined) throw NetlinkError.invalid(`invalid macvlan mode ${JSON.stringify(l.mode)}`);
  return Buffer.concat([
    ifinfomsg(),
    ...commonAttrs(l),
    u32Attr(IFLA.LINK, l.master),
    linkInfo('macvlan', [u32Attr(IFLA_MACVLAN_MODE, mode)]),
  ]);
}

export function encodeBridge(l: CommonLinkAttrs): Buffer {
  return Buffer.concat([ifinfomsg(), ...commonAttrs(l), linkInfo('bridge')]);
}

/** Selects an existing link by index, or by name (index 0 + IFLA_IFNAME, which the kernel resolves). */
export function selectLink(ref: number | string, flags = 0, change = 0): Buffer[] {
  if (typeof ref === 'number') return [ifinfomsg(ref, flags, change)];
  assertLinkName(ref);
  return [ifinfomsg(0, flags, change), strAttr(IFLA.IFNAME, ref)];
}

export const linkChanges = {
  up: (ref: number | string) => selectLink(ref, IFF_UP, IFF_UP),
  down: (ref: number | string) => selectLink(ref, 0, IFF_UP),
  mtu: (ref: number | string, mtu: number) => [...selectLink(ref), u32Attr(IFLA.MTU, checkMtu(mtu))],
  mac: (ref: number | string, mac: string) => [...selectLink(ref), attr(IFLA.ADDRESS, parseMac(mac))],
  netns: (ref: number | string, fd: number) => [...selectLink(ref), u32Attr(IFLA.NET_NS_FD, fd)],
  rename: (index: number, name: string) => {
    assertLinkName(name);
    return [ifinfomsg(index), strAttr(IFLA.IFNAME, name)];
  },
};

const byValue = <T extends Record<string, number>>(table: T, v: number): keyof T | number =>
  (Object.keys(table) as (keyof T)[]).find((k) => table[k] === v) ?? v;

export function decodeLink(data: Buffer): Link {
  const index = data.readInt32LE(4);
  const flags = data.readUInt32LE(8);
  const a = parseAttrs(data, SIZEOF.ifinfomsg);
  const link: Link = {
    index,
    name: readStr(a.get(IFLA.IFNAME)) ?? '',
    flags,
    up: (flags & IFF_UP) !== 0,
    operState: OPERSTATES[readU8(a.get(IFLA.OPERSTATE)) ?? 0] ?? 'unknown',
    mtu: readU32(a.get(IFLA.MTU)) ?? 0,
  };
  const mac = a.get(IFLA.ADDRESS);
  if (mac && mac.length > 0) link.mac = formatMac(mac);
  const parent = readU32(a.get(IFLA.LINK));
  const netnsId = readS32(a.get(IFLA.LINK_NETNSID));
  if (netnsId !== undefined && netnsId >= 0) link.linkNetnsId = netnsId;
  // Devices without a parent report themselves; a peer across namespaces may share our index.
  if (parent !== undefined && (parent !== index || link.linkNetnsId !== undefined)) link.linkIndex = parent;
  const master = readU32(a.get(IFLA.MASTER));
  if (master) link.master = master;
  const info = a.get(IFLA.LINKINFO);
  if (info) {
    const i = parseAttrs(info);
    link.kind = readStr(i.get(IFLA_INFO.KIND));
    const d = i.get(IFLA_INFO.DATA);
    if (d && link.kind === 'ipvlan') {
      const da = parseAttrs(d);
      link.ipvlan = {
        mode: byValue(IPVLAN_MODE, readU16(da.get(IFLA_IPVLAN.MODE)) ?? 0) as IpvlanMode,
        flags: byValue(IPVLAN_F, readU16(da.get(IFLA_IPVLAN.FLAGS)) ?? 0) as IpvlanFlag,
      };
    } else if (d && link.kind === 'macvlan') {
      link.macvlan = {
        mode: byValue(MACVLAN_MODE, readU32(parseAttrs(d).get(IFLA_MACVLAN_MODE)) ?? 0) as MacvlanMode,
      };
    }
  }
  return link;
}
