/**
 * Minimal IPv4/IPv6 address and prefix arithmetic. Addresses are bigints so that both families
 * share one code path; prefixes are always stored masked (host bits cleared), which is how
 * Kubernetes treats `10.0.1.5/24` in an ipBlock.
 */
export type IpFamily = 4 | 6;

export interface IpAddress {
  family: IpFamily;
  value: bigint;
}

export interface Cidr {
  family: IpFamily;
  /** Network address, host bits cleared. */
  value: bigint;
  bits: number;
}

const WIDTH: Record<IpFamily, number> = { 4: 32, 6: 128 };

export function familyWidth(family: IpFamily): number {
  return WIDTH[family];
}

function parseIpv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    // Leading zeros are refused: some parsers read them as octal.
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = (value << 8n) | BigInt(octet);
  }
  return value;
}

function parseIpv6(text: string): bigint | undefined {
  if (text.includes('%')) return undefined; // zone ids have no meaning in policy
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const toGroups = (half: string): number[] | undefined => {
    if (half === '') return [];
    const out: number[] = [];
    const pieces = half.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIpv4(piece);
        if (v4 === undefined) return undefined;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return undefined;
      out.push(parseInt(piece, 16));
    }
    return out;
  };
  const head = toGroups(halves[0]!);
  const tail = halves.length === 2 ? toGroups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  // A dotted quad may only end the address.
  if (halves.length === 2 && halves[0]!.includes('.')) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const groups = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return value;
}

export function parseIp(text: string): IpAddress | undefined {
  if (typeof text !== 'string') return undefined;
  if (text.includes(':')) {
    const value = parseIpv6(text);
    return value === undefined ? undefined : { family: 6, value };
  }
  const value = parseIpv4(text);
  return value === undefined ? undefined : { family: 4, value };
}

function mask(family: IpFamily, bits: number): bigint {
  const width = BigInt(WIDTH[family]);
  const all = (1n << width) - 1n;
  return bits === 0 ? 0n : (all >> (width - BigInt(bits))) << (width - BigInt(bits));
}

/** Parses `addr/bits`; a bare address is a host prefix. Host bits are cleared. */
export function parseCidr(text: string): Cidr | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  const addr = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!addr) return undefined;
  const width = WIDTH[addr.family];
  let bits = width;
  if (slash >= 0) {
    const b = text.slice(slash + 1);
    if (!/^(0|[1-9]\d{0,2})$/.test(b)) return undefined;
    bits = Number(b);
    if (bits > width) return undefined;
  }
  return { family: addr.family, value: addr.value & mask(addr.family, bits), bits };
}

export function formatIp(addr: IpAddress): string {
  if (addr.family === 4) {
    const v = addr.value;
    return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((addr.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr)}/${cidr.bits}`;
}

/** Canonical text of an address (`undefined` when it is not one). */
export function canonicalIp(text: string): string | undefined {
  const addr = parseIp(text);
  return addr && formatIp(addr);
}

export function hostCidr(addr: IpAddress): Cidr {
  return { family: addr.family, value: addr.value, bits: WIDTH[addr.family] };
}

export function cidrContainsIp(cidr: Cidr, addr: IpAddress): boolean {
  return cidr.family === addr.family && (addr.value & mask(cidr.family, cidr.bits)) === cidr.value;
}

/** `outer` contains `inner` (or equals it). */
export function cidrContainsCidr(outer: Cidr, inner: Cidr): boolean {
  return (
    outer.family === inner.family &&
    outer.bits <= inner.bits &&
    (inner.value & mask(outer.family, outer.bits)) === outer.value
  );
}
