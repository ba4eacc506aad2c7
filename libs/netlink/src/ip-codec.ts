import {
  formatIp,
  formatMac,
  ipv4Broadcast,
  parseIp,
  parseMac,
  parsePrefix,
  type IpFamily,
  type IpPrefix,
} from './addr';
import { attr, parseAttrs, readStr, readU32, strAttr, u32Attr } from './attrs';
import {
  AF_INET,
  AF_INET6,
  FIB_RULE_INVERT,
  FR_ACT_TO_TBL,
  FRA,
  IFA,
  IFA_F_NODAD,
  NDA,
  NUD,
  RT_SCOPE,
  RT_TABLE,
  RTA,
  RTN,
  RTNH_F_ONLINK,
  RTPROT,
  SIZEOF,
} from './constants';
import { NetlinkError } from './errors';

// Encoders/decoders of addresses, routes, neighbours and policy rules. Encoders take resolved
// ifindexes; the Rtnl class resolves names.

const afOf = (f: IpFamily) => (f === 4 ? AF_INET : AF_INET6);
const familyOfAf = (af: number): IpFamily => (af === AF_INET6 ? 6 : 4);

function checkTable(table: number): number {
  if (!Number.isInteger(table) || table < 0 || table > 0xffffffff)
    throw NetlinkError.invalid(`invalid table ${table}`);
  return table;
}

// ---------- addresses ----------

export interface Address {
  family: IpFamily;
  index: number;
  address: string;
  prefixLength: number;
  /** "address/prefixLength" */
  cidr: string;
  scope: number;
  /** IFA_F_* flags */
  flags: number;
  label?: string;
}

export interface AddressOptions {
  /** IPv6: skip duplicate address detection, so the address is usable at once. */
  nodad?: boolean;
  /** Default universe (global). `host` keeps an address out of source selection for routes of wider scope. */
  scope?: 'universe' | 'site' | 'link' | 'host';
}

export function encodeAddress(
  index: number,
  cidr: string,
  opts: AddressOptions = {},
  forDelete = false,
): Buffer {
  const p = parsePrefix(cidr);
  const flags = opts.nodad && p.family === 6 ? IFA_F_NODAD : 0;
  const hdr = Buffer.alloc(SIZEOF.ifaddrmsg);
  hdr.writeUInt8(afOf(p.family), 0);
  hdr.writeUInt8(p.prefixLength, 1);
  hdr.writeUInt8(flags, 2);
  hdr.writeUInt8(RT_SCOPE[opts.scope ?? 'universe'], 3);
  hdr.writeUInt32LE(index, 4);
  const attrs = [hdr, attr(IFA.LOCAL, p.bytes), attr(IFA.ADDRESS, p.bytes)];
  // Like vishvananda/netlink and `ip addr add ... brd +`: IPv4 prefixes get their broadcast.
  if (!forDelete && p.family === 4 && p.prefixLength < 31) attrs.push(attr(IFA.BROADCAST, ipv4Broadcast(p)));
  if (flags) attrs.push(u32Attr(IFA.FLAGS, flags));
  return Buffer.concat(attrs);
}

export function addressFilter(family?: IpFamily): Buffer {
  const hdr = Buffer.alloc(SIZEOF.ifaddrmsg);
  if (family) hdr.writeUInt8(afOf(family), 0);
  return hdr;
}

export function decodeAddress(data: Buffer): Address {
  const family = familyOfAf(data.readUInt8(0));
  const prefixLength = data.readUInt8(1);
  const a = parseAttrs(data, SIZEOF.ifaddrmsg);
  const raw = a.get(IFA.LOCAL) ?? a.get(IFA.ADDRESS);
  const address = raw ? formatIp(raw) : '';
  const out: Address = {
    family,
    index: data.readUInt32LE(4),
    address,
    prefixLength,
    cidr: `${address}/${prefixLength}`,
    scope: data.readUInt8(3),
    flags: readU32(a.get(IFA.FLAGS)) ?? data.readUInt8(2),
  };
  const label = readStr(a.get(IFA.LABEL));
  if (label) out.label = label;
  return out;
}

// ---------- routes ----------

export type RouteScope = keyof typeof RT_SCOPE;
export type RouteType = Exclude<keyof typeof RTN, 'unspec'>;
export type RouteProtocol = keyof typeof RTPROT;

export interface RouteSpec {
  /** "10.0.0.0/24", "fd00::/64", a bare address (host route), or "default". */
  dst: string;
  /** Needed only when nothing else tells the family (dst "default" without gateway/src). */
  family?: IpFamily;
  gateway?: string;
  /** Output device: ifindex or name. */
  dev?: number | string;
  /** Preferred source address (RTA_PREFSRC). */
  src?: string;
  /** The gateway is reachable on `dev` even though no address covers it (169.254.1.1, fe80::1). */
  onlink?: boolean;
  /** Default: "link" for routes without a gateway, else "universe" (as `ip route`). */
  scope?: RouteScope | number;
  /** Default: main (254). */
  table?: number;
  /** Default: "boot" (as `ip route`). */
  protocol?: RouteProtocol | number;
  metric?: number;
  /** Default: unicast. */
  type?: RouteType;
}

export interface Route {
  family: IpFamily;
  /** "a.b.c.d/n" or "default". */
  dst: string;
  gateway?: string;
  oif?: number;
  src?: string;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  metric?: number;
  onlink: boolean;
}

function routeFamily(spec: RouteSpec): IpFamily {
  const candidates = [spec.dst === 'default' ? undefined : spec.dst, spec.gateway, spec.src].filter(
    (x): x is string => !!x,
  );
  const families = new Set(candidates.map((c) => parsePrefix(c).family));
  if (spec.family) families.add(spec.family);
  if (families.size > 1) throw NetlinkError.invalid(`route mixes IPv4 and IPv6: ${JSON.stringify(spec)}`);
  const [family] = families;
  if (!family) throw NetlinkError.invalid(`route needs a family: ${JSON.stringify(spec)}`);
  return family;
}

function scopeValue(s: RouteScope | number): number {
  const v = typeof s === 'number' ? s : RT_SCOPE[s];
  if (v === undefined || v < 0 || v > 255) throw NetlinkError.invalid(`invalid scope ${String(s)}`);
  return v;
}

export function encodeRoute(spec: RouteSpec, oif: number | undefined, forDelete: boolean): Buffer {
  const family = routeFamily(spec);
  const dst: IpPrefix | undefined = spec.dst === 'default' ? undefined : parsePrefix(spec.dst);
  const table = checkTable(spec.table ?? RT_TABLE.main);
  const type = spec.type ? RTN[spec.type] : forDelete ? RTN.unspec : RTN.unicast;
  if (type === undefined) throw NetlinkError.invalid(`invalid route type ${String(spec.type)}`);
  let scope: number;
  if (spec.scope !== undefined) scope = scopeValue(spec.scope);
  else if (type === RTN.local) scope = RT_SCOPE.host;
  else if (forDelete)
    scope = RT_SCOPE.nowhere; // wildcard: match any scope
  else scope = spec.gateway ? RT_SCOPE.universe : RT_SCOPE.link;
  const protocol =
    spec.protocol === undefined
      ? forDelete
        ? RTPROT.unspec
        : RTPROT.boot
      : typeof spec.protocol === 'number'
        ? spec.protocol
        : RTPROT[spec.protocol];
  if (protocol === undefined) throw NetlinkError.invalid(`invalid route protocol ${String(spec.protocol)}`);

  const hdr = Buffer.alloc(SIZEOF.rtmsg);
  hdr.writeUInt8(afOf(family), 0);
  hdr.writeUInt8(dst?.prefixLength ?? 0, 1);
  hdr.writeUInt8(table < 256 ? table : RT_TABLE.unspec, 4);
  hdr.writeUInt8(protocol, 5);
  hdr.writeUInt8(scope, 6);
  hdr.writeUInt8(type, 7);
  hdr.writeUInt32LE(spec.onlink ? RTNH_F_ONLINK : 0, 8);
  const attrs = [hdr, u32Attr(RTA.TABLE, table)];
  if (dst) attrs.push(attr(RTA.DST, dst.bytes));
  if (spec.gateway) attrs.push(attr(RTA.GATEWAY, parseIp(spec.gateway).bytes));
  if (oif !== undefined) attrs.push(u32Attr(RTA.OIF, oif));
  if (spec.src) attrs.push(attr(RTA.PREFSRC, parseIp(spec.src).bytes));
  if (spec.metric !== undefined) attrs.push(u32Attr(RTA.PRIORITY, spec.metric));
  return Buffer.concat(attrs);
}

export function routeFilter(family?: IpFamily): Buffer {
  const hdr = Buffer.alloc(SIZEOF.rtmsg);
  if (family) hdr.writeUInt8(afOf(family), 0);
  return hdr;
}

export function decodeRoute(data: Buffer): Route {
  const family = familyOfAf(data.readUInt8(0));
  const dstLen = data.readUInt8(1);
  const a = parseAttrs(data, SIZEOF.rtmsg);
  const dstRaw = a.get(RTA.DST);
  const route: Route = {
    family,
    dst: dstRaw ? `${formatIp(dstRaw)}/${dstLen}` : dstLen === 0 ? 'default' : `?/${dstLen}`,
    table: readU32(a.get(RTA.TABLE)) ?? data.readUInt8(4),
    protocol: data.readUInt8(5),
    scope: data.readUInt8(6),
    type: data.readUInt8(7),
    onlink: (data.readUInt32LE(8) & RTNH_F_ONLINK) !== 0,
  };
  const gw = a.get(RTA.GATEWAY);
  if (gw) route.gateway = formatIp(gw);
  const oif = readU32(a.get(RTA.OIF));
  if (oif !== undefined) route.oif = oif;
  const src = a.get(RTA.PREFSRC);
  if (src) route.src = formatIp(src);
  const metric = readU32(a.get(RTA.PRIORITY));
  if (metric !== undefined) route.metric = metric;
  return route;
}

// ---------- neighbours ----------

export type NeighbourState = keyof typeof NUD;

export interface Neighbour {
  family: IpFamily;
  index: number;
  address: string;
  lladdr?: string;
  /** NUD_* bits */
  state: number;
  permanent: boolean;
}

export function encodeNeighbour(
  index: number,
  address: string,
  lladdr: string | undefined,
  state: NeighbourState,
): Buffer {
  const ip = parseIp(address);
  const hdr = Buffer.alloc(SIZEOF.ndmsg);
  hdr.writeUInt8(afOf(ip.family), 0);
  hdr.writeInt32LE(index, 4);
  hdr.writeUInt16LE(NUD[state], 8);
  const attrs = [hdr, attr(NDA.DST, ip.bytes)];
  if (lladdr !== undefined) attrs.push(attr(NDA.LLADDR, parseMac(lladdr)));
  return Buffer.concat(attrs);
}

export function neighbourFilter(family?: IpFamily): Buffer {
  const hdr = Buffer.alloc(SIZEOF.ndmsg);
  if (family) hdr.writeUInt8(afOf(family), 0);
  return hdr;
}

export function decodeNeighbour(data: Buffer): Neighbour {
  const a = parseAttrs(data, SIZEOF.ndmsg);
  const state = data.readUInt16LE(8);
  const dst = a.get(NDA.DST);
  const ll = a.get(NDA.LLADDR);
  const n: Neighbour = {
    family: familyOfAf(data.readUInt8(0)),
    index: data.readInt32LE(4),
    address: dst ? formatIp(dst) : '',
    state,
    permanent: (state & NUD.permanent) !== 0,
  };
  if (ll && ll.length === 6) n.lladdr = formatMac(ll);
  return n;
}

// ---------- policy rules ----------

export interface RuleSpec {
  /** Default: from `from`/`to`, else IPv4. */
  family?: IpFamily;
  priority?: number;
  from?: string;
  to?: string;
  table: number;
  /** Input interface name (`iif`); "lo" matches locally generated traffic. */
  iif?: string;
  oif?: string;
  fwmark?: number;
  fwmask?: number;
  /** `ip rule add not ...` */
  invert?: boolean;
}

export interface Rule {
  family: IpFamily;
  priority?: number;
  from?: string;
  to?: string;
  table: number;
  iif?: string;
  oif?: string;
  fwmark?: number;
  fwmask?: number;
  invert: boolean;
  /** FR_ACT_*: 1 = lookup (to table). */
  action: number;
}

export function encodeRule(spec: RuleSpec): Buffer {
  const from = spec.from ? parsePrefix(spec.from) : undefined;
  const to = spec.to ? parsePrefix(spec.to) : undefined;
  const families = new Set([from?.family, to?.family, spec.family].filter((f): f is IpFamily => !!f));
  if (families.size > 1) throw NetlinkError.invalid(`rule mixes IPv4 and IPv6: ${JSON.stringify(spec)}`);
  const family = [...families][0] ?? 4;
  const table = checkTable(spec.table);
  const hdr = Buffer.alloc(SIZEOF.fib_rule_hdr);
  hdr.writeUInt8(afOf(family), 0);
  hdr.writeUInt8(to?.prefixLength ?? 0, 1);
  hdr.writeUInt8(from?.prefixLength ?? 0, 2);
  hdr.writeUInt8(table < 256 ? table : RT_TABLE.unspec, 4);
  hdr.writeUInt8(FR_ACT_TO_TBL, 7);
  hdr.writeUInt32LE(spec.invert ? FIB_RULE_INVERT : 0, 8);
  const attrs = [hdr, u32Attr(FRA.TABLE, table)];
  if (spec.priority !== undefined) attrs.push(u32Attr(FRA.PRIORITY, spec.priority));
  if (from) attrs.push(attr(FRA.SRC, from.bytes));
  if (to) attrs.push(attr(FRA.DST, to.bytes));
  if (spec.iif) attrs.push(strAttr(FRA.IIFNAME, spec.iif));
  if (spec.oif) attrs.push(strAttr(FRA.OIFNAME, spec.oif));
  if (spec.fwmark !== undefined) attrs.push(u32Attr(FRA.FWMARK, spec.fwmark));
  if (spec.fwmask !== undefined) attrs.push(u32Attr(FRA.FWMASK, spec.fwmask));
  return Buffer.concat(attrs);
}

export function ruleFilter(family: IpFamily): Buffer {
  const hdr = Buffer.alloc(SIZEOF.fib_rule_hdr);
  hdr.writeUInt8(afOf(family), 0);
  return hdr;
}

export function decodeRule(data: Buffer): Rule {
  const a = parseAttrs(data, SIZEOF.fib_rule_hdr);
  const rule: Rule = {
    family: familyOfAf(data.readUInt8(0)),
    table: readU32(a.get(FRA.TABLE)) ?? data.readUInt8(4),
    invert: (data.readUInt32LE(8) & FIB_RULE_INVERT) !== 0,
    action: data.readUInt8(7),
  };
  const priority = readU32(a.get(FRA.PRIORITY));
  if (priority !== undefined) rule.priority = priority;
  const src = a.get(FRA.SRC);
  if (src) rule.from = `${formatIp(src)}/${data.readUInt8(2)}`;
  const dst = a.get(FRA.DST);
  if (dst) rule.to = `${formatIp(dst)}/${data.readUInt8(1)}`;
  const iif = readStr(a.get(FRA.IIFNAME));
  if (iif) rule.iif = iif;
  const oif = readStr(a.get(FRA.OIFNAME));
  if (oif) rule.oif = oif;
  const fwmark = readU32(a.get(FRA.FWMARK));
  if (fwmark !== undefined) rule.fwmark = fwmark;
  const fwmask = readU32(a.get(FRA.FWMASK));
  if (fwmask !== undefined) rule.fwmask = fwmask;
  return rule;
}
