import { describe, expect, it } from 'vitest';
import { compilePeerEntries, compilePolicy, portBlocks, PolicyError, toPolicyKey } from './policy-compile';
import { IPPROTO, type PolicyEntry } from './policy-types';

const entry = (p: Partial<PolicyEntry>): PolicyEntry => ({
  identity: 0,
  protocol: IPPROTO.TCP,
  portLow: 0,
  portHigh: 0,
  direction: 'ingress',
  verdict: 'allow',
  ...p,
});

describe('portBlocks', () => {
  it('covers a range exactly with aligned blocks', () => {
    for (const [lo, hi] of [
      [80, 80],
      [1, 65535],
      [1000, 2000],
      [0, 65535],
      [65535, 65535],
      [8080, 8089],
    ] as const) {
      const blocks = portBlocks(lo, hi);
      const covered: number[] = [];
      for (const b of blocks) {
        const size = 2 ** (16 - b.bits);
        expect(b.base % size, `block ${b.base}/${b.bits} aligned`).toBe(0);
        for (let p = b.base; p < b.base + size; p++) covered.push(p);
      }
      expect(covered.length).toBe(hi - lo + 1);
      expect(covered[0]).toBe(lo);
      expect(covered.at(-1)).toBe(hi);
      expect(blocks.length).toBeLessThanOrEqual(30);
    }
    expect(portBlocks(1, 65535)).toHaveLength(16);
  });
});

describe('compilePolicy', () => {
  it('stores nothing for a direction no policy selects', () => {
    expect(
      compilePolicy({
        ingressEnforced: false,
        egressEnforced: false,
        entries: [entry({ portLow: 80, portHigh: 80 })],
      }),
    ).toEqual([]);
  });

  it('makes prefixes: exact port, any port, any protocol', () => {
    const out = compilePolicy({
      ingressEnforced: true,
      egressEnforced: true,
      entries: [
        entry({ identity: 300, portLow: 80, portHigh: 80 }),
        entry({ identity: 301, protocol: IPPROTO.UDP }),
        entry({ identity: 302, protocol: IPPROTO.ANY, direction: 'egress' }),
      ],
    });
    expect(out.map((e) => toPolicyKey(9, e).prefixlen)).toEqual([96, 80, 72]);
    expect(toPolicyKey(9, out[0]!)).toMatchObject({
      endpoint_id: 9,
      identity: 300,
      protocol: 6,
      dport_be16: 80,
      direction: 0,
    });
    expect(toPolicyKey(9, out[2]!)).toMatchObject({ direction: 1, protocol: 0 });
  });

  it('expands a port without a protocol to TCP, UDP and SCTP', () => {
    const out = compilePolicy({
      ingressEnforced: true,
      egressEnforced: false,
      entries: [entry({ protocol: 0, portLow: 53, portHigh: 53 })],
    });
    expect(out.map((e) => e.protocol).sort((a, b) => a! - b!)).toEqual([6, 17, 132]);
  });

  it('lets deny win over an allow it covers, at the same identity', () => {
    const out = compilePolicy({
      ingressEnforced: true,
      egressEnforced: false,
      entries: [
        entry({ identity: 300, portLow: 80, portHigh: 80 }),
        entry({ identity: 300, portLow: 0, portHigh: 1023, verdict: 'deny' }),
        entry({ identity: 301, portLow: 80, portHigh: 80 }),
        entry({ identity: 302, portLow: 80, portHigh: 80 }),
        entry({ identity: 302, protocol: 0, verdict: 'deny' }),
      ],
    });
    const port80 = out.filter((e) => e.port?.bits === 16 && e.port.base === 80);
    expect(Object.fromEntries(port80.map((e) => [e.identity, e.verdict]))).toEqual({
      300: 'deny',
      301: 'allow',
      302: 'deny',
    });
  });

  it('rejects malformed entries', () => {
    for (const bad of [
      entry({ portLow: 90, portHigh: 80 }),
      entry({ portHigh: 70000 }),
      entry({ identity: -1 }),
      entry({ protocol: 300 }),
    ]) {
      expect(() => compilePolicy({ ingressEnforced: true, egressEnforced: true, entries: [bad] })).toThrow(
        PolicyError,
      );
    }
  });
});

describe('compilePolicy against the longest-prefix lookup the kernel does', () => {
  /** What the policy says for one packet: any matching deny wins, then any allow, else no entry. */
  function intended(entries: PolicyEntry[], pkt: { identity: number; protocol: number; port: number }) {
    const matches = entries.filter(
      (e) =>
        e.identity === pkt.identity &&
        (e.protocol === IPPROTO.ANY || e.protocol === pkt.protocol) &&
        ((e.portLow === 0 && e.portHigh === 0) || (pkt.port >= e.portLow && pkt.port <= e.portHigh)),
    );
    if (matches.some((e) => e.verdict === 'deny')) return 'deny';
    return matches.length > 0 ? 'allow' : undefined;
  }

  /** The LPM trie's answer: the most specific compiled entry of that identity and direction. */
  function lookup(compiled: ReturnType<typeof compilePolicy>, pkt: { identity: number; protocol: number; port: number }) {
    let best: { len: number; verdict: string } | undefined;
    for (const c of compiled) {
      if (c.identity !== pkt.identity || c.direction !== 'ingress') continue;
      if (c.protocol !== null && c.protocol !== pkt.protocol) continue;
      if (c.port && pkt.port >> (16 - c.port.bits) !== c.port.base >> (16 - c.port.bits)) continue;
      const len = c.protocol === null ? 0 : 8 + (c.port?.bits ?? 0);
      if (!best || len > best.len) best = { len, verdict: c.verdict };
    }
    return best?.verdict;
  }

  it('gives every packet the verdict the entries intend (random policies, deny wins)', () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const protocols = [IPPROTO.ANY, IPPROTO.TCP, IPPROTO.UDP];
    for (let round = 0; round < 200; round++) {
      const entries: PolicyEntry[] = [];
      for (let i = 0, n = 1 + rnd(8); i < n; i++) {
        const any = rnd(4) === 0;
        const low = any ? 0 : 1 + rnd(40);
        entries.push(
          entry({
            identity: 1 + rnd(3),
            protocol: protocols[rnd(3)]!,
            portLow: low,
            portHigh: any ? 0 : low + rnd(12),
            verdict: rnd(3) === 0 ? 'deny' : 'allow',
          }),
        );
      }
      const compiled = compilePolicy({ ingressEnforced: true, egressEnforced: true, entries });
      for (let identity = 1; identity <= 3; identity++)
        for (const protocol of [IPPROTO.TCP, IPPROTO.UDP])
          for (let port = 0; port <= 56; port++) {
            const pkt = { identity, protocol, port };
            expect(lookup(compiled, pkt), `${JSON.stringify(entries)} ${JSON.stringify(pkt)}`).toBe(
              intended(entries, pkt),
            );
          }
    }
  });
});

describe('compilePeerEntries', () => {
  it('compiles one change object once per enforcement, not once for every endpoint', () => {
    const change = {
      peers: new Set([300]),
      entries: [
        entry({ identity: 300, portLow: 80, portHigh: 80 }),
        entry({ identity: 300, direction: 'egress', portLow: 53, portHigh: 53 }),
      ],
    };
    const both = { ingressEnforced: true, egressEnforced: true, entries: [] };
    const ingressOnly = { ingressEnforced: true, egressEnforced: false, entries: [] };
    const first = compilePeerEntries(both, change);
    expect([...first.get(300)!.values()].map((e) => e.direction).sort()).toEqual(['egress', 'ingress']);
    expect(compilePeerEntries({ ...both }, change)).toBe(first);
    // The same change reaching an endpoint that enforces only ingress: no egress entry for it.
    expect([...compilePeerEntries(ingressOnly, change).get(300)!.values()].map((e) => e.direction)).toEqual([
      'ingress',
    ]);
  });
});
