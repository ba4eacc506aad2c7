import { randomBytes } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { describe, expect, it } from 'vitest';
import { parseAttrs, readStr, readU32 } from './attrs';
import { IFLA, IFLA_INFO, RTA, RTNH_F_ONLINK, SIZEOF, VETH_INFO_PEER } from './constants';
import { encodeAddress, encodeRoute, encodeRule, decodeRule, decodeRoute } from './ip-codec';
import {
  assertLinkName,
  decodeLink,
  encodeIpvlan,
  encodeMacvlan,
  encodeVeth,
  formatIp,
  parseIp,
  parsePrefix,
  NetlinkError,
} from './index';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('IP text forms', () => {
  it('round-trips IPv4 and IPv6 in canonical (RFC 5952) form', () => {
    for (const [input, canonical] of [
      ['10.1.2.3', '10.1.2.3'],
      ['169.254.1.1', '169.254.1.1'],
      ['fe80::1', 'fe80::1'],
      ['::', '::'],
      ['::1', '::1'],
      ['FD00:0:0:1:0:0:0:5', 'fd00:0:0:1::5'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
      ['::ffff:1.2.3.4', '::ffff:1.2.3.4'],
      ['64:ff9b::10.0.0.1', '64:ff9b::a00:1'],
      ['1::', '1::'],
      ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
      ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ]) {
      expect(formatIp(parseIp(input!).bytes), input).toBe(canonical);
    }
  });
  it('agrees with the WHATWG URL parser on random IPv6 addresses (with zero runs)', () => {
    for (let i = 0; i < 500; i++) {
      const bytes = randomBytes(16);
      for (let g = 0; g < 8; g++) if (Math.random() < 0.4) bytes.writeUInt16BE(0, g * 2);
      if (bytes.subarray(0, 10).every((b) => b === 0) && bytes.readUInt16BE(10) === 0xffff) continue; // URL prints mapped v4 as hex
      const text = formatIp(bytes);
      expect(`[${text}]`).toBe(new URL(`http://[${text}]`).hostname);
      expect(parseIp(text).bytes).toEqual(bytes);
      expect(isIPv6(text)).toBe(true);
    }
  });

  it('parses prefixes, bare addresses being host prefixes', () => {
    expect(parsePrefix('10.0.0.0/8')).toMatchObject({ family: 4, prefixLength: 8 });
    expect(parsePrefix('fd00::1')).toMatchObject({ family: 6, prefixLength: 128 });
  });
  it('refuses malformed input with EINVAL', () => {
    for (const bad of [
      '1.2.3',
      '256.1.1.1',
      '01.2.3.4',
      '1.2.3.4.5',
      'fe80::1%eth0',
      '1:2:3:4:5:6:7:8:9',
      '1::2::3',
      '1:2:3:4:5:6:7::8',
      '12345::1',
      ':1::2',
      '::1.2.3.4:5',
      'g::1',
      '10.0.0.0/33',
      'fd00::/129',
      '10.0.0.0/',
      '10.0.0.0/-1',
      'x',
      '',
    ]) {
      expect(() => parsePrefix(bad), bad).toThrow(NetlinkError);
    }
  });
});

describe('link encoders', () => {
  it('encodes ipvlan IFLA_LINKINFO exactly as iproute2 does', () => {
    const payload = encodeIpvlan({ name: 'wnipv', master: 1613, mode: 'l3', flags: 'private' });
    const attrs = parseAttrs(payload, SIZEOF.ifinfomsg);
    expect(readU32(attrs.get(IFLA.LINK))).toBe(1613);
    expect(readStr(attrs.get(IFLA.IFNAME))).toBe('wnipv');
    // Captured with strace from `ip link add wnipv link <1613> type ipvlan mode l3 private` (iproute2 6.1).
    const linkinfo = payload.subarray(payload.length - 36);
    expect(linkinfo).toEqual(
      hex('24001200 0a000100 6970766c 616e0000 14000200 06000100 01000000 06000200 01000000'),
    );
  });

  it('encodes every ipvlan mode and flag, and refuses unknown ones', () => {
    const data = (mode: 'l2' | 'l3' | 'l3s', flags: 'bridge' | 'private' | 'vepa') =>
      parseAttrs(
        parseAttrs(
          parseAttrs(encodeIpvlan({ name: 'x', master: 2, mode, flags }), 16).get(IFLA.LINKINFO)!,
        ).get(IFLA_INFO.DATA)!,
      );
    expect(data('l2', 'bridge').get(1)!.readUInt16LE(0)).toBe(0);
    expect(data('l3s', 'vepa').get(1)!.readUInt16LE(0)).toBe(2);
    expect(data('l3s', 'vepa').get(2)!.readUInt16LE(0)).toBe(2);
    expect(() => encodeIpvlan({ name: 'x', master: 2, mode: 'l4' as 'l2' })).toThrow(/ipvlan mode/);
    expect(() => encodeMacvlan({ name: 'x', master: 2, mode: 'bogus' as 'bridge' })).toThrow(/macvlan mode/);
  });

  it('nests the veth peer as an ifinfomsg with its own name, MAC, MTU and netns fd', () => {
    const payload = encodeVeth(
      { name: 'wnh0', mtu: 1400, mac: '02:00:00:00:00:01' },
      { name: 'eth0', mtu: 1400, mac: '02:00:00:00:00:02', netnsFd: 42 },
    );
    const top = parseAttrs(payload, SIZEOF.ifinfomsg);
    expect(readStr(top.get(IFLA.IFNAME))).toBe('wnh0');
    expect(readU32(top.get(IFLA.MTU))).toBe(1400);
    const info = parseAttrs(top.get(IFLA.LINKINFO)!);
    expect(info.get(IFLA_INFO.KIND)!.toString()).toBe('veth');
    const peer = parseAttrs(info.get(IFLA_INFO.DATA)!).get(VETH_INFO_PEER)!;
    expect(peer.subarray(0, SIZEOF.ifinfomsg)).toEqual(Buffer.alloc(SIZEOF.ifinfomsg));
    const peerAttrs = parseAttrs(peer, SIZEOF.ifinfomsg);
    expect(readStr(peerAttrs.get(IFLA.IFNAME))).toBe('eth0');
    expect(readU32(peerAttrs.get(IFLA.NET_NS_FD))).toBe(42);
    expect(peerAttrs.get(IFLA.ADDRESS)).toEqual(hex('020000000002'));
    // The peer's own attributes do not leak onto the host side.
    expect(top.has(IFLA.NET_NS_FD)).toBe(false);
  });

  it('refuses hostile link names, MACs and MTUs before anything is sent', () => {
    for (const bad of ['', '.', '..', 'a/b', 'a:b', 'a b', 'x'.repeat(16), 'eth0\n', 'é'.repeat(8)]) {
      expect(() => assertLinkName(bad), JSON.stringify(bad)).toThrow(
        expect.objectContaining({ code: 'EINVAL', errno: -22 }),
      );
    }
    expect(() => encodeVeth({ name: 'a', mac: '02:00:00:00:00' }, { name: 'b' })).toThrow(/MAC/);
    expect(() => encodeVeth({ name: 'a', mtu: 20 }, { name: 'b' })).toThrow(/MTU/);
  });

  it('decodes what it encodes (name, MTU, MAC, kind)', () => {
    const link = decodeLink(
      encodeMacvlan({ name: 'wnmv', master: 7, mode: 'bridge', mtu: 1450, mac: '02:aa:bb:cc:dd:ee' }),
    );
    expect(link).toMatchObject({
      name: 'wnmv',
      mtu: 1450,
      mac: '02:aa:bb:cc:dd:ee',
      kind: 'macvlan',
      linkIndex: 7,
      macvlan: { mode: 'bridge' },
    });
  });
});

describe('address, route and rule encoders', () => {
  it('sets IPv4 broadcast and IPv6 nodad like ip(8)', () => {
    const v4 = parseAttrs(encodeAddress(3, '10.0.0.5/24'), SIZEOF.ifaddrmsg);
    expect(formatIp(v4.get(4 /* IFA_BROADCAST */)!)).toBe('10.0.0.255');
    const v6 = encodeAddress(3, 'fd00::5/64', { nodad: true });
    expect(v6.readUInt8(2) & 0x02).toBe(0x02);
    expect(readU32(parseAttrs(v6, SIZEOF.ifaddrmsg).get(8 /* IFA_FLAGS */))).toBe(0x02);
  });

  it('encodes onlink default routes and big table ids', () => {
    const r = encodeRoute({ dst: 'default', gateway: '169.254.1.1', onlink: true, table: 1000 }, 5, false);
    expect(r.readUInt8(4)).toBe(0); // RT_TABLE_UNSPEC in the header, the real id in RTA_TABLE
    expect(r.readUInt32LE(8) & RTNH_F_ONLINK).toBe(RTNH_F_ONLINK);
    expect(readU32(parseAttrs(r, SIZEOF.rtmsg).get(RTA.TABLE))).toBe(1000);
    expect(decodeRoute(r)).toMatchObject({
      family: 4,
      dst: 'default',
      gateway: '169.254.1.1',
      oif: 5,
      table: 1000,
      onlink: true,
      scope: 0,
    });
    // Without a gateway the route is link-scoped, as `ip route add` makes it.
    expect(decodeRoute(encodeRoute({ dst: '169.254.1.1', dev: 5 }, 5, false)).scope).toBe(253);
    expect(() => encodeRoute({ dst: 'default' }, 5, false)).toThrow(/needs a family/);
    expect(() => encodeRoute({ dst: '10.0.0.0/8', gateway: 'fe80::1' }, 5, false)).toThrow(/mixes/);
  });

  it('encodes policy rules both ways', () => {
    const rule = decodeRule(
      encodeRule({
        priority: 2000,
        from: '10.99.0.5/32',
        table: 1001,
        iif: 'eth1',
        fwmark: 0x200,
        fwmask: 0xf00,
      }),
    );
    expect(rule).toEqual({
      family: 4,
      priority: 2000,
      from: '10.99.0.5/32',
      table: 1001,
      iif: 'eth1',
      fwmark: 0x200,
      fwmask: 0xf00,
      invert: false,
      action: 1,
    });
    expect(decodeRule(encodeRule({ to: 'fd00::/64', table: 254, invert: true }))).toMatchObject({
      family: 6,
      to: 'fd00::/64',
      invert: true,
    });
  });
});
