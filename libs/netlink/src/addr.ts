import { NetlinkError } from './errors';

// Text <-> wire forms of IP addresses, prefixes and MACs, without a dependency.

export type IpFamily = 4 | 6;

export interface IpAddr {
  family: IpFamily;
  bytes: Buffer;
}

export interface IpPrefix extends IpAddr {
  prefixLength: number;
}

function invalid(what: string, value: string): NetlinkError {
  return NetlinkError.invalid(`invalid ${what} ${JSON.stringify(value)}`);
}

// Hand-written rather than net.isIPv6: Node's validating regex costs ~3 ms to compile on first
// use, a noticeable share of a CNI invocation.
function parseIPv4(text: string): Buffer | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = Buffer.alloc(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
    bytes[i] = Number(p);
  }
  return bytes;
}

function parseIPv6(text: string): Buffer | undefined {
  if (text.length > 45) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups: number[][] = [];
  for (const half of halves) {
    const out: number[] = [];
    const parts = half === '' ? [] : half.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes('.') && half === halves[halves.length - 1]) {
        const v4 = parseIPv4(p); // embedded IPv4 (::ffff:1.2.3.4) only as the last group
        if (!v4) return undefined;
        out.push(v4.readUInt16BE(0), v4.readUInt16BE(2));
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
        out.push(parseInt(p, 16));
      } else {
        return undefined;
      }
    }
    groups.push(out);
  }
  const [left = [], right] = groups;
  const count = left.length + (right?.length ?? 0);
  if (right === undefined ? count !== 8 : count > 7) return undefined;
  const all = right === undefined ? left : [...left, ...new Array<number>(8 - count).fill(0), ...right];
  const bytes = Buffer.alloc(16);
  all.forEach((g, i) => bytes.writeUInt16BE(g, i * 2));
  return bytes;
}

export function parseIp(text: string): IpAddr {
  const v4 = typeof text === 'string' && !text.includes(':') ? parseIPv4(text) : undefined;
  if (v4) return { family: 4, bytes: v4 };
  const v6 = typeof text === 'string' && text.includes(':') ? parseIPv6(text) : undefined;
  if (v6) return { family: 6, bytes: v6 };
  throw invalid('IP address', text);
}

export function formatIp(bytes: Buffer): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw NetlinkError.invalid(`address of ${bytes.length} bytes`);
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${Array.from(bytes.subarray(12)).join('.')}`;
  }
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** "10.0.0.1/24", "fd00::1/64"; a bare address is a host prefix (/32, /128). */
export function parsePrefix(text: string): IpPrefix {
  const slash = text.indexOf('/');
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  const max = ip.family === 4 ? 32 : 128;
  if (slash < 0) return { ...ip, prefixLength: max };
  const lenText = text.slice(slash + 1);
  const prefixLength = Number(lenText);
  if (!/^\d{1,3}$/.test(lenText) || prefixLength > max) throw invalid('prefix', text);
  return { ...ip, prefixLength };
}

export function familyOf(text: string): IpFamily {
  return parsePrefix(text).family;
}

export function parseMac(text: string): Buffer {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) throw invalid('MAC address', text);
  return Buffer.from(text.replaceAll(':', ''), 'hex');
}

export function formatMac(bytes: Buffer): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The IPv4 broadcast address of a prefix (what `ip addr add ... brd +` computes). */
export function ipv4Broadcast(p: IpPrefix): Buffer {
  const host = p.prefixLength === 0 ? 0xffffffff : (1 << (32 - p.prefixLength)) - 1;
  const out = Buffer.alloc(4);
  out.writeUInt32BE((p.bytes.readUInt32BE(0) | host) >>> 0);
  return out;
}
