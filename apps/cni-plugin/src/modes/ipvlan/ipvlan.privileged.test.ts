/**
 * weft-cni in ipvlan mode, the shipped executable against the real kernel: a scratch node netns
 * with the master (ipvlan-testbed.ts), pods as scratch namespaces, weft-host-local IPAM, the
 * datapath attached in degraded mode inside the pods (no agent here).
 *
 * This host's kernel has no ipvlan: the end-to-end tests say so (SKIPPED, with the reason) and
 * one test checks what a user of such a kernel gets. They run for real in the VM:
 *   scripts/vm/run-in-vm.sh 'npx vitest run apps/cni-plugin/src/modes/ipvlan'
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  privileged,
  requireCommands,
  requireKernelFeature,
  ScratchNetns,
  type SkipContext,
} from '@weft/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCni, type CniOutcome } from '../../testing/cni-run';
import { IpvlanTestbed, kernelHasIpvlan, MASTER, ping, programsOn, WEFT_CNI } from './ipvlan-testbed';

const NET = 'wipnet';
let work = '';
let pinRoot = '';
let bedCount = 0;
const beds: IpvlanTestbed[] = [];
const namespaces: ScratchNetns[] = [];

function bed(): IpvlanTestbed {
  const b = new IpvlanTestbed(work, 10 + bedCount++);
  beds.push(b);
  return b;
}

function pod(prefix = 'wipp'): ScratchNetns {
  const ns = new ScratchNetns(prefix);
  namespaces.push(ns);
  return ns;
}

function conf(b: IpvlanTestbed, ipvlanMode: string, extra: Record<string, unknown> = {}) {
  const subnet = ipvlanMode === 'l2' ? b.l2Subnet : b.l3Subnet;
  return {
    cniVersion: '1.1.0',
    name: NET,
    type: 'weft-cni',
    mode: 'ipvlan',
    master: MASTER,
    ipvlanMode,
    degraded: true,
    stateDir: join(work, 'state'),
    agentSocket: join(work, 'no-agent.sock'),
    pinRoot,
    ipam: {
      type: 'weft-host-local',
      ranges: [[{ subnet, rangeStart: subnet.replace(/0\/24$/, '10'), gateway: b.gateway }]],
      dataDir: join(work, 'ipam'),
    },
    ...extra,
  };
}

const run = (b: IpvlanTestbed, command: 'ADD' | 'DEL' | 'CHECK', id: string, netns: string, c: object) =>
  runCni(b.plugin, { command, conf: c, containerId: id, netns });

function expectOk(r: CniOutcome): void {
  if (r.code !== 0) throw new Error(`plugin failed (${r.code}): ${r.stdout} ${r.stderr}`);
}

function reservedIps(): string[] {
  const dir = join(work, 'ipam', NET);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip'));
}

function records(): string[] {
  const dir = join(work, 'state', 'cni', NET);
  return existsSync(dir) ? readdirSync(dir) : [];
}

function needsIpvlan(ctx: SkipContext): void {
  privileged(ctx);
  requireCommands(ctx, 'ip', 'ping', 'nsenter', 'tc', WEFT_CNI);
  requireKernelFeature(ctx, 'ipvlan'); // SKIPPED with the kernel's version when it has none
}

describe('weft-cni ipvlan mode', () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'wipvl-'));
    pinRoot = `/sys/fs/bpf/wipvl-${process.pid}`;
  });

  afterAll(() => {
    for (const ns of namespaces) ns.remove();
    for (const b of beds) b.remove();
    try {
      execFileSync('rm', ['-rf', pinRoot]);
    } catch {
      /* bpffs entries go with rm */
    }
    rmSync(work, { recursive: true, force: true });
  });

  it('refuses a missing master, an unknown master, a bad ipvlanMode or MTU with code 7, before IPAM, changing nothing', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'ip', 'nsenter', WEFT_CNI);
    const b = bed();
    const a = pod();
    const linksBefore = b.links();
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ master: undefined }, /master undefined .*required in ipvlan mode/],
      [{ master: 'wnosuch0' }, /master "wnosuch0" does not exist/],
      [{ master: 'lo' }, /not an Ethernet device/],
      [{ master: 'bad/name' }, /master "bad\/name"/],
      [{ ipvlanMode: 'l4' }, /ipvlanMode "l4" \(expected l2, l3, l3s\)/],
      [{ ipvlanMode: 3 }, /ipvlanMode 3/],
      [{ mtu: 9000 }, /mtu 9000 \(expected at most the MTU of master wimst0 \(1500\)\)/],
      [{ ipvlanHostLink: 'yes' }, /ipvlanHostLink "yes"/],
      [{ ipam: { type: 'weft-eni' } }, /no master with ipam weft-eni/],
      [{ ipam: undefined }, /"ipam" section/],
    ];
    for (const [bad, msg] of cases) {
      const r = await run(b, 'ADD', 'wip-bad', a.path, { ...conf(b, 'l2'), ...bad });
      expect(r.json?.code, JSON.stringify(bad)).toBe(7);
      expect(r.json.msg, JSON.stringify(bad)).toMatch(msg);
    }
    expect(b.links()).toEqual(linksBefore);
    expect(a.exec('ip', '-o', 'link', 'show')).not.toMatch(/eth0/);
    expect(reservedIps()).toEqual([]);
    expect(records()).toEqual([]);
  });

  it('on a kernel without ipvlan: ADD fails with a spec error naming the missing driver and leaves nothing', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'ip', 'nsenter', WEFT_CNI);
    if (kernelHasIpvlan()) {
      console.log('SKIPPED: this kernel has ipvlan (the test is for kernels without it)');
      ctx.skip();
    }
    const b = bed();
    const a = pod();
    const r = await run(b, 'ADD', 'wip-nokernel', a.path, conf(b, 'l2'));
    expect(r.code).not.toBe(0);
    expect(r.json.msg).toMatch(/ipvlan .*this kernel has no driver for the link kind/);
    expect(reservedIps()).toEqual([]);
    expect(records()).toEqual([]);
    expect(b.links().filter((l) => l.startsWith('wipvl'))).toEqual([]);
    expectOk(await run(b, 'DEL', 'wip-nokernel', a.path, conf(b, 'l2')));
  });

  for (const mode of ['l2', 'l3'] as const) {
    it(`${mode}: two pods reach each other, the gateway's side and the node; datapath in the pods; CHECK; DEL x3 leaves nothing`, async (ctx) => {
      needsIpvlan(ctx);
      const b = bed();
      const [a, c] = [pod(), pod()];
      const cf = conf(b, mode);
      const ra = await run(b, 'ADD', `wip-${mode}-a`, a.path, cf);
      const rc = await run(b, 'ADD', `wip-${mode}-c`, c.path, cf);
      expectOk(ra);
      expectOk(rc);
      const ipA = ra.json.ips[0].address.split('/')[0];
      const ipC = rc.json.ips[0].address.split('/')[0];
      expect(ra.json.interfaces).toEqual([
        { name: 'eth0', mac: expect.stringMatching(/^[0-9a-f:]{17}$/), mtu: 1500, sandbox: a.path },
      ]);
      const masterMac = JSON.parse(b.ip('-j', 'link', 'show', MASTER))[0].address;
      expect(ra.json.interfaces[0].mac).toBe(masterMac); // an ipvlan link has its master's MAC
      const link = JSON.parse(a.exec('ip', '-d', '-j', 'link', 'show', 'eth0'))[0];
      expect(link.linkinfo.info_kind).toBe('ipvlan');
      expect(link.linkinfo.info_data.mode).toBe(mode);
      if (mode === 'l2') {
        expect(ra.json.ips[0]).toEqual({ address: `${ipA}/24`, gateway: b.gateway, interface: 0 });
        expect(ra.json.routes).toEqual([{ dst: '0.0.0.0/0', gw: b.gateway }]);
        expect(a.exec('ip', 'route', 'show', 'default')).toMatch(`default via ${b.gateway} dev eth0`);
      } else {
        expect(ra.json.ips[0]).toEqual({ address: `${ipA}/32`, interface: 0 });
        expect(ra.json.routes).toEqual([{ dst: '0.0.0.0/0' }]);
        expect(a.exec('ip', 'route', 'show', 'default')).toMatch(/default dev eth0 scope link/);
      }
      expect(ping(a, ipC)).toBe(true);
      expect(ping(c, ipA)).toBe(true);
      expect(ping(a, b.gateway)).toBe(true); // out of the master, to the other end of the wire
      // The node reaches its pods (and they it) through its own slave of the master.
      const hostLink = b.links().find((l) => /^wipvl\d+$/.test(l));
      expect(hostLink).toBeDefined();
      expect(b.ip('route', 'show', `${ipA}/32`)).toMatch(`dev ${hostLink}`);
      expect(b.ip('route', 'show', `${ipA}/32`)).toMatch(`src ${b.nodeIp}`);
      expect(ping(b.node, ipA)).toBe(true);
      // L2: the node's address is pinned in the pod (no ARP, which a VPC gateway would answer too).
      if (mode === 'l2')
        expect(a.exec('ip', 'route', 'show', `${b.nodeIp}/32`)).toMatch(/dev eth0 scope link/);
      expect(ping(a, b.nodeIp)).toBe(true);
      // The datapath sits on the pod interface inside the pod: from-container on egress.
      expect(programsOn(a.path, 'eth0', 'egress')).toEqual(['from_container']);
      expect(programsOn(a.path, 'eth0', 'ingress')).toEqual(['to_container']);

      expectOk(await run(b, 'CHECK', `wip-${mode}-a`, a.path, { ...cf, prevResult: ra.json }));
      // CHECK notices a pod address that went away.
      c.exec('ip', 'addr', 'del', rc.json.ips[0].address, 'dev', 'eth0');
      const bad = await run(b, 'CHECK', `wip-${mode}-c`, c.path, { ...cf, prevResult: rc.json });
      expect(bad.json?.msg).toMatch(/lacks address/);

      for (let i = 0; i < 3; i++) {
        expectOk(await run(b, 'DEL', `wip-${mode}-a`, a.path, cf));
        expectOk(await run(b, 'DEL', `wip-${mode}-c`, c.path, cf));
      }
      expect(a.exec('ip', '-o', 'link', 'show')).not.toMatch(/eth0/);
      expect(c.exec('ip', '-o', 'link', 'show')).not.toMatch(/eth0/);
      expect(b.links().filter((l) => l.startsWith('wipvl'))).toEqual([]);
      expect(b.ip('route', 'show', `${ipA}/32`).trim()).toBe('');
      expect(reservedIps()).toEqual([]);
      expect(records()).toEqual([]);
      expect(readdirSync(join(work, 'state', 'queue'))).toEqual([]);
    });
  }

  it('l3s: a pod gets its /32 and reaches the node; a second network on the master in another mode is refused (7)', async (ctx) => {
    needsIpvlan(ctx);
    const b = bed();
    const a = pod();
    const cf = conf(b, 'l3s');
    const r = await run(b, 'ADD', 'wip-l3s', a.path, cf);
    expectOk(r);
    expect(JSON.parse(a.exec('ip', '-d', '-j', 'link', 'show', 'eth0'))[0].linkinfo.info_data.mode).toBe(
      'l3s',
    );
    expect(ping(b.node, r.json.ips[0].address.split('/')[0])).toBe(true);
    const other = pod();
    const clash = await run(b, 'ADD', 'wip-l2clash', other.path, conf(b, 'l2'));
    expect(clash.json).toMatchObject({
      code: 7,
      msg: expect.stringMatching(/master wimst0 are in mode l3s/),
    });
    expect(reservedIps()).toHaveLength(1);
    expectOk(await run(b, 'DEL', 'wip-l3s', a.path, cf));
    expect(reservedIps()).toEqual([]);
  });

  it('repeated ADD is safe; DEL after the netns is gone releases everything; GC keeps only valid attachments', async (ctx) => {
    needsIpvlan(ctx);
    const b = bed();
    const cf = conf(b, 'l2');
    const a = pod();
    const first = await run(b, 'ADD', 'wip-rep', a.path, cf);
    const second = await run(b, 'ADD', 'wip-rep', a.path, cf);
    expectOk(first);
    expectOk(second);
    expect(second.json.ips).toEqual(first.json.ips);
    expect(ping(a, b.gateway)).toBe(true);
    // An eth0 that is not weft's is a conflict (111), and the address goes back.
    const squatter = pod();
    squatter.exec('ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0');
    const conflict = await run(b, 'ADD', 'wip-squat', squatter.path, cf);
    expect(conflict.json?.code).toBe(111);
    expect(reservedIps()).toHaveLength(1);

    const gone = pod();
    const rg = await run(b, 'ADD', 'wip-gone', gone.path, cf);
    expectOk(rg);
    const goneIp = rg.json.ips[0].address.split('/')[0];
    const path = gone.path;
    gone.remove();
    expectOk(await run(b, 'DEL', 'wip-gone', path, cf));
    expectOk(await run(b, 'DEL', 'wip-gone', '', cf));
    expect(b.ip('route', 'show', `${goneIp}/32`).trim()).toBe('');

    const drop = pod();
    expectOk(await run(b, 'ADD', 'wip-drop', drop.path, cf));
    const gc = await runCni(b.plugin, {
      command: 'GC',
      conf: { ...cf, 'cni.dev/valid-attachments': [{ containerID: 'wip-rep', ifname: 'eth0' }] },
    });
    expectOk(gc);
    expect(drop.exec('ip', '-o', 'link', 'show')).not.toMatch(/eth0/);
    expect(reservedIps()).toHaveLength(1);
    expect(ping(a, b.gateway)).toBe(true);
    expect(ping(b.node, first.json.ips[0].address.split('/')[0])).toBe(true);

    expectOk(await runCni(b.plugin, { command: 'STATUS', conf: cf }));
    const noMaster = await runCni(b.plugin, { command: 'STATUS', conf: { ...cf, master: 'wnosuch0' } });
    expect(noMaster.json).toMatchObject({ code: 50 });
    expectOk(await run(b, 'DEL', 'wip-rep', a.path, cf));
    expect(reservedIps()).toEqual([]);
    expect(b.links().filter((l) => l.startsWith('wipvl'))).toEqual([]);

    // The reference host-local refuses a duplicate allocation: a repeated ADD releases first, and
    // the pod ends with its interface and exactly one reservation.
    const refDir = join(work, 'ipam-ref');
    const rcf = conf(b, 'l2', { ipam: { ...cf.ipam, type: 'host-local', dataDir: refDir } });
    const r = pod();
    expectOk(await run(b, 'ADD', 'wip-ref', r.path, rcf));
    expectOk(await run(b, 'ADD', 'wip-ref', r.path, rcf));
    expect(r.exec('ip', '-o', 'link', 'show')).toMatch(/eth0/);
    const refReserved = () => readdirSync(join(refDir, NET)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
    expect(refReserved()).toHaveLength(1);
    expect(ping(r, b.gateway)).toBe(true);
    expectOk(await run(b, 'DEL', 'wip-ref', r.path, rcf));
    expect(refReserved()).toEqual([]);
  });

  it('without the node-side link (ipvlanHostLink: false) pods still reach each other and the gateway', async (ctx) => {
    needsIpvlan(ctx);
    const b = bed();
    const cf = conf(b, 'l2', { ipvlanHostLink: false });
    const [a, c] = [pod(), pod()];
    const ra = await run(b, 'ADD', 'wip-nh-a', a.path, cf);
    const rc = await run(b, 'ADD', 'wip-nh-c', c.path, cf);
    expectOk(ra);
    expectOk(rc);
    expect(ping(a, rc.json.ips[0].address.split('/')[0])).toBe(true);
    expect(ping(a, b.gateway)).toBe(true);
    expect(b.links().filter((l) => l.startsWith('wipvl'))).toEqual([]);
    expectOk(await run(b, 'CHECK', 'wip-nh-a', a.path, { ...cf, prevResult: ra.json }));
    expectOk(await run(b, 'DEL', 'wip-nh-a', a.path, cf));
    expectOk(await run(b, 'DEL', 'wip-nh-c', c.path, cf));
    expect(reservedIps()).toEqual([]);
  });
});
