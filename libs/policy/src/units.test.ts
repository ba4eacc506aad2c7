import { describe, expect, it } from 'vitest';
import type { EndpointPolicy, PolicyEntry } from '@weft/datapath';
import { evaluate, evaluateDirection, IpcacheLpm } from './evaluate';
import { FIRST_LOCAL_IDENTITY, IdentityAllocator, RESERVED_IDENTITY } from './identity';
import { canonicalIp, cidrContainsCidr, cidrContainsIp, formatCidr, parseCidr, parseIp } from './ip';
import { labelSetKey, podIdentityLabels } from './labels';
import { LabelIndex, Selector, selectorRequirements } from './selector';

describe('ip', () => {
  it.each([
    ['10.0.0.1', '10.0.0.1'],
    ['::', '::'],
    ['::1', '::1'],
    ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ])('canonicalises %s', (input, out) => expect(canonicalIp(input)).toBe(out));

  it.each([
    '',
    '1.2.3',
    '1.2.3.4.5',
    '01.2.3.4',
    '256.0.0.1',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    'fe80::1%eth0',
    'g::1',
    '1.2.3.4::',
  ])('refuses %s', (input) => expect(parseIp(input)).toBeUndefined());

  it('masks prefixes and tests containment', () => {
    expect(formatCidr(parseCidr('10.1.2.3/8')!)).toBe('10.0.0.0/8');
    expect(formatCidr(parseCidr('2001:db8::1/32')!)).toBe('2001:db8::/32');
    expect(parseCidr('10.0.0.0/33')).toBeUndefined();
    expect(parseCidr('10.0.0.0/08')).toBeUndefined();
    expect(cidrContainsIp(parseCidr('10.0.0.0/8')!, parseIp('10.255.0.1')!)).toBe(true);
    expect(cidrContainsIp(parseCidr('10.0.0.0/8')!, parseIp('11.0.0.1')!)).toBe(false);
    expect(cidrContainsIp(parseCidr('0.0.0.0/0')!, parseIp('::1')!)).toBe(false);
    expect(cidrContainsCidr(parseCidr('10.0.0.0/8')!, parseCidr('10.1.0.0/16')!)).toBe(true);
    expect(cidrContainsCidr(parseCidr('10.1.0.0/16')!, parseCidr('10.0.0.0/8')!)).toBe(false);
  });
});

describe('selectors', () => {
  const labels = (o: Record<string, string>) => new Map(Object.entries(o));

  it('implements matchLabels and the four operators', () => {
    const s = new Selector(
      selectorRequirements(
        {
          matchLabels: { app: 'web' },
          matchExpressions: [
            { key: 'tier', operator: 'In', values: ['a', 'b'] },
            { key: 'env', operator: 'NotIn', values: ['dev'] },
            { key: 'owner', operator: 'Exists' },
            { key: 'legacy', operator: 'DoesNotExist' },
          ],
        },
        (k) => `k8s:${k}`,
      ),
    );
    const base = { 'k8s:app': 'web', 'k8s:tier': 'a', 'k8s:owner': '' };
    expect(s.matches(labels(base))).toBe(true);
    expect(s.matches(labels({ ...base, 'k8s:env': 'prod' }))).toBe(true);
    expect(s.matches(labels({ ...base, 'k8s:env': 'dev' }))).toBe(false);
    expect(s.matches(labels({ ...base, 'k8s:tier': 'c' }))).toBe(false);
    expect(s.matches(labels({ ...base, 'k8s:legacy': 'x' }))).toBe(false);
    const { 'k8s:owner': _owner, ...noOwner } = base;
    expect(s.matches(labels(noOwner))).toBe(false);
    expect(new Selector([]).matches(labels({}))).toBe(true);
  });

  it('gives equal selectors one canonical key whatever their spelling', () => {
    const a = new Selector(selectorRequirements({ matchLabels: { a: '1', b: '2' } }, (k) => `k8s:${k}`));
    const b = new Selector(
      selectorRequirements(
        { matchExpressions: [{ key: 'b', operator: 'In', values: ['2'] }], matchLabels: { a: '1' } },
        (k) => `k8s:${k}`,
      ),
    );
    expect(a.key).toBe(b.key);
  });

  it('any: keys match labels of any source', () => {
    const s = new Selector([{ key: 'any:app', operator: 'In', values: ['x'] }]);
    expect(s.matches(labels({ 'k8s:app': 'x' }))).toBe(true);
    expect(s.matches(labels({ 'reserved:app': 'x' }))).toBe(true);
    expect(s.matches(labels({ 'k8s:app': 'y' }))).toBe(false);
  });

  it('the inverted index finds exactly what a full scan finds', () => {
    const index = new LabelIndex();
    const all = new Map<number, Map<string, string>>();
    for (let i = 0; i < 300; i++) {
      const l = labels({
        'k8s:app': `a${i % 7}`,
        'k8s:tier': `t${i % 3}`,
        ...(i % 5 === 0 ? { 'k8s:canary': '' } : {}),
      });
      all.set(i, l);
      index.add(i, l);
    }
    index.remove(7, all.get(7)!);
    all.delete(7);
    const selectors = [
      new Selector([
        { key: 'k8s:app', operator: 'In', values: ['a0', 'a3'] },
        { key: 'k8s:tier', operator: 'NotIn', values: ['t1'] },
      ]),
      new Selector([{ key: 'k8s:canary', operator: 'Exists' }]),
      new Selector([
        { key: 'k8s:canary', operator: 'DoesNotExist' },
        { key: 'any:tier', operator: 'In', values: ['t2'] },
      ]),
      new Selector([]),
    ];
    for (const s of selectors) {
      const scan = [...all]
        .filter(([, l]) => s.matches(l))
        .map(([id]) => id)
        .sort((a, b) => a - b);
      expect([...index.evaluate(s, (id) => all.get(id)!)].sort((a, b) => a - b)).toEqual(scan);
    }
  });
});

describe('identities', () => {
  it('builds identity labels from pod, namespace name and namespace labels', () => {
    const l = podIdentityLabels(
      { namespace: 'x', labels: { app: 'a' } },
      { name: 'x', labels: { team: 't' } },
      ['cidr:10.0.0.0/8'],
    );
    expect(Object.fromEntries(l)).toEqual({
      'k8s:app': 'a',
      'k8s:io.kubernetes.pod.namespace': 'x',
      'k8s:io.cilium.k8s.namespace.labels.team': 't',
      'k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name': 'x',
      'cidr:10.0.0.0/8': '',
    });
    // Order does not matter for the allocator key.
    expect(
      labelSetKey(
        new Map([
          ['b', '1'],
          ['a', '2'],
        ]),
      ),
    ).toBe(
      labelSetKey(
        new Map([
          ['a', '2'],
          ['b', '1'],
        ]),
      ),
    );
  });

  it('allocates stable numbers, restores them and collects garbage', () => {
    const alloc = new IdentityAllocator();
    const a = alloc.acquire(new Map([['k8s:app', 'a']]));
    const b = alloc.acquire(new Map([['k8s:app', 'b']]));
    expect(a).toBe(FIRST_LOCAL_IDENTITY);
    expect(b).toBe(FIRST_LOCAL_IDENTITY + 1);
    expect(alloc.acquire(new Map([['k8s:app', 'a']]))).toBe(a);
    alloc.release(a);
    alloc.release(a);
    alloc.release(b);
    // Unreferenced numbers are not reused while the space lasts.
    expect(alloc.acquire(new Map([['k8s:app', 'c']]))).toBe(FIRST_LOCAL_IDENTITY + 2);
    expect(alloc.acquire(new Map([['k8s:app', 'a']]))).toBe(a);
    const restored = new IdentityAllocator(JSON.parse(JSON.stringify(alloc.snapshot())));
    expect(restored.lookup(new Map([['k8s:app', 'b']]))).toBe(b);
    expect(restored.acquire(new Map([['k8s:app', 'd']]))).toBe(FIRST_LOCAL_IDENTITY + 3);
    expect(restored.collectGarbage().sort()).toEqual([a, b, FIRST_LOCAL_IDENTITY + 2]);
    expect(() => new IdentityAllocator([{ id: 5, labels: {} }])).toThrow(RangeError);
    expect(
      () =>
        new IdentityAllocator([
          { id: 300, labels: { a: '1' } },
          { id: 301, labels: { a: '1' } },
        ]),
    ).toThrow(/duplicate/);
  });
});

describe('reference evaluator', () => {
  const entry = (p: Partial<PolicyEntry>): PolicyEntry => ({
    identity: 0,
    protocol: 0,
    portLow: 0,
    portHigh: 0,
    direction: 'ingress',
    verdict: 'allow',
    ...p,
  });

  it('matches identity, protocol and port wildcards; deny wins; default follows enforcement', () => {
    const policy: EndpointPolicy = {
      ingressEnforced: true,
      egressEnforced: false,
      entries: [
        entry({ identity: 300, protocol: 6, portLow: 80, portHigh: 90 }),
        entry({ identity: 301 }),
        entry({ identity: 0, protocol: 17, portLow: 53, portHigh: 53 }),
        entry({ identity: 301, protocol: 6, portLow: 22, portHigh: 22, verdict: 'deny' }),
      ],
    };
    expect(evaluateDirection(policy, 'ingress', 300, 6, 85).verdict).toBe('allow');
    expect(evaluateDirection(policy, 'ingress', 300, 6, 91).verdict).toBe('deny');
    expect(evaluateDirection(policy, 'ingress', 300, 17, 85).verdict).toBe('deny');
    expect(evaluateDirection(policy, 'ingress', 999, 17, 53).verdict).toBe('allow');
    expect(evaluateDirection(policy, 'ingress', 301, 6, 443).verdict).toBe('allow');
    expect(evaluateDirection(policy, 'ingress', 301, 6, 22)).toMatchObject({ verdict: 'deny', by: 'entry' });
    expect(evaluateDirection(policy, 'egress', 1, 6, 1)).toEqual({ verdict: 'allow', by: 'default' });
  });

  it('looks identities up by longest prefix and needs both ends to allow', () => {
    const lpm = new IpcacheLpm([
      { cidr: '0.0.0.0/0', identity: RESERVED_IDENTITY.world },
      { cidr: '10.0.0.0/8', identity: 400 },
      { cidr: '10.1.0.0/16', identity: 401 },
      { cidr: '10.1.2.3/32', identity: 402 },
      { cidr: 'fd00::/8', identity: 403 },
    ]);
    expect(lpm.lookup('10.1.2.3')).toBe(402);
    expect(lpm.lookup('10.1.2.4')).toBe(401);
    expect(lpm.lookup('10.9.0.1')).toBe(400);
    expect(lpm.lookup('192.0.2.1')).toBe(RESERVED_IDENTITY.world);
    expect(lpm.lookup('fd00::1')).toBe(403);
    expect(lpm.lookup('2001:db8::1')).toBe(RESERVED_IDENTITY.world);
    const src: EndpointPolicy = {
      ingressEnforced: false,
      egressEnforced: true,
      entries: [entry({ identity: 401, direction: 'egress' })],
    };
    const dst: EndpointPolicy = {
      ingressEnforced: true,
      egressEnforced: false,
      entries: [entry({ identity: 402 })],
    };
    const eps = new Map([
      ['10.1.2.3', src],
      ['10.1.9.9', dst],
    ]);
    expect(evaluate(eps, lpm, '10.1.2.3', '10.1.9.9', 6, 80)).toMatchObject({
      verdict: 'allow',
      srcIdentity: 402,
      dstIdentity: 401,
    });
    expect(evaluate(eps, lpm, '10.9.0.1', '10.1.9.9', 6, 80)).toMatchObject({
      verdict: 'deny',
      ingress: { by: 'default' },
      egress: { by: 'no-endpoint' },
    });
    expect(evaluate(eps, lpm, '10.1.2.3', '10.9.0.1', 6, 80).verdict).toBe('deny');
  });
});
