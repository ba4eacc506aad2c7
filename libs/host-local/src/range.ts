/**
 * Ranges and range sets with the reference host-local's rules: a range lives in a subnet of at
 * least 4 addresses written as its network address; rangeStart defaults to network+1, rangeEnd
 * to the last address (minus the broadcast for IPv4), the gateway to network+1; the ranges of a
 * set share one family and do not overlap.
 */
import {
  bitsOf,
  compareIp,
  formatCidr,
  formatIp,
  ipEquals,
  lastOf,
  networkOf,
  offsetIp,
  parseCidr,
  parseIp,
  type Cidr,
  type Ip,
  type IpFamily,
} from './ip';

/** A range as written in the config (`ranges[i][j]`, or the legacy top-level keys). */
export interface RangeConf {
  subnet: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
}

/** Invalid range input; the config layer turns it into a CNI error with the range set index. */
export class RangeConfigError extends Error {
  constructor(
    message: string,
    /** 2 for an unknown key (spec: unsupported field), 7 otherwise. */
    readonly cniCode: number = 7,
  ) {
    super(message);
    this.name = 'RangeConfigError';
  }
}

const RANGE_KEYS = new Set(['subnet', 'rangeStart', 'rangeEnd', 'gateway']);

export class IpRange {
  readonly family: IpFamily;

  private constructor(
    readonly subnet: Cidr,
    readonly rangeStart: Ip,
    readonly rangeEnd: Ip,
    readonly gateway: Ip,
  ) {
    this.family = subnet.ip.family;
  }

  /** Validates and fills in defaults, in the reference's order and with its messages. */
  static parse(raw: unknown): IpRange {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw new RangeConfigError('a range must be an object');
    const conf = raw as Record<string, unknown>;
    for (const key of Object.keys(conf)) {
      if (!RANGE_KEYS.has(key))
        throw new RangeConfigError(`unsupported field "${key}" in range: ${JSON.stringify(conf[key])}`, 2);
    }
    const text = (key: string): string | undefined => {
      const v = conf[key];
      if (v === undefined || v === null || v === '') return undefined;
      if (typeof v !== 'string')
        throw new RangeConfigError(`${key} must be a string, got ${JSON.stringify(v)}`);
      return v;
    };
    const address = (key: string): Ip | undefined => {
      const s = text(key);
      if (s === undefined) return undefined;
      const ip = parseIp(s);
      if (!ip) throw new RangeConfigError(`invalid ${key} ${JSON.stringify(s)}: not an IP address`);
      return ip;
    };

    const subnetText = text('subnet');
    if (subnetText === undefined) throw new RangeConfigError('subnet is missing');
    const subnet = parseCidr(subnetText);
    if (!subnet) throw new RangeConfigError(`invalid CIDR address: ${subnetText}`);
    const bits = bitsOf(subnet.ip.family);
    // No allocator for a network without host addresses, e.g. a /32 or /31.
    if (subnet.prefix > bits - 2)
      throw new RangeConfigError(`Network ${subnetText} too small to allocate from`);
    const network = networkOf(subnet);
    if (!ipEquals(network, subnet.ip)) {
      throw new RangeConfigError(
        `Network has host bits set. For a subnet mask of length ${subnet.prefix} the network address is ${formatIp(network)}`,
      );
    }
    const subnetString = formatCidr(subnet);
    const requireFamily = (key: string, ip: Ip | undefined): void => {
      if (ip && ip.family !== subnet.ip.family) {
        throw new RangeConfigError(
          `${key} ${formatIp(ip)} is not an IPv${subnet.ip.family} address like subnet ${subnetString}`,
        );
      }
    };

    const gateway = address('gateway') ?? offsetIp(network, 1n);
    requireFamily('gateway', gateway);
    const start = address('rangeStart');
    const end = address('rangeEnd');
    requireFamily('rangeStart', start);
    requireFamily('rangeEnd', end);
    const inSubnet = (ip: Ip): boolean => ipEquals(networkOf({ ip, prefix: subnet.prefix }), network);
    // As in the reference, each bound is checked against the subnet and against the other bound.
    if (start && (!inSubnet(start) || (end && compareIp(start, end) > 0))) {
      throw new RangeConfigError(`RangeStart ${formatIp(start)} not in network ${subnetString}`);
    }
    if (end && (!inSubnet(end) || (start && compareIp(end, start) < 0))) {
      throw new RangeConfigError(`RangeEnd ${formatIp(end)} not in network ${subnetString}`);
    }
    const last = lastOf(subnet);
    const defaultEnd = subnet.ip.family === 4 ? offsetIp(last, -1n) : last;
    return new IpRange(subnet, start ?? offsetIp(network, 1n), end ?? defaultEnd, gateway);
  }

  get network(): Ip {
    return this.subnet.ip;
  }

  get prefix(): number {
    return this.subnet.prefix;
  }

  /** In the subnet and between rangeStart and rangeEnd (inclusive). */
  contains(ip: Ip): boolean {
    return (
      ip.family === this.family && compareIp(ip, this.rangeStart) >= 0 && compareIp(ip, this.rangeEnd) <= 0
    );
  }

  /** Never handed out: the gateway, the network address and the IPv4 broadcast address. */
  isReserved(ip: Ip): boolean {
    if (ipEquals(ip, this.gateway) || ipEquals(ip, this.network)) return true;
    return this.family === 4 && ipEquals(ip, lastOf(this.subnet));
  }

  /** Addresses this range can hand out. */
  capacity(): bigint {
    let n = this.rangeEnd.value - this.rangeStart.value + 1n;
    const reserved = [this.gateway, this.network, ...(this.family === 4 ? [lastOf(this.subnet)] : [])];
    const distinct = reserved.filter((ip, i) => reserved.findIndex((o) => ipEquals(o, ip)) === i);
    for (const ip of distinct) if (this.contains(ip)) n -= 1n;
    return n;
  }

  overlaps(other: IpRange): boolean {
    if (this.family !== other.family) return false;
    return (
      this.contains(other.rangeStart) ||
      this.contains(other.rangeEnd) ||
      other.contains(this.rangeStart) ||
      other.contains(this.rangeEnd)
    );
  }

  subnetString(): string {
    return formatCidr(this.subnet);
  }

  toString(): string {
    return `${formatIp(this.rangeStart)}-${formatIp(this.rangeEnd)}`;
  }
}

/** One entry of `ranges`: one address is handed out per set, from any of its ranges. */
export class RangeSet {
  private constructor(readonly ranges: readonly IpRange[]) {}

  static parse(raw: unknown): RangeSet {
    if (!Array.isArray(raw)) throw new RangeConfigError('a range set must be an array of ranges');
    if (raw.length === 0) throw new RangeConfigError('empty range set');
    const ranges = raw.map((r) => IpRange.parse(r));
    if (ranges.some((r) => r.family !== ranges[0]!.family))
      throw new RangeConfigError('mixed address families');
    for (let i = 0; i < ranges.length; i++) {
      for (let j = i + 1; j < ranges.length; j++) {
        if (ranges[i]!.overlaps(ranges[j]!)) {
          throw new RangeConfigError(`subnets ${ranges[i]!.toString()} and ${ranges[j]!.toString()} overlap`);
        }
      }
    }
    return new RangeSet(ranges);
  }

  get family(): IpFamily {
    return this.ranges[0]!.family;
  }

  rangeFor(ip: Ip): IpRange | undefined {
    return this.ranges.find((r) => r.contains(ip));
  }

  contains(ip: Ip): boolean {
    return this.rangeFor(ip) !== undefined;
  }

  overlaps(other: RangeSet): boolean {
    return this.ranges.some((r) => other.ranges.some((o) => r.overlaps(o)));
  }

  toString(): string {
    return this.ranges.map((r) => r.toString()).join(',');
  }

  /**
   * Every allocatable address once, in the reference's round-robin order: from the address after
   * `lastReserved` (wrapping over the ranges, ending with `lastReserved` itself) when the set
   * contains it, otherwise from the first range's rangeStart. Reserved addresses are skipped.
   */
  *candidates(lastReserved?: Ip): Generator<{ ip: Ip; range: IpRange }> {
    const ranges = this.ranges;
    let index = 0;
    let cursor: Ip | undefined;
    const startRange = lastReserved ? ranges.findIndex((r) => r.contains(lastReserved)) : -1;
    if (startRange >= 0) {
      index = startRange;
      cursor = lastReserved;
    }
    const advance = (): void => {
      const range = ranges[index]!;
      if (cursor === undefined) {
        cursor = range.rangeStart;
      } else if (ipEquals(cursor, range.rangeEnd)) {
        index = (index + 1) % ranges.length;
        cursor = ranges[index]!.rangeStart;
      } else {
        cursor = offsetIp(cursor, 1n);
      }
    };
    advance();
    const first = cursor!;
    for (;;) {
      const range = ranges[index]!;
      if (!range.isReserved(cursor!)) yield { ip: cursor!, range };
      advance();
      if (ipEquals(cursor!, first)) return;
    }
  }
}
