import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '@weft/native';
import { Netns, createNamedNetns, deleteNamedNetns } from '@weft/netns';
import { privileged, requireKernelFeature, scratchName } from '@weft/testkit';
import { NetlinkError, isExists, isNotFound, isUnsupported, openRtnl, type Rtnl } from './index';

// Two scratch namespaces stand in for "node" (A) and "pod" (B); the real host is never touched.
interface Side {
  name: string;
  ns: Netns;
  rtnl: Rtnl;
}
const sides: Side[] = [];
let A: Side;
let B: Side;

function side(): Side {
  const name = scratchName('wn');
  const ns = createNamedNetns(name);
  const s = { name, ns, rtnl: openRtnl(ns) };
  sides.push(s);
  return s;
}

/** `ip -n <ns> ...` output, to cross-check what the kernel holds. */
function ip(s: Side, ...args: string[]): string {
  return execFileSync('ip', ['-n', s.name, ...args], { encoding: 'utf8' });
}

const isRoot = process.getuid?.() === 0;

beforeAll(() => {
  if (!isRoot) return;
  A = side();
  B = side();
});

afterAll(() => {
  for (const s of sides) {
    s.rtnl.close();
    s.ns.close();
    deleteNamedNetns(s.name);
  }
});

describe('rtnetlink against the real kernel', () => {
  it('opens the socket inside the namespace and leaves every thread at home', async (ctx) => {
    privileged(ctx);
    const home = native().currentNetnsInode();
    const pool = () => fsp.stat('/proc/thread-self/ns/net').then((s) => s.ino);
    const sockets = Array.from({ length: 20 }, () => openRtnl(B.ns));
    const [inodes, loLists] = await Promise.all([
      Promise.all(Array.from({ length: 50 }, pool)),
      Promise.all(sockets.map((r) => r.listLinks())),
    ]);
    sockets.forEach((r) => r.close());
    expect(new Set(inodes)).toEqual(new Set([home]));
    expect(native().currentNetnsInode()).toBe(home);
    // Each socket saw B's links (only lo in a fresh namespace), not the host's.
    for (const links of loLists) expect(links.map((l) => l.name)).toEqual(['lo']);
  });

  it('creates a veth whose peer is born inside the other namespace', async (ctx) => {
    privileged(ctx);
    await A.rtnl.createVeth({
      name: 'wnh0',
      peerName: 'eth0',
      peerNetns: B.ns,
      mtu: 1400,
      mac: '02:77:6e:00:00:01',
      peerMac: '02:77:6e:00:00:02',
    });
    const host = await A.rtnl.getLink('wnh0');
    const pod = await B.rtnl.getLink('eth0');
    expect(host).toMatchObject({ kind: 'veth', mtu: 1400, mac: '02:77:6e:00:00:01', up: false });
    expect(pod).toMatchObject({ kind: 'veth', mtu: 1400, mac: '02:77:6e:00:00:02' });
    // IFLA_LINK + IFLA_LINK_NETNSID let a caller find the peer across namespaces.
    expect(host.linkIndex).toBe(pod.index);
    expect(pod.linkIndex).toBe(host.index);
    expect(host.linkNetnsId).toBeTypeOf('number');
    expect(ip(B, '-o', 'link', 'show', 'eth0')).toContain('link/ether 02:77:6e:00:00:02');
    await expect(A.rtnl.findLink('eth0')).resolves.toBeUndefined();
    expect((await B.rtnl.getLink(pod.index)).name).toBe('eth0');
    await A.rtnl.setUp('wnh0');
    await B.rtnl.setUp('eth0');
    await B.rtnl.setUp('lo');
    expect((await B.rtnl.getLink('eth0')).up).toBe(true);
  });

  it('adds, lists and deletes IPv4 and IPv6 addresses', async (ctx) => {
    privileged(ctx);
    await B.rtnl.addAddress('eth0', '10.99.0.5/32');
    await B.rtnl.addAddress('eth0', 'fd00:99::5/128', { nodad: true });
    const addrs = await B.rtnl.listAddresses({ dev: 'eth0' });
    expect(addrs.map((a) => a.cidr)).toEqual(expect.arrayContaining(['10.99.0.5/32', 'fd00:99::5/128']));
    const v6 = addrs.find((a) => a.address === 'fd00:99::5')!;
    expect(v6.flags & 0x02).toBe(0x02); // IFA_F_NODAD: no tentative phase
    expect(ip(B, '-6', 'addr', 'show', 'dev', 'eth0')).toMatch(
      /inet6 fd00:99::5\/128 scope global nodad\s*\n/,
    );
    await expect(B.rtnl.addAddress('eth0', '10.99.0.5/32')).rejects.toSatisfy(isExists);
    await B.rtnl.addAddress('eth0', '10.99.0.5/32', { replace: true });
    await A.rtnl.addAddress('wnh0', '10.98.0.1/24');
    expect(ip(A, '-4', 'addr', 'show', 'dev', 'wnh0')).toContain('inet 10.98.0.1/24 brd 10.98.0.255');
    await A.rtnl.deleteAddress('wnh0', '10.98.0.1/24');
    await expect(A.rtnl.deleteAddress('wnh0', '10.98.0.1/24')).rejects.toSatisfy(isNotFound);
    expect(await B.rtnl.listAddresses({ dev: 'eth0', family: 4 })).toHaveLength(1);
  });

  it('installs onlink default routes via 169.254.1.1 and fe80::1, replaces and deletes them', async (ctx) => {
    privileged(ctx);
    await B.rtnl.addRoute({ dst: 'default', gateway: '169.254.1.1', dev: 'eth0', onlink: true });
    await B.rtnl.addRoute({ dst: 'default', gateway: 'fe80::1', dev: 'eth0', onlink: true });
    await B.rtnl.addRoute({
      dst: '10.96.0.0/12',
      gateway: '169.254.1.1',
      dev: 'eth0',
      onlink: true,
      src: '10.99.0.5',
      table: 1000,
    });
    expect(ip(B, 'route', 'show')).toMatch(/default via 169\.254\.1\.1 dev eth0 onlink/);
    expect(ip(B, '-6', 'route', 'show')).toMatch(/default via fe80::1 dev eth0 .*onlink/);
    expect(ip(B, 'route', 'show', 'table', '1000')).toContain(
      '10.96.0.0/12 via 169.254.1.1 dev eth0 src 10.99.0.5 onlink',
    );
    const v4 = await B.rtnl.listRoutes({ family: 4 });
    const eth0 = (await B.rtnl.getLink('eth0')).index;
    expect(v4).toContainEqual(
      expect.objectContaining({
        dst: 'default',
        gateway: '169.254.1.1',
        oif: eth0,
        onlink: true,
        table: 254,
      }),
    );
    const t1000 = await B.rtnl.listRoutes({ table: 1000 });
    expect(t1000).toEqual([expect.objectContaining({ dst: '10.96.0.0/12', src: '10.99.0.5', table: 1000 })]);
    await expect(
      B.rtnl.addRoute({ dst: 'default', gateway: '169.254.1.1', dev: 'eth0', onlink: true }),
    ).rejects.toSatisfy(isExists);
    await B.rtnl.replaceRoute({ dst: 'default', gateway: '169.254.1.2', dev: 'eth0', onlink: true });
    expect(ip(B, 'route', 'show', 'default')).toContain('via 169.254.1.2');
    // A link-scoped host route, the other common way to reach the gateway.
    await B.rtnl.addRoute({ dst: '169.254.1.1/32', dev: 'eth0' });
    expect(ip(B, 'route', 'show', '169.254.1.1')).toContain('scope link');
    await B.rtnl.deleteRoute({ dst: 'default', family: 4 });
    await B.rtnl.deleteRoute({ dst: '10.96.0.0/12', table: 1000 });
    await expect(B.rtnl.deleteRoute({ dst: '10.96.0.0/12', table: 1000 })).rejects.toSatisfy(isNotFound);
    expect(await B.rtnl.listRoutes({ table: 1000 })).toEqual([]);
  });

  it('replaces a permanent neighbour and deletes it', async (ctx) => {
    privileged(ctx);
    const hostMac = (await A.rtnl.getLink('wnh0')).mac!;
    await B.rtnl.replaceNeighbour({ dev: 'eth0', address: '169.254.1.1', lladdr: hostMac });
    await B.rtnl.replaceNeighbour({ dev: 'eth0', address: '169.254.1.1', lladdr: hostMac }); // idempotent
    await B.rtnl.replaceNeighbour({ dev: 'eth0', address: 'fe80::1', lladdr: hostMac });
    expect(ip(B, 'neigh', 'show', 'dev', 'eth0')).toContain(`169.254.1.1 lladdr ${hostMac} PERMANENT`);
    const neigh = await B.rtnl.listNeighbours({ dev: 'eth0' });
    expect(neigh).toContainEqual(
      expect.objectContaining({ address: 'fe80::1', lladdr: hostMac, permanent: true, family: 6 }),
    );
    await B.rtnl.deleteNeighbour({ dev: 'eth0', address: '169.254.1.1' });
    await expect(B.rtnl.deleteNeighbour({ dev: 'eth0', address: '169.254.1.1' })).rejects.toSatisfy(
      isNotFound,
    );
    expect((await B.rtnl.listNeighbours({ dev: 'eth0', family: 4 })).map((n) => n.address)).not.toContain(
      '169.254.1.1',
    );
  });

  it('adds, lists and deletes policy rules (from/to/iif/oif/priority/table)', async (ctx) => {
    privileged(ctx);
    const rules = [
      { priority: 512, to: '10.99.0.5/32', table: 254 },
      { priority: 2048, from: '10.99.0.5/32', table: 1001 },
      { priority: 2049, iif: 'wnh0', table: 1001 },
      { priority: 2050, oif: 'wnh0', from: '10.99.0.0/24', table: 100000 },
      { priority: 2051, from: 'fd00:99::5/128', table: 1001 },
    ];
    for (const r of rules) await A.rtnl.addRule(r);
    await expect(A.rtnl.addRule(rules[1]!)).rejects.toSatisfy(isExists);
    const text = ip(A, 'rule', 'show');
    expect(text).toContain('512:\tfrom all to 10.99.0.5 lookup main');
    expect(text).toContain('2048:\tfrom 10.99.0.5 lookup 1001');
    expect(text).toContain('2049:\tfrom all iif wnh0 lookup 1001');
    expect(text).toContain('2050:\tfrom 10.99.0.0/24 oif wnh0 lookup 100000');
    expect(ip(A, '-6', 'rule', 'show')).toContain('2051:\tfrom fd00:99::5 lookup 1001');
    const listed = await A.rtnl.listRules(4);
    expect(listed).toContainEqual(
      expect.objectContaining({ priority: 2048, from: '10.99.0.5/32', table: 1001 }),
    );
    expect(listed).toContainEqual(expect.objectContaining({ priority: 2050, oif: 'wnh0', table: 100000 }));
    expect(await A.rtnl.listRules(6)).toContainEqual(
      expect.objectContaining({ priority: 2051, from: 'fd00:99::5/128' }),
    );
    for (const r of rules) await A.rtnl.deleteRule(r);
    await expect(A.rtnl.deleteRule(rules[0]!)).rejects.toSatisfy(isNotFound);
    expect((await A.rtnl.listRules(4)).map((r) => r.priority)).not.toContain(2048);
  });

  it('renames, sets MTU and MAC, moves between namespaces, deletes', async (ctx) => {
    privileged(ctx);
    await A.rtnl.createVeth({ name: 'wnv0', peerName: 'wnv1' });
    await A.rtnl.setMtu('wnv0', 1280);
    await A.rtnl.setMac('wnv0', '02:77:6e:00:00:aa');
    await A.rtnl.rename('wnv0', 'wnv0r');
    await expect(A.rtnl.getLink('wnv0r')).resolves.toMatchObject({ mtu: 1280, mac: '02:77:6e:00:00:aa' });
    await A.rtnl.setUp('wnv0r');
    expect((await A.rtnl.getLink('wnv0r')).up).toBe(true);
    await A.rtnl.setDown('wnv0r');
    expect((await A.rtnl.getLink('wnv0r')).up).toBe(false);
    await A.rtnl.setNetns('wnv1', B.ns);
    await expect(A.rtnl.findLink('wnv1')).resolves.toBeUndefined();
    const moved = await B.rtnl.getLink('wnv1');
    expect((await A.rtnl.getLink('wnv0r')).linkIndex).toBe(moved.index);
    expect(ip(B, '-o', 'link')).toContain('wnv1@');
    await A.rtnl.deleteLink('wnv0r'); // deleting one end removes the pair
    await expect(B.rtnl.findLink('wnv1')).resolves.toBeUndefined();
    await expect(A.rtnl.deleteLink('wnv0r')).rejects.toSatisfy(isNotFound);
  });

  it('reports kernel refusals as NetlinkError with errno, code and operation', async (ctx) => {
    privileged(ctx);
    const err = await A.rtnl.getLink('wnmissing').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err).toMatchObject({ code: 'ENODEV', errno: -19, operation: 'RTM_GETLINK wnmissing' });
    expect(isNotFound(err)).toBe(true);
    await expect(A.rtnl.createVeth({ name: 'wnh0', peerName: 'wnx' })).rejects.toMatchObject({
      code: 'EEXIST',
    });
    await expect(A.rtnl.createVeth({ name: 'bad/name', peerName: 'wnx' })).rejects.toMatchObject({
      code: 'EINVAL',
    });
    const closed = openRtnl(A.ns);
    closed.close();
    await expect(closed.listLinks()).rejects.toMatchObject({ code: 'EBADF' });
  });

  it('creates a bridge and a macvlan born inside the other namespace', async (ctx) => {
    privileged(ctx);
    await A.rtnl.createBridge({ name: 'wnbr0', mtu: 1500 });
    expect((await A.rtnl.getLink('wnbr0')).kind).toBe('bridge');
    await A.rtnl.createVeth({ name: 'wnm0', peerName: 'wnm1' });
    await A.rtnl.createMacvlan({ name: 'wnmv0', master: 'wnm0', mode: 'bridge', netns: B.ns, mtu: 1400 });
    const mv = await B.rtnl.getLink('wnmv0');
    expect(mv).toMatchObject({ kind: 'macvlan', macvlan: { mode: 'bridge' }, mtu: 1400 });
    expect(mv.linkIndex).toBe((await A.rtnl.getLink('wnm0')).index);
    expect(ip(B, '-d', 'link', 'show', 'wnmv0')).toContain('macvlan mode bridge');
    await A.rtnl.createMacvlan({ name: 'wnmv1', master: 'wnm0', mode: 'private' });
    expect((await A.rtnl.getLink('wnmv1')).macvlan).toEqual({ mode: 'private' });
    await A.rtnl.deleteLink('wnm0');
    await A.rtnl.deleteLink('wnbr0');
  });

  it('without kernel ipvlan, creating one fails as unsupported (not silently)', async (ctx) => {
    privileged(ctx);
    await A.rtnl.createVeth({ name: 'wni0', peerName: 'wni1' });
    const err = await A.rtnl.createIpvlan({ name: 'wnipv0', master: 'wni0', mode: 'l2' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await A.rtnl.deleteLink('wni0');
    if (err === undefined) {
      console.log('SKIPPED: this kernel has ipvlan; the next test covers it');
      ctx.skip();
    }
    console.log(`NOTE: this kernel has no ipvlan; the refusal reads: ${String(err)}`);
    expect(isUnsupported(err)).toBe(true);
  });

  it('creates ipvlan links in every mode, directly in the pod namespace', async (ctx) => {
    privileged(ctx);
    requireKernelFeature(ctx, 'ipvlan');
    await A.rtnl.createVeth({ name: 'wni0', peerName: 'wni1' });
    try {
      for (const [i, mode] of (['l2', 'l3', 'l3s'] as const).entries()) {
        await A.rtnl.createIpvlan({
          name: `wnipv${i}`,
          master: 'wni0',
          mode,
          flags: i === 1 ? 'private' : 'bridge',
          netns: B.ns,
        });
        expect(await B.rtnl.getLink(`wnipv${i}`)).toMatchObject({
          kind: 'ipvlan',
          ipvlan: { mode, flags: i === 1 ? 'private' : 'bridge' },
        });
        expect(ip(B, '-d', 'link', 'show', `wnipv${i}`)).toContain(`ipvlan  mode ${mode}`);
      }
    } finally {
      await A.rtnl.deleteLink('wni0');
    }
  });

  it('deletes the veth from the pod side too', async (ctx) => {
    privileged(ctx);
    await B.rtnl.deleteLink('eth0');
    await expect(A.rtnl.findLink('wnh0')).resolves.toBeUndefined();
  });
});
