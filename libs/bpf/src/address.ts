import { isIPv4, isIPv6 } from 'node:net';
import { WEFT_AF } from './enums';

/** An address as the maps store it: 16 bytes in network order, IPv4 in the first 4. */
export interface MapAddress {
  family: typeof WEFT_AF.INET | typeof WEFT_AF.INET6;
  addr: Buffer;
}

export class AddressError extends Error {
  readonly code = 'EINVAL_ADDRESS';
  constructor(message: string) {
    super(message);
    this.name = 'AddressError';
  }
}

export function encodeAddress(ip: string): MapAddress {
  const addr = Buffer.alloc(16);
  if (isIPv4(ip)) {
    ip.split('.').forEach((octet, i) => addr.writeUInt8(Number(octet), i));
    return { family: WEFT_AF.INET, addr };
  }
  if (!isIPv6(ip)) throw new AddressError(`not an IP address: ${JSON.stringify(ip)}`);
  let text = ip.split('%')[0] ?? '';
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two hex groups.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad?.[1]) {
    const b = quad[1].split('.').map(Number) as [number, number, number, number];
    text =
      text.slice(0, -quad[1].length) +
      `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? 0 : 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(zeros).fill('0'), ...tailGroups];
  groups.forEach((g, i) => addr.writeUInt16BE(parseInt(g, 16), i * 2));
  return { family: WEFT_AF.INET6, addr };
}

export function decodeAddress(family: number, addr: Buffer): string {
  if (family === WEFT_AF.INET) return [...addr.subarray(0, 4)].join('.');
  if (family !== WEFT_AF.INET6) return `family${family}:${addr.toString('hex')}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(addr.readUInt16BE(i));
  // RFC 5952: compress the longest run (≥ 2) of zero groups.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export interface ParsedCidr extends MapAddress {
  prefixLength: number;
  /** Normalised text, host bits cleared. */
  cidr: string;
}

/** "10.0.0.0/8", "fd00::/64", or a bare address (a host prefix). */
export function parseCidr(cidr: string): ParsedCidr {
  const [ip = '', lenText, extra] = cidr.split('/');
  if (extra !== undefined) throw new AddressError(`bad CIDR: ${JSON.stringify(cidr)}`);
  const { family, addr } = encodeAddress(ip);
  const max = family === WEFT_AF.INET ? 32 : 128;
  const prefixLength = lenText === undefined ? max : Number(lenText);
  if (!/^\d{1,3}$/.test(lenText ?? String(max)) || prefixLength > max)
    throw new AddressError(`bad prefix length in ${JSON.stringify(cidr)}`);
  for (let bit = prefixLength; bit < max; bit++) addr[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { family, addr, prefixLength, cidr: `${decodeAddress(family, addr)}/${prefixLength}` };
}
