import { describe, expect, it } from 'vitest';
import { decodeAddress, encodeAddress, parseCidr } from './address';
import { defineStruct } from './codec';
import { policyKey, weftEvent } from './structs';

describe('struct codecs', () => {
  it('writes big-endian fields big-endian and host fields little-endian', () => {
    const buf = policyKey.encode({
      prefixlen: 96,
      endpoint_id: 7,
      identity: 0x01020304,
      direction: 1,
      protocol: 6,
      dport_be16: 80,
    });
    expect(buf.toString('hex')).toBe('60000000' + '07000000' + '04030201' + '01' + '06' + '0050');
    expect(policyKey.decode(buf)).toEqual({
      prefixlen: 96,
      endpoint_id: 7,
      identity: 0x01020304,
      direction: 1,
      protocol: 6,
      dport_be16: 80,
    });
  });

  it('zeroes padding and unset fields, and round-trips u64 and byte arrays', () => {
    const s = defineStruct('t', 16, { a: [0, 'u64'], b: [8, { bytes: 4 }] } as const);
    const into = Buffer.alloc(16, 0xff);
    s.encode({ a: 5n, b: Buffer.from([1, 2]) }, into);
    expect(into.toString('hex')).toBe('0500000000000000' + '01020000' + '00000000');
    expect(s.decode(into).a).toBe(5n);
    expect(weftEvent.size).toBe(80);
  });

  it('rejects a field outside the struct', () => {
    expect(() => defineStruct('bad', 4, { x: [2, 'u32'] } as const)).toThrow(/outside/);
  });
});

describe('addresses', () => {
  it('encodes IPv4 in the first 4 bytes and IPv6 in all 16', () => {
    expect(encodeAddress('10.1.2.3').addr.toString('hex')).toBe('0a010203' + '00'.repeat(12));
    expect(encodeAddress('fd00::1').addr.toString('hex')).toBe('fd00' + '00'.repeat(13) + '01');
    expect(encodeAddress('::ffff:1.2.3.4').addr.toString('hex')).toBe('00'.repeat(10) + 'ffff01020304');
  });

  it('decodes to canonical text', () => {
    for (const ip of ['10.0.0.1', 'fd00::1', '::', '2001:db8:0:1::', 'fe80::1:0:0:2']) {
      const { family, addr } = encodeAddress(ip);
      expect(decodeAddress(family, addr)).toBe(ip);
    }
  });

  it('parses CIDRs, clearing host bits, and rejects nonsense', () => {
    expect(parseCidr('10.1.2.3/8').cidr).toBe('10.0.0.0/8');
    expect(parseCidr('fd00::1').prefixLength).toBe(128);
    expect(parseCidr('fd00:1:2::/33').cidr).toBe('fd00:1::/33');
    for (const bad of ['10.0.0.0/33', '10.0.0/8', 'x/1', '10.0.0.0/8/1', '::/129', '10.0.0.0/-1']) {
      expect(() => parseCidr(bad), bad).toThrow();
    }
  });
});
