import { describe, expect, it } from 'vitest';
import { formatIp, parseCidr, parseIp, type Ip } from './ip';
import { IpRange, RangeConfigError, RangeSet } from './range';

const ip = (s: string): Ip => parseIp(s)!;
const all = (set: RangeSet, last?: string): string[] =>
  [...set.candidates(last ? ip(last) : undefined)].map((c) => formatIp(c.ip));

describe('ip parsing and printing', () => {
  it('prints addresses the way Go net.IP.String() does (the file names of the store)', () => {
    expect(formatIp(ip('10.1.2.3'))).toBe('10.1.2.3');
    expect(formatIp(ip('2001:DB8:0:0:1:0:0:1'))).toBe('2001:db8::1:0:0:1');
    expect(formatIp(ip('3ffe:ffff:0:01ff::0010'))).toBe('3ffe:ffff:0:1ff::10');
    expect(formatIp(ip('::ffff:10.0.0.1'))).toBe('10.0.0.1');
  });

  it('refuses what Go refuses', () => {
    for (const bad of [
      '',
      '10.0.0',
      '10.0.0.256',
      '010.0.0.1',
      'fe80::1%eth0',
      '10.0.0.1/24',
      ' 10.0.0.1',
      '1:2:3:4:5:6:7:8:9',
    ]) {
      expect(parseIp(bad), bad).toBeUndefined();
    }
    for (const bad of ['10.0.0.0', '10.0.0.0/33', '10.0.0.0/a', '::/129', 'x/24'])
      expect(parseCidr(bad), bad).toBeUndefined();
  });
});

describe('IpRange.parse', () => {
  it('fills in the defaults: .1 to .254 with gateway .1 for a /24', () => {
    const r = IpRange.parse({ subnet: '10.9.0.0/24' });
    expect(formatIp(r.rangeStart)).toBe('10.9.0.1');
    expect(formatIp(r.rangeEnd)).toBe('10.9.0.254');
    expect(formatIp(r.gateway)).toBe('10.9.0.1');
    expect(r.capacity()).toBe(253n);
  });

  it('ends an IPv6 range at the last address (there is no broadcast)', () => {
    const r = IpRange.parse({ subnet: 'fd00:9::/120' });
    expect(formatIp(r.rangeEnd)).toBe('fd00:9::ff');
    expect(r.capacity()).toBe(254n);
  });

  it.each([
    [{ subnet: '10.0.0.0/33' }, 'invalid CIDR address: 10.0.0.0/33'],
    [{ subnet: 'banana' }, 'invalid CIDR address: banana'],
    [{ subnet: '10.0.0.0/31' }, 'Network 10.0.0.0/31 too small to allocate from'],
    [
      { subnet: '10.0.0.5/24' },
      'Network has host bits set. For a subnet mask of length 24 the network address is 10.0.0.0',
    ],
    [{ subnet: '10.0.0.0/24', rangeStart: '10.0.1.5' }, 'RangeStart 10.0.1.5 not in network 10.0.0.0/24'],
    [{ subnet: '10.0.0.0/24', rangeEnd: '10.0.1.5' }, 'RangeEnd 10.0.1.5 not in network 10.0.0.0/24'],
    [
      { subnet: '10.0.0.0/24', rangeStart: '10.0.0.9', rangeEnd: '10.0.0.5' },
      'RangeStart 10.0.0.9 not in network 10.0.0.0/24',
    ],
    [
      { subnet: '10.0.0.0/24', gateway: 'fd00::1' },
      'gateway fd00::1 is not an IPv4 address like subnet 10.0.0.0/24',
    ],
    [
      { subnet: '10.0.0.0/24', rangeStart: '10.0.0.300' },
      'invalid rangeStart "10.0.0.300": not an IP address',
    ],
    [{ rangeStart: '10.0.0.3' }, 'subnet is missing'],
  ])('refuses %j', (conf, message) => {
    expect(() => IpRange.parse(conf)).toThrow(message);
  });

  it('refuses unknown keys in a range with code 2 (unsupported field)', () => {
    try {
      IpRange.parse({ subnet: '10.0.0.0/24', rangestart: '10.0.0.9' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(RangeConfigError);
      expect((err as RangeConfigError).cniCode).toBe(2);
      expect((err as Error).message).toContain('rangestart');
    }
  });
});

describe('RangeSet', () => {
  it('refuses an empty set, mixed families and overlapping ranges', () => {
    expect(() => RangeSet.parse([])).toThrow('empty range set');
    expect(() => RangeSet.parse([{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }])).toThrow(
      'mixed address families',
    );
    expect(() => RangeSet.parse([{ subnet: '10.0.0.0/16' }, { subnet: '10.0.5.0/24' }])).toThrow(
      'subnets 10.0.0.1-10.0.255.254 and 10.0.5.1-10.0.5.254 overlap',
    );
    // Same subnet, disjoint ranges: fine.
    expect(() =>
      RangeSet.parse([
        { subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.19' },
        { subnet: '10.0.0.0/24', rangeStart: '10.0.0.20', rangeEnd: '10.0.0.29' },
      ]),
    ).not.toThrow();
  });

  it('iterates from rangeStart, skipping the gateway, when there is no last reserved address', () => {
    const set = RangeSet.parse([{ subnet: '10.0.0.0/29' }]);
    expect(all(set)).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  });

  it('round-robins from the address after the last reserved one and ends with it', () => {
    const set = RangeSet.parse([{ subnet: '10.0.0.0/29' }]);
    expect(all(set, '10.0.0.4')).toEqual(['10.0.0.5', '10.0.0.6', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
  });

  it('ignores a last reserved address outside the set (the range changed)', () => {
    const set = RangeSet.parse([{ subnet: '10.0.0.0/29' }]);
    expect(all(set, '192.168.0.7')).toEqual(all(set));
  });

  it('walks over several ranges in order and wraps around', () => {
    const set = RangeSet.parse([
      { subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.11' },
      { subnet: '10.1.0.0/24', rangeStart: '10.1.0.1', rangeEnd: '10.1.0.3' },
    ]);
    expect(all(set)).toEqual(['10.0.0.10', '10.0.0.11', '10.1.0.2', '10.1.0.3']);
    expect(all(set, '10.0.0.11')).toEqual(['10.1.0.2', '10.1.0.3', '10.0.0.10', '10.0.0.11']);
  });

  it('never hands out the network or broadcast address, even when the range includes them', () => {
    const set = RangeSet.parse([
      { subnet: '10.0.0.0/30', rangeStart: '10.0.0.0', rangeEnd: '10.0.0.3', gateway: '10.0.0.2' },
    ]);
    expect(all(set)).toEqual(['10.0.0.1']);
    expect(set.ranges[0]!.capacity()).toBe(1n);
  });

  it('keeps an explicit gateway and skips it', () => {
    const set = RangeSet.parse([{ subnet: '10.0.0.0/29', gateway: '10.0.0.6' }]);
    expect(all(set)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5']);
  });
});
