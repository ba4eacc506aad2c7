/**
 * Addresses as (family, bigint) pairs, parsed and printed by the `ip-address` package. Printing
 * matches Go's net.IP.String() (dotted quad; RFC 5952 for IPv6), which matters because the
 * reference plugin names its files by that string: both plugins must spell an address alike.
 */
import { Address4, Address6 } from 'ip-address';

export type IpFamily = 4 | 6;

export interface Ip {
  readonly family: IpFamily;
  readonly value: bigint;
}

export interface Cidr {
  /** The address as written (host bits kept, as Go's types.IPNet keeps them). */
  readonly ip: Ip;
  readonly prefix: number;
}

const V4_TEXT = /^[0-9.]+$/;
const V6_TEXT = /^[0-9a-fA-F:.]+$/;

export function bitsOf(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

/**
 * A bare address, or undefined. IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4 like Go's To4();
 * zones, prefixes and leading zeros are refused like Go's net.ParseIP.
 */
export function parseIp(text: string): Ip | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > 45) return undefined;
  try {
    if (V4_TEXT.test(text)) {
      if (!Address4.isValid(text)) return undefined;
      return { family: 4, value: new Address4(text).bigInt() };
    }
    if (!V6_TEXT.test(text) || !Address6.isValid(text)) return undefined;
    const v6 = new Address6(text);
    const value = v6.bigInt();
    if (value >> 32n === 0xffffn) return { family: 4, value: value & 0xffffffffn };
    return { family: 6, value };
  } catch {
    return undefined;
  }
}

/** "addr/prefix", or undefined. The address keeps its host bits. */
export function parseCidr(text: string): Cidr | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const addressText = text.slice(0, slash);
  const ip = parseIp(addressText);
  if (!ip) return undefined;
  // An IPv4-mapped IPv6 network keeps its IPv6 prefix length: refuse rather than guess.
  if (ip.family === 4 && !V4_TEXT.test(addressText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > bitsOf(ip.family)) return undefined;
  return { ip, prefix };
}

export function formatIp(ip: Ip): string {
  return ip.family === 4
    ? Address4.fromBigInt(ip.value).correctForm()
    : Address6.fromBigInt(ip.value).correctForm();
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.ip)}/${cidr.prefix}`;
}

export function ipEquals(a: Ip, b: Ip): boolean {
  return a.family === b.family && a.value === b.value;
}

/** Orders addresses of one family; IPv4 sorts before IPv6. */
export function compareIp(a: Ip, b: Ip): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

export function hostMask(family: IpFamily, prefix: number): bigint {
  return (1n << BigInt(bitsOf(family) - prefix)) - 1n;
}

export function networkOf(cidr: Cidr): Ip {
  return { family: cidr.ip.family, value: cidr.ip.value & ~hostMask(cidr.ip.family, cidr.prefix) };
}

/** The last address of the subnet (the IPv4 broadcast address). */
export function lastOf(cidr: Cidr): Ip {
  return { family: cidr.ip.family, value: networkOf(cidr).value | hostMask(cidr.ip.family, cidr.prefix) };
}

export function offsetIp(ip: Ip, delta: bigint): Ip {
  return { family: ip.family, value: ip.value + delta };
}
