/**
 * weft-cni in veth mode, the shipped executable against the real kernel: real namespaces, real
 * veths, weft-host-local IPAM, the datapath attached in degraded mode (no agent in these tests;
 * the agent's own suite registers endpoints through it). Everything made here is torn down and
 * checked to be gone.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privileged, requireCommands, ScratchNetns } from '@weft/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostVethName } from '../../pod/host-names';
import { hostAddress, ping, weftProgramsOn } from '../../testing/chain-fixtures';
import { DIST_BIN, inPool, runCni, type CniOutcome } from '../../testing/cni-run';
import { tcxSupported } from '@weft/bpf';

const WEFT_CNI = join(DIST_BIN, 'weft-cni');
const NET = 'wvnet';
let work = '';
let pinRoot = '';
const namespaces: ScratchNetns[] = [];

function conf(extra: Record<string, unknown> = {}, subnet = '10.97.0.0/24') {
  return {
    cniVersion: '1.1.0',
    name: NET,
    type: 'weft-cni',
    degraded: true,
    stateDir: join(work, 'state'),
    agentSocket: join(work, 'no-agent.sock'),
    pinRoot,
    ipam: {
      type: 'weft-host-local',
      ranges: [[{ subnet }], [{ subnet: 'fd97::/64' }]],
      dataDir: join(work, 'ipam'),
    },
    ...extra,
  };
}

function pod(prefix = 'wvp'): ScratchNetns {
  const ns = new ScratchNetns(prefix);
  namespaces.push(ns);
  return ns;
}

const add = (id: string, ns: ScratchNetns, c: object = conf()) =>
  runCni(WEFT_CNI, { command: 'ADD', conf: c, containerId: id, netns: ns.path });
const del = (id: string, netns: string, c: object = conf()) =>
  runCni(WEFT_CNI, { command: 'DEL', conf: c, containerId: id, netns });

function expectOk(r: CniOutcome): void {
  if (r.code !== 0) throw new Error(`plugin failed (${r.code}): ${r.stdout} ${r.stderr}`);
}

function hostLinks(): string[] {
  return execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
    .filter((n) => n.startsWith('lxc'));
}

function reservedIps(): string[] {
  const dir = join(work, 'ipam', NET);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip'));
}

function hostRoutesTo(ip: string): string {
  return execFileSync('ip', ['route', 'show', `${ip}/32`], { encoding: 'utf8' }).trim();
}

describe('weft-cni veth mode on real namespaces', () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'wveth-'));
    pinRoot = `/sys/fs/bpf/wveth-${process.pid}`;
  });

  afterAll(() => {
    for (const ns of namespaces) ns.remove();
    try {
      execFileSync('rm', ['-rf', pinRoot]);
    } catch {
      /* bpffs entries go with rm */
    }
    rmSync(work, { recursive: true, force: true });
  });

  it('gives two pods addresses that reach each other and the host; CHECK passes; DEL x3 leaves nothing', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'ip', 'ping', WEFT_CNI);
    const a = pod();
    const b = pod();
    const ra = await add('wv-a', a);
    const rb = await add('wv-b', b);
    expectOk(ra);
    expectOk(rb);
    const ipA = ra.json.ips[0].address.split('/')[0];
    const ipB = rb.json.ips[0].address.split('/')[0];
    const ip6B = rb.json.ips[1].address.split('/')[0];
    expect(ra.json.ips[0].address).toMatch(/\/32$/);
    expect(ra.json.ips[1].address).toMatch(/\/128$/);
    expect(ra.json.interfaces[1]).toMatchObject({ name: 'eth0', sandbox: a.path });
    expect(ra.json.interfaces[0].name).toMatch(/^lxc[0-9a-f]{11}$/);
    expect(ping(a, ipB)).toBe(true);
    expect(ping(a, ip6B)).toBe(true);
    expect(ping(b, ipA)).toBe(true);
    expect(ping(a, hostAddress())).toBe(true);
    expect(ping(a, '169.254.1.1')).toBe(true); // the result's gateway answers
    // The host's own traffic to a pod keeps the host's address as source (the gateway is host-scoped).
    expect(execFileSync('ip', ['route', 'get', ipA], { encoding: 'utf8' })).toContain(`src ${hostAddress()}`);
    // The datapath is on the host end (from-container on ingress, to-container on egress), by tcx
    // links where the kernel has tcx, else clsact filters.
    const hostIf = ra.json.interfaces[0].name;
    const dirs = { stateDir: join(work, 'state'), agentSocket: '', pinRoot };
    expect(weftProgramsOn(hostIf, dirs)).toBe(tcxSupported() ? 'tcx' : 'clsact');

    const check = await runCni(WEFT_CNI, {
      command: 'CHECK',
      conf: { ...conf(), prevResult: ra.json },
      containerId: 'wv-a',
      netns: a.path,
    });
    expectOk(check);

    for (let i = 0; i < 3; i++) {
      expectOk(await del('wv-a', a.path));
      expectOk(await del('wv-b', b.path));
    }
    expect(hostLinks().filter((l) => l === hostIf)).toEqual([]);
    expect(reservedIps()).toEqual([]);
    expect(hostRoutesTo(ipA)).toBe('');
    expect(readdirSync(join(work, 'state', 'cni', NET))).toEqual([]);
    expect(readdirSync(join(work, 'state', 'queue'))).toEqual([]); // degraded registrations dropped
  });

  it('CHECK reports a pod whose address was removed', async (ctx) => {
    privileged(ctx);
    const a = pod();
    const r = await add('wv-chk', a);
    expectOk(r);
    a.exec('ip', 'addr', 'del', r.json.ips[0].address, 'dev', 'eth0');
    const check = await runCni(WEFT_CNI, {
      command: 'CHECK',
      conf: { ...conf(), prevResult: r.json },
      containerId: 'wv-chk',
      netns: a.path,
    });
    expect(check.code).not.toBe(0);
    expect(check.json.msg).toMatch(/lacks address/);
    expectOk(await del('wv-chk', a.path));
  });

  it('repeats an ADD safely: same address, one host link', async (ctx) => {
    privileged(ctx);
    const a = pod();
    const first = await add('wv-rep', a);
    const second = await add('wv-rep', a);
    expectOk(first);
    expectOk(second);
    expect(second.json.ips).toEqual(first.json.ips);
    expect(hostLinks().filter((l) => l === second.json.interfaces[0].name)).toHaveLength(1);
    expect(ping(a, hostAddress())).toBe(true);
    expectOk(await del('wv-rep', a.path));
    expect(reservedIps()).toEqual([]);
  });

  it('DEL succeeds when the netns is already gone, and releases the address', async (ctx) => {
    privileged(ctx);
    const a = pod();
    expectOk(await add('wv-gone', a));
    const path = a.path;
    a.remove();
    expectOk(await del('wv-gone', path));
    expectOk(await del('wv-gone', ''));
    expect(reservedIps()).toEqual([]);
  });

  it('an ADD that fails after IPAM leaves no address, link or record behind', async (ctx) => {
    privileged(ctx);
    // 1. The interface name is taken inside the pod by something that is not weft's.
    const a = pod();
    a.exec('ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0');
    const conflict = await add('wv-fail1', a);
    expect(conflict.code).not.toBe(0);
    expect(conflict.json.code).toBe(111);
    // 2. The agent is down and the network is not degraded: 11, try again later.
    const b = pod();
    const down = await add('wv-fail2', b, conf({ degraded: false }));
    expect(down.json).toMatchObject({ code: 11 });
    expect(down.json.msg).toMatch(/weft-agent is not available/);
    expect(b.exec('ip', '-o', 'link', 'show')).not.toMatch(/eth0/);
    expect(reservedIps()).toEqual([]);
    const made = [hostVethName('wv-fail1', 'eth0'), hostVethName('wv-fail2', 'eth0')];
    expect(hostLinks().filter((l) => made.includes(l))).toEqual([]);
    expect(readdirSync(join(work, 'state', 'cni', NET))).toEqual([]);
  });

  it('refuses bad config with code 7 and touches nothing', async (ctx) => {
    privileged(ctx);
    const a = pod();
    const before = hostLinks().length;
    for (const bad of [{ mtu: 70000 }, { mtu: 'big' }, { degraded: 'yes' }, { stateDir: 'relative' }, { ipam: undefined }, { args: { cni: { labels: ['app=web'] } } }]) {
      const r = await add('wv-bad', a, { ...conf(), ...bad });
      expect(r.json?.code, JSON.stringify(bad)).toBe(7);
    }
    expect(hostLinks().length).toBe(before);
    expect(reservedIps()).toEqual([]);
  });

  it('100 concurrent ADDs then 100 concurrent DELs: all succeed, no duplicate address, nothing leaks', async (ctx) => {
    privileged(ctx);
    const pods = Array.from({ length: 100 }, () => pod('wvc'));
    const c = conf({}, '10.97.4.0/24');
    const added = await inPool(25, pods.map((p, i) => () => add(`wv-c${i}`, p, c)));
    const failures = added.filter((r) => r.code !== 0);
    expect(failures.map((f) => f.stdout)).toEqual([]);
    const ips = added.map((r) => r.json.ips[0].address);
    expect(new Set(ips).size).toBe(100);
    expect(reservedIps().length).toBe(200); // IPv4 and IPv6 each
    const deleted = await inPool(25, pods.map((p, i) => () => del(`wv-c${i}`, p.path, c)));
    expect(deleted.filter((r) => r.code !== 0).map((r) => r.stdout)).toEqual([]);
    expect(reservedIps()).toEqual([]);
    const names = new Set(added.map((r) => r.json.interfaces[0].name));
    expect(hostLinks().filter((l) => names.has(l))).toEqual([]);
  }, 240_000);

  it('GC releases every attachment not in cni.dev/valid-attachments; STATUS reports the agent', async (ctx) => {
    privileged(ctx);
    const keep = pod();
    const drop = pod();
    const rk = await add('wv-keep', keep);
    const rd = await add('wv-drop', drop);
    expectOk(rk);
    expectOk(rd);
    const gc = await runCni(WEFT_CNI, {
      command: 'GC',
      conf: { ...conf(), 'cni.dev/valid-attachments': [{ containerID: 'wv-keep', ifname: 'eth0' }] },
    });
    expectOk(gc);
    expect(hostLinks()).toContain(rk.json.interfaces[0].name);
    expect(hostLinks()).not.toContain(rd.json.interfaces[0].name);
    expect(reservedIps().sort()).toEqual(
      rk.json.ips.map((i: { address: string }) => i.address.split('/')[0]).sort(),
    );
    expect(ping(keep, hostAddress())).toBe(true);

    expectOk(await runCni(WEFT_CNI, { command: 'STATUS', conf: conf() }));
    const notDegraded = await runCni(WEFT_CNI, { command: 'STATUS', conf: conf({ degraded: false }) });
    expect(notDegraded.json).toMatchObject({ code: 50 });
    expectOk(await del('wv-keep', keep.path));
  });
});
