import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CNI_SPEC_VERSIONS } from './versions';
import { convertResult, convertResultJson, parseResult } from './result';
import { CniError } from './errors';

const golden = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(__dirname, 'golden', name), 'utf8'));

describe('result conversion goldens (every version pair)', () => {
  for (const from of CNI_SPEC_VERSIONS) {
    for (const to of CNI_SPEC_VERSIONS) {
      it(`${from} -> ${to}`, () => {
        const out = convertResultJson(golden(`result-${from}.json`), to);
        expect(out).toEqual(golden(`${from}-to-${to}.json`));
        // Byte-level: what we print has the same keys as the golden, nothing undefined left over.
        expect(JSON.parse(JSON.stringify(out))).toEqual(golden(`${from}-to-${to}.json`));
      });
    }
  }

  it('upgrading and coming back is lossless', () => {
    for (const from of CNI_SPEC_VERSIONS) {
      const source = golden(`result-${from}.json`);
      const there = convertResultJson(source, '1.1.0');
      expect(convertResultJson(there, from)).toEqual(source);
    }
  });

  it('0.x results gain ips[].version from the address family; 1.x drops it', () => {
    const v1 = { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/8' }, { address: '2001:db8::2/64' }] };
    const old = convertResultJson(v1, '0.3.1') as { ips: Array<{ version: string }> };
    expect(old.ips.map((i) => i.version)).toEqual(['4', '6']);
    const back = convertResultJson(old, '1.0.0') as { ips: Array<Record<string, unknown>> };
    expect(back.ips.every((i) => !('version' in i))).toBe(true);
  });

  it('refuses 0.1.0 / 0.2.0 in either direction with error 1', () => {
    const legacy = { cniVersion: '0.2.0', ip4: { ip: '10.0.0.2/24' } };
    expect(() => parseResult(legacy)).toThrow(expect.objectContaining({ code: 1 }));
    const current = parseResult(golden('result-1.0.0.json'));
    for (const v of ['0.1.0', '0.2.0', '2.0.0']) {
      expect(() => convertResult(current, v)).toThrow(expect.objectContaining({ code: 1 }));
    }
  });

  it('rejects malformed results naming the field (code 6 by default, as chosen)', () => {
    const bad: Array<[unknown, string]> = [
      [[], 'expected an object'],
      [{ cniVersion: '1.0.0', ips: {} }, '.ips'],
      [{ cniVersion: '1.0.0', ips: [{ address: '10.0.0.300/24' }] }, '.ips[0].address'],
      [{ cniVersion: '1.0.0', ips: [{ address: '10.0.0.3' }] }, '.ips[0].address'],
      [{ cniVersion: '1.0.0', ips: [{ address: '10.0.0.3/24', gateway: 'x' }] }, '.ips[0].gateway'],
      [{ cniVersion: '1.0.0', ips: [{ address: '10.0.0.3/24', interface: -1 }] }, '.ips[0].interface'],
      [{ cniVersion: '0.4.0', ips: [{ version: '6', address: '10.0.0.3/24' }] }, '.ips[0].version'],
      [{ cniVersion: '1.0.0', interfaces: [{ mac: 'x' }] }, '.interfaces[0].name'],
      [{ cniVersion: '1.1.0', interfaces: [{ name: 'a', mtu: '1500' }] }, '.interfaces[0].mtu'],
      [{ cniVersion: '1.1.0', routes: [{ dst: '0.0.0.0/0', table: 1.5 }] }, '.routes[0].table'],
      [{ cniVersion: '1.0.0', routes: [{ gw: '10.0.0.1' }] }, '.routes[0].dst'],
      [{ cniVersion: '1.0.0', dns: { nameservers: '8.8.8.8' } }, 'dns.nameservers'],
      [{ cniVersion: 1 }, '.cniVersion'],
    ];
    for (const [doc, mention] of bad) {
      let caught: unknown;
      try {
        parseResult(doc);
      } catch (err) {
        caught = err;
      }
      expect(caught, JSON.stringify(doc)).toBeInstanceOf(CniError);
      expect((caught as CniError).code).toBe(6);
      expect((caught as CniError).msg).toContain(mention);
    }
  });

  it('takes the default version when the result names none, and drops empty parts', () => {
    const r = parseResult({ ips: [], dns: {} }, { defaultVersion: '0.4.0' });
    expect(r).toEqual({ cniVersion: '0.4.0', ips: [] });
    expect(convertResult(r, '1.0.0')).toEqual({ cniVersion: '1.0.0' });
  });
});
