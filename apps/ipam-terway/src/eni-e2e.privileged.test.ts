/**
 * End to end with real links: the emulator plugs each attached ENI into a "VPC" bridge
 * namespace and shows it in a "node" namespace (eth<N>, the ENI's MAC). The daemon configures
 * the node (per-ENI tables and rules). Pods are made the way a runtime makes them: the shipped
 * `weft-cni` (dist/bin; build it first) run inside the node's namespace, with
 *   - `mode: veth` + `ipam.type: weft-eni`  (shared ENI, the pod's traffic policy-routed out of its ENI),
 *   - `mode: eni`                           (exclusive ENI: the whole ENI moved into the pod),
 *   - `mode: ipvlan` + `ipam.type: weft-eni` (shared ENI, the pod an ipvlan of the ENI that holds its
 *     address; needs ipvlan: in the VM, scripts/vm/run-in-vm.sh).
 * The `weft-eni` IPAM plugin is also run on its own for what only it answers (CHECK 3, STATUS).
 * Then: the daemon as a separate process, killed at random points × 20.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { privileged, requireCommands, requireKernelFeature, ScratchNetns } from '@weft/testkit';
import { describe, expect, it } from 'vitest';
import { EniDaemonClient } from './daemon/api';
import type { PoolState } from './daemon/store';
import { VethNodeLinks } from './emulator/node-links';
import { expectAgreement } from './testing/agreement';
import { bundleWeftEni } from './testing/bundle';
import { programsOn } from './testing/programs';
import { emulatorOptions, eventually, INSTANCE_ID, TEST_AK, TestEnv } from './testing/env';
import { EcsEmulator } from './emulator/ecs-emulator';

const SMALL_INSTANCE = [
  { id: INSTANCE_ID, instanceType: 'ecs.g7.large', zoneId: 'cn-hangzhou-k', vSwitchId: 'vsw-we-a' },
];
const DIST_BIN = resolve(__dirname, '../../../dist/bin');
const WEFT_CNI = join(DIST_BIN, 'weft-cni');
const VPC_GATEWAY = '10.30.3.253';

function sh(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}

function nodeNamespaces(): { node: ScratchNetns; vpc: ScratchNetns } {
  const node = new ScratchNetns('wen');
  const vpc = new ScratchNetns('wev');
  node.exec(
    'sysctl',
    '-qw',
    'net.ipv4.ip_forward=1',
    'net.ipv4.conf.all.rp_filter=0',
    'net.ipv4.conf.default.rp_filter=0',
  );
  return { node, vpc };
}

interface PluginRun {
  code: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  out: any;
  stderr: string;
}

/** Spawns a CNI plugin asynchronously (the daemon may live in this very process). */
function spawnCni(
  argv: string[],
  command: string,
  containerId: string,
  netns: string,
  conf: object,
): Promise<PluginRun> {
  return new Promise((done, fail) => {
    const p = spawn(argv[0]!, argv.slice(1), {
      env: {
        PATH: process.env.PATH,
        CNI_COMMAND: command,
        CNI_CONTAINERID: containerId,
        CNI_NETNS: netns,
        CNI_IFNAME: 'eth0',
        CNI_PATH: `${DIST_BIN}:/usr/lib/cni`,
        CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=we-pod;IgnoreUnknown=1',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', fail);
    p.on('close', (code) =>
      done({ code: code ?? -1, out: out.trim() ? JSON.parse(out) : undefined, stderr }),
    );
    p.stdin.end(JSON.stringify(conf));
  });
}

/** The bundled `weft-eni` IPAM plugin on its own. */
function runPlugin(
  bin: string,
  command: string,
  containerId: string,
  netns: string,
  socket: string,
  extra: object = {},
): Promise<PluginRun> {
  const conf = {
    cniVersion: '1.1.0',
    name: 'wenet',
    type: 'weft-cni',
    ipam: { type: 'weft-eni', socket },
    ...extra,
  };
  return spawnCni([process.execPath, bin], command, containerId, netns, conf);
}

/** The shipped weft-cni, run inside the node's namespace as the node's runtime would run it. */
class NodeCni {
  readonly wrapper: string;
  constructor(
    readonly node: ScratchNetns,
    readonly work: string,
    readonly socket: string,
  ) {
    this.wrapper = join(work, `weft-cni-in-${node.name}`);
    writeFileSync(this.wrapper, `#!/bin/sh\nexec nsenter --net=${node.path} ${WEFT_CNI} "$@"\n`);
    chmodSync(this.wrapper, 0o755);
  }

  conf(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      cniVersion: '1.1.0',
      name: 'wenet',
      type: 'weft-cni',
      mode: 'veth',
      degraded: true,
      stateDir: join(this.work, 'state'),
      agentSocket: join(this.work, 'no-agent.sock'),
      pinRoot: `/sys/fs/bpf/we-e2e-${process.pid}`,
      ipam: { type: 'weft-eni', socket: this.socket },
      ...extra,
    };
  }

  run(command: string, containerId: string, netns: string, conf: object = this.conf()): Promise<PluginRun> {
    return spawnCni([this.wrapper], command, containerId, netns, conf);
  }

  async ok(command: string, containerId: string, netns: string, conf?: object): Promise<PluginRun> {
    const r = await this.run(command, containerId, netns, conf);
    if (r.code !== 0)
      throw new Error(
        `weft-cni ${command} ${containerId} failed (${r.code}): ${JSON.stringify(r.out)} ${r.stderr}`,
      );
    return r;
  }

  ip(...args: string[]): string {
    return sh('ip', '-n', this.node.name, ...args);
  }

  dispose(): void {
    try {
      execFileSync('rm', ['-rf', `/sys/fs/bpf/we-e2e-${process.pid}`]);
    } catch {
      /* bpffs entries go with rm */
    }
  }
}

function linkByMac(
  ns: ScratchNetns,
  mac: string,
): { ifname: string; ifindex: number; flags: string[] } | undefined {
  const links = JSON.parse(sh('ip', '-n', ns.name, '-j', 'link', 'show')) as Array<{
    ifname: string;
    ifindex: number;
    address: string;
    flags: string[];
    link_type?: string;
  }>;
  return links.find((l) => l.address === mac && !l.ifname.startsWith('wipvl'));
}

const ipOf = (r: PluginRun) => (r.out.ips[0].address as string).split('/')[0]!;

function ping(from: ScratchNetns, to: string): void {
  from.exec('ping', '-c', '1', '-W', '2', to);
}

describe('weft-eni with real links', () => {
  it('shared ENI through weft-cni veth mode: ENI secondary IPs, each pod leaves through its own ENI, DEL cleans rules, routes and addresses', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'ip', 'ping', 'nsenter', 'tc', WEFT_CNI);
    const { node, vpc } = nodeNamespaces();
    const pods = Array.from({ length: 7 }, () => new ScratchNetns('wep'));
    const work = mkdtempSync(join(tmpdir(), 'we-e2e-'));
    let env: TestEnv | undefined;
    let cni: NodeCni | undefined;
    try {
      env = await TestEnv.create('we-e2e', {
        emulator: { instances: SMALL_INSTANCE },
        daemon: { configureHost: true, nodeNetns: node.name, minPoolSize: 0 },
        start: false,
      });
      env.emu.model.hooks = new VethNodeLinks({
        nodeNetns: node.name,
        vpcNetns: vpc.name,
        bridge: 'webr0',
        linkPrefix: 'wev',
      });
      await env.startDaemon();
      const bin = await bundleWeftEni(work);
      const socket = env.config.socketPath;
      cni = new NodeCni(node, work, socket);

      // 7 pods: the 7th does not fit on the first ENI (6 addresses on ecs.g7.large).
      const results: PluginRun[] = [];
      for (let i = 0; i < 7; i++) results.push(await cni.ok('ADD', `weC${i}`, pods[i]!.path));
      // veth mode: the ENI address as /32 behind the link-local gateway; the vSwitch prefix stays in the VPC.
      expect(results[0]!.out.ips[0]).toMatchObject({
        address: expect.stringMatching(/^10\.30\.\d+\.\d+\/32$/),
        gateway: '169.254.1.1',
      });
      expect(new Set(results.map(ipOf)).size).toBe(7);

      const client = new EniDaemonClient(socket);
      const alloc = await Promise.all(
        results.map((_, i) => client.check({ containerId: `weC${i}`, ifname: 'eth0' })),
      );
      // They are the (secondary) ENIs' addresses; the daemon hands out a secondary ENI's primary address too.
      for (const [i, a] of alloc.entries()) {
        expect(a.ipv4!.address).toBe(ipOf(results[i]!));
        const e = env.emu.model.enis.get(a.eni.id)!;
        expect(e.type).toBe('Secondary');
        expect([e.primaryIp, ...e.secondaryIps]).toContain(a.ipv4!.address);
      }
      expect(
        alloc.filter((a) => env!.emu.model.enis.get(a.eni.id)!.secondaryIps.includes(a.ipv4!.address)).length,
      ).toBeGreaterThanOrEqual(5);
      expect(alloc[6]!.eni.id).not.toBe(alloc[0]!.eni.id);

      // Egress from each pod is routed through the ENI that owns its address: a rule per pod
      // address, and `ip route get` from the pod's address (entering on its lxc link) says so.
      const rules = cni.ip('rule', 'show');
      for (const [i, a] of alloc.entries()) {
        const hostIf = results[i]!.out.interfaces[0].name as string;
        expect(rules).toMatch(new RegExp(`^2048:\\s+from ${a.ipv4!.address} lookup ${a.eni.table}`, 'm'));
        expect(rules).toMatch(new RegExp(`^512:\\s+from all to ${a.ipv4!.address} lookup main`, 'm'));
        const via = cni.ip('route', 'get', VPC_GATEWAY, 'from', a.ipv4!.address, 'iif', hostIf);
        expect(via).toContain(`dev ${linkByMac(node, a.eni.mac)!.ifname}`);
        expect(via).toContain(`table ${a.eni.table}`);
      }
      // Real packets: to the VPC gateway, pod to pod on one ENI (through the node) and across
      // two ENIs (through the VPC).
      ping(pods[0]!, VPC_GATEWAY);
      ping(pods[6]!, VPC_GATEWAY);
      ping(pods[0]!, ipOf(results[1]!));
      ping(pods[0]!, ipOf(results[6]!));
      // The datapath is on each pod's host veth (degraded mode: no agent in this test).
      expect(programsOn(node.path, results[0]!.out.interfaces[0].name, 'ingress')).toEqual([
        'from_container',
      ]);

      // CHECK passes; DEL removes rules, routes, links and records, and is idempotent.
      await cni.ok('CHECK', 'weC0', pods[0]!.path, { ...cni.conf(), prevResult: results[0]!.out });
      for (let round = 0; round < 2; round++)
        for (let i = 0; i < 7; i++) await cni.ok('DEL', `weC${i}`, pods[i]!.path);
      expect(cni.ip('rule', 'show')).not.toMatch(/^(512|2048):/m);
      for (const r of results) {
        expect(cni.ip('route', 'show', `${ipOf(r)}/32`).trim()).toBe('');
        expect(cni.ip('-o', 'link', 'show')).not.toContain(r.out.interfaces[0].name);
      }
      expect(Object.keys((await client.state()).allocations)).toEqual([]);
      // The IPAM plugin on its own: CHECK of what is not allocated is 3; STATUS while up; with the
      // daemon gone ADD is "try again later", through weft-cni too, and STATUS says 50.
      expect((await runPlugin(bin, 'CHECK', 'weC0', pods[0]!.path, socket)).out).toMatchObject({ code: 3 });
      expect((await runPlugin(bin, 'STATUS', '', '', socket)).code).toBe(0);
      expect((await cni.run('STATUS', '', '')).code).toBe(0);
      await env.stopDaemon();
      expect((await runPlugin(bin, 'ADD', 'weC9', pods[0]!.path, socket)).out).toMatchObject({ code: 11 });
      expect((await cni.run('ADD', 'weC9', pods[0]!.path)).out).toMatchObject({ code: 11 });
      expect(pods[0]!.exec('ip', '-o', 'link', 'show')).not.toMatch(/eth0/);
      expect((await runPlugin(bin, 'STATUS', '', '', socket)).out).toMatchObject({ code: 50 });
      expect((await cni.run('STATUS', '', '')).out).toMatchObject({ code: 50 });
      await cni.ok('DEL', 'weC9', pods[0]!.path);
    } finally {
      await env?.dispose();
      cni?.dispose();
      for (const ns of [...pods, node, vpc]) ns.remove();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('exclusive ENI through weft-cni mode eni, next to a shared-ENI pod: moved into the pod, connectivity, moved back and released on DEL', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'ip', 'ping', 'nsenter', 'tc', WEFT_CNI);
    const { node, vpc } = nodeNamespaces();
    const exclusivePod = new ScratchNetns('wex');
    const sharedPod = new ScratchNetns('wep');
    const doomedPod = new ScratchNetns('wex');
    const work = mkdtempSync(join(tmpdir(), 'we-excl-'));
    let env: TestEnv | undefined;
    let cni: NodeCni | undefined;
    try {
      env = await TestEnv.create('we-excl', {
        emulator: { instances: SMALL_INSTANCE },
        daemon: { configureHost: true, nodeNetns: node.name, minPoolSize: 0 },
        start: false,
      });
      env.emu.model.hooks = new VethNodeLinks({
        nodeNetns: node.name,
        vpcNetns: vpc.name,
        bridge: 'webr0',
        linkPrefix: 'wex',
      });
      await env.startDaemon();
      const client = env.client;
      cni = new NodeCni(node, work, env.config.socketPath);
      const eniConf = cni.conf({ mode: 'eni' });

      const ex = await cni.ok('ADD', 'weX1', exclusivePod.path, eniConf);
      const a = await client.check({ containerId: 'weX1', ifname: 'eth0' });
      const cloudEni = env.emu.model.enis.get(a.eni.id)!;
      // A whole ENI: its primary address with the vSwitch prefix and gateway, no secondary ones.
      expect(cloudEni.secondaryIps).toEqual([]);
      expect(ex.out).toEqual({
        cniVersion: '1.1.0',
        interfaces: [{ name: 'eth0', mac: a.eni.mac, mtu: 1500, sandbox: exclusivePod.path }],
        ips: [{ address: `${cloudEni.primaryIp}/22`, gateway: VPC_GATEWAY, interface: 0 }],
        routes: [{ dst: '0.0.0.0/0', gw: VPC_GATEWAY }],
      });
      expect(exclusivePod.exec('ip', '-o', 'link', 'show', 'eth0')).toContain(a.eni.mac);
      expect(linkByMac(node, a.eni.mac)).toBeUndefined();
      const nodeName = JSON.parse(
        readFileSync(join(work, 'state', 'cni', 'wenet', 'weX1%3Aeth0.json'), 'utf8'),
      ).nodeIfname as string;
      expect(nodeName).toMatch(/^eth\d$/);
      // Repeated ADD: the same ENI, the same answer.
      expect((await cni.ok('ADD', 'weX1', exclusivePod.path, eniConf)).out).toEqual(ex.out);
      expect(env.emu.model.enis.size).toBe(2); // the primary ENI and this one
      expect(programsOn(exclusivePod.path, 'eth0', 'egress')).toEqual(['from_container']);
      expect(programsOn(exclusivePod.path, 'eth0', 'ingress')).toEqual(['to_container']);

      const shared = await cni.ok('ADD', 'weS1', sharedPod.path);
      const sharedAlloc = await client.check({ containerId: 'weS1', ifname: 'eth0' });
      expect(sharedAlloc.eni.id).not.toBe(a.eni.id); // never the exclusive ENI
      ping(exclusivePod, VPC_GATEWAY);
      ping(sharedPod, VPC_GATEWAY);
      // Pod to pod through the VPC: the exclusive pod is a VPC host of its own.
      ping(exclusivePod, ipOf(shared));
      ping(sharedPod, cloudEni.primaryIp);
      await cni.ok('CHECK', 'weX1', exclusivePod.path, { ...eniConf, prevResult: ex.out });
      exclusivePod.exec('ip', 'addr', 'flush', 'dev', 'eth0');
      const badCheck = await cni.run('CHECK', 'weX1', exclusivePod.path, { ...eniConf, prevResult: ex.out });
      expect(badCheck.out?.msg).toMatch(/lacks address/);

      // DEL with the daemon down: the ENI still goes back to the node (original name, down);
      // the release waits for the daemon (DEL succeeds all the same).
      await env.stopDaemon();
      await cni.ok('DEL', 'weX1', exclusivePod.path, eniConf);
      const back = linkByMac(node, a.eni.mac);
      expect(back?.ifname).toBe(nodeName);
      expect(back?.flags).not.toContain('UP');
      expect(exclusivePod.exec('ip', '-o', 'link', 'show')).not.toMatch(/eth0/);
      await env.startDaemon();
      // The runtime's next DEL (or the daemon's GC) releases it: detached and deleted in the cloud.
      await cni.ok('DEL', 'weX1', exclusivePod.path, eniConf);
      await env.emu.model.settle();
      expect(env.emu.model.enis.has(a.eni.id)).toBe(false);
      expect(linkByMac(node, a.eni.mac)).toBeUndefined();

      // A pod whose netns is gone before DEL: the ENI (a veth here) went with it; DEL releases.
      await cni.ok('ADD', 'weX2', doomedPod.path, eniConf);
      const doomed = await client.check({ containerId: 'weX2', ifname: 'eth0' });
      const doomedPath = doomedPod.path;
      doomedPod.remove();
      await cni.ok('DEL', 'weX2', doomedPath, eniConf);
      await cni.ok('DEL', 'weX2', '', eniConf);
      await env.emu.model.settle();
      expect(env.emu.model.enis.has(doomed.eni.id)).toBe(false);

      await cni.ok('DEL', 'weS1', sharedPod.path);
      expect(cni.ip('rule', 'show')).not.toMatch(/^(512|2048):/m);
      expect(Object.keys((await client.state()).allocations)).toEqual([]);
      expectAgreement(env.emu, await client.state());
    } finally {
      await env?.dispose();
      cni?.dispose();
      for (const ns of [exclusivePod, sharedPod, doomedPod, node, vpc]) ns.remove();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('shared ENI through weft-cni ipvlan mode: each pod an ipvlan of the ENI holding its address', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'ip', 'ping', 'nsenter', WEFT_CNI);
    requireKernelFeature(ctx, 'ipvlan'); // this host has none: run it in the VM (scripts/vm/run-in-vm.sh)
    const { node, vpc } = nodeNamespaces();
    const pods = Array.from({ length: 7 }, () => new ScratchNetns('wei'));
    const work = mkdtempSync(join(tmpdir(), 'we-ipvl-'));
    let env: TestEnv | undefined;
    let cni: NodeCni | undefined;
    try {
      env = await TestEnv.create('we-ipvl', {
        emulator: { instances: SMALL_INSTANCE },
        daemon: { configureHost: true, nodeNetns: node.name, minPoolSize: 0 },
        start: false,
      });
      env.emu.model.hooks = new VethNodeLinks({
        nodeNetns: node.name,
        vpcNetns: vpc.name,
        bridge: 'webr0',
        linkPrefix: 'wei',
      });
      await env.startDaemon();
      cni = new NodeCni(node, work, env.config.socketPath);
      // The node's own address (its primary ENI's, which the emulated node does not plug in): the
      // host routes to the pods come from it, and the pods reach it through their ENI's ipvlan.
      const nodeIp = [...env.emu.model.enis.values()].find((e) => e.type === 'Primary')!.primaryIp;
      cni.ip('addr', 'add', `${nodeIp}/32`, 'dev', 'lo');
      const conf = cni.conf({ mode: 'ipvlan', ipvlanMode: 'l2' });
      const results: PluginRun[] = [];
      for (let i = 0; i < 7; i++) results.push(await cni.ok('ADD', `weI${i}`, pods[i]!.path, conf));
      const alloc = await Promise.all(
        results.map((_, i) => env!.client.check({ containerId: `weI${i}`, ifname: 'eth0' })),
      );
      expect(alloc[6]!.eni.id).not.toBe(alloc[0]!.eni.id);
      for (const [i, a] of alloc.entries()) {
        // L2: the vSwitch prefix and gateway, and the pod's ipvlan hangs off the ENI that owns the address.
        expect(results[i]!.out.ips[0]).toEqual({
          address: `${a.ipv4!.address}/22`,
          gateway: VPC_GATEWAY,
          interface: 0,
        });
        const link = JSON.parse(pods[i]!.exec('ip', '-d', '-j', 'link', 'show', 'eth0'))[0];
        expect(link.linkinfo.info_kind).toBe('ipvlan');
        expect(link.address).toBe(a.eni.mac);
        expect(link.link_index).toBe(linkByMac(node, a.eni.mac)!.ifindex);
      }
      ping(pods[0]!, VPC_GATEWAY);
      ping(pods[6]!, VPC_GATEWAY);
      ping(pods[0]!, ipOf(results[1]!)); // same ENI: the ipvlan switch
      ping(pods[0]!, ipOf(results[6]!)); // other ENI: through the VPC
      // The node reaches its pods through its slave of each ENI, and they it.
      node.exec('ping', '-c', '1', '-W', '2', ipOf(results[0]!));
      node.exec('ping', '-c', '1', '-W', '2', ipOf(results[6]!));
      ping(pods[6]!, nodeIp);
      await cni.ok('CHECK', 'weI0', pods[0]!.path, { ...conf, prevResult: results[0]!.out });
      for (let i = 0; i < 7; i++) await cni.ok('DEL', `weI${i}`, pods[i]!.path, conf);
      await cni.ok('DEL', 'weI0', pods[0]!.path, conf); // idempotent (every exec is slow under emulation)
      for (const p of pods) expect(p.exec('ip', '-o', 'link', 'show')).not.toMatch(/eth0/);
      expect(cni.ip('rule', 'show')).not.toMatch(/^(512|2048):/m);
      expect(cni.ip('-o', 'link', 'show')).not.toMatch(/wipvl/);
      expect(Object.keys((await env.client.state()).allocations)).toEqual([]);
    } finally {
      await env?.dispose();
      cni?.dispose();
      for (const ns of [...pods, node, vpc]) ns.remove();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('survives being killed at random points during allocation (× 20): records and cloud agree after restart and GC', async (ctx) => {
    privileged(ctx);
    const { node, vpc } = nodeNamespaces();
    const work = mkdtempSync(join(tmpdir(), 'we-kill-'));
    const instances = [{ ...SMALL_INSTANCE[0]!, instanceType: 'ecs.g7.xlarge' }]; // 3 secondary ENIs × 15
    const emu = await new EcsEmulator(emulatorOptions({ instances, attachDelayMs: 120 })).start();
    emu.model.hooks = new VethNodeLinks({
      nodeNetns: node.name,
      vpcNetns: vpc.name,
      bridge: 'webr0',
      linkPrefix: 'wek',
    });
    let child: ChildProcess | undefined;
    try {
      const bin = await bundleWeftEni(work);
      const socket = join(work, 'eni.sock');
      const stateFile = join(work, 'state', 'eni-pool.json');
      const cfg = join(work, 'eni.json');
      // Terway's keys where they mean the same thing, weft's for the rest.
      writeFileSync(
        cfg,
        JSON.stringify({
          min_pool_size: 2,
          max_pool_size: 3,
          security_group: 'sg-weft',
          vswitches: { 'cn-hangzhou-k': ['vsw-we-a', 'vsw-we-b'] },
          eni_tags: { 'weft.io/cluster': 'kill' },
          ip_stack: 'ipv4',
          socketPath: socket,
          stateDir: join(work, 'state'),
          metadataEndpoint: emu.url,
          configureHost: true,
          nodeNetns: node.name,
          // Idle addresses go back at once, so kills also land in the middle of Unassign calls.
          idleTimeoutMs: 0,
          reclaimIntervalMs: 250,
          ecs: { endpoint: emu.endpoint, protocol: 'http', ...TEST_AK },
          gcIntervalMs: 3_600_000,
          attachTimeoutMs: 10_000,
          allocateTimeoutMs: 20_000,
        }),
      );
      const client = new EniDaemonClient(socket, 30_000);
      const start = async () => {
        rmSync(socket, { force: true });
        child = spawn(process.execPath, [bin, 'daemon', '--config', cfg], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
        await eventually(
          async () =>
            client.status().then(
              (s) => s.ready,
              () => false,
            ),
          15_000,
          () => `daemon start: ${stderr.slice(-500)}`,
        );
      };
      const stopGracefully = async () => {
        const c = child!;
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await exited;
      };
      const live = new Map<string, string>(); // allocations the "runtime" saw succeed: key -> ip
      let kills = 0;
      for (let round = 0; round < 20; round++) {
        await start();
        // Everything that ever succeeded is still there with the same address.
        const st0 = await client.state();
        for (const [key, ip] of live) expect(st0.allocations[key]?.ipv4, `${key} lost`).toBe(ip);
        const ops: Promise<void>[] = [];
        for (let j = 0; j < 8; j++) {
          const containerId = `k${round}x${j}`;
          ops.push(
            client.allocate({ containerId, ifname: 'eth0', netns: '/proc/1/ns/net' }).then(
              (a) => void live.set(`${containerId}/eth0`, a.ipv4!.address),
              () => undefined,
            ),
          );
        }
        // Some pods go away too: deleted pods are gone for the runtime whether or not their DEL got an answer.
        for (const key of [...live.keys()].filter(() => Math.random() < 0.4)) {
          live.delete(key);
          ops.push(
            client.release({ containerId: key.split('/')[0]!, ifname: 'eth0' }).then(
              () => undefined,
              () => undefined,
            ),
          );
        }
        if (round % 4 === 1)
          emu.injectFault({
            kind: 'server-error-after-commit',
            action: 'AssignPrivateIpAddresses',
            times: 1,
          });
        if (round % 4 === 3) emu.injectFault({ kind: 'throttle', times: 3 });
        await new Promise((r) => setTimeout(r, Math.random() * 500));
        const c = child!;
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        kills++;
        await exited;
        await Promise.all(ops);
        emu.clearFaults();
        // Restart, GC against what the runtime knows is alive, then a clean stop to compare.
        await start();
        await client.gc([...live.keys()].map((k) => ({ containerId: k.split('/')[0]!, ifname: 'eth0' })));
        await stopGracefully();
        await emu.model.settle();
        const state = JSON.parse(readFileSync(stateFile, 'utf8')) as PoolState;
        expectAgreement(emu, state);
        expect(new Set(Object.keys(state.allocations))).toEqual(new Set(live.keys()));
        const enis = [...emu.model.enis.values()].filter((e) => e.type === 'Secondary');
        expect(enis.length).toBeLessThanOrEqual(3); // ecs.g7.xlarge: 4 ENIs, one primary
      }
      expect(kills).toBe(20);
      const count = (a: string) => emu.callsOf(a).length;
      console.log(
        `kill test: ${kills} kills, ${live.size} pods alive at the end, ${emu.calls.length} ECS calls ` +
          `(Create ${count('CreateNetworkInterface')}, Assign ${count('AssignPrivateIpAddresses')}, Unassign ${count('UnassignPrivateIpAddresses')})`,
      );
    } finally {
      if (child && child.exitCode === null) child.kill('SIGKILL');
      await emu.close();
      node.remove();
      vpc.remove();
      rmSync(work, { recursive: true, force: true });
    }
  }, 240_000);
});
