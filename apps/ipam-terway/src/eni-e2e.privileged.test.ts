/**
 * End to end with real links: the emulator plugs each attached ENI into a "VPC" bridge
 * namespace and shows it in a "node" namespace (eth<N>, the ENI's MAC). The daemon configures
 * the node; `weft-eni` (the bundled program) is run as a CNI IPAM plugin; pods are veth'd
 * namespaces. Then: the daemon as a separate process, killed at random points × 20.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privileged, requireCommands, ScratchNetns } from '@weft/testkit';
import { describe, expect, it } from 'vitest';
import { EniDaemonClient } from './daemon/api';
import type { PoolState } from './daemon/store';
import { VethNodeLinks } from './emulator/node-links';
import { moveEniBack, moveEniIntoPod } from './exclusive/eni-netns';
import { expectAgreement } from './testing/agreement';
import { bundleWeftEni } from './testing/bundle';
import { emulatorOptions, eventually, INSTANCE_ID, TEST_AK, TestEnv } from './testing/env';
import { EcsEmulator } from './emulator/ecs-emulator';

const SMALL_INSTANCE = [
  { id: INSTANCE_ID, instanceType: 'ecs.g7.large', zoneId: 'cn-hangzhou-k', vSwitchId: 'vsw-we-a' },
];

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
}

/** Runs the bundled plugin asynchronously (the daemon may live in this very process). */
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
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [bin], {
      env: {
        PATH: process.env.PATH,
        CNI_COMMAND: command,
        CNI_CONTAINERID: containerId,
        CNI_NETNS: netns,
        CNI_IFNAME: 'eth0',
        CNI_PATH: '/usr/lib/cni',
        CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=we-pod;IgnoreUnknown=1',
      },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out: out.trim() ? JSON.parse(out) : undefined }));
    p.stdin.end(JSON.stringify(conf));
  });
}

/** What weft-cni does for a veth pod, minimally: veth, address, host route, default via a link-local next hop. */
function plumbPod(node: ScratchNetns, pod: ScratchNetns, hostIf: string, ip: string): void {
  sh('ip', '-n', node.name, 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.name);
  sh('ip', '-n', node.name, 'link', 'set', hostIf, 'up');
  const hostMac = JSON.parse(sh('ip', '-n', node.name, '-j', 'link', 'show', hostIf))[0].address as string;
  pod.exec('ip', 'addr', 'add', `${ip}/32`, 'dev', 'eth0');
  pod.exec('ip', 'link', 'set', 'eth0', 'up');
  pod.exec('ip', 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
  pod.exec('ip', 'neigh', 'add', '169.254.1.1', 'lladdr', hostMac, 'dev', 'eth0', 'nud', 'permanent');
  pod.exec('ip', 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
  sh('ip', '-n', node.name, 'route', 'add', `${ip}/32`, 'dev', hostIf);
}

function linkByMac(ns: ScratchNetns, mac: string): string {
  const links = JSON.parse(sh('ip', '-n', ns.name, '-j', 'link', 'show')) as Array<{
    ifname: string;
    address: string;
  }>;
  return links.find((l) => l.address === mac)!.ifname;
}

describe('weft-eni with real links', () => {
  it('gives shared-ENI pods addresses through the plugin, routes each out of its own ENI, cleans up on DEL', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'ip', 'ping');
    const { node, vpc } = nodeNamespaces();
    const pods = [new ScratchNetns('wep'), new ScratchNetns('wep')];
    const work = mkdtempSync(join(tmpdir(), 'we-e2e-'));
    let env: TestEnv | undefined;
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

      // 7 ADDs: the 7th does not fit on the first ENI (6 addresses on ecs.g7.large).
      const results: PluginRun['out'][] = [];
      for (let i = 0; i < 7; i++) {
        const r = await runPlugin(bin, 'ADD', `weC${i}`, pods[i === 6 ? 1 : 0]!.path, socket);
        expect(r.code, JSON.stringify(r.out)).toBe(0);
        results.push(r.out);
      }
      expect(results[0].ips[0]).toMatchObject({
        address: expect.stringMatching(/^10\.30\.\d+\.\d+\/22$/),
        gateway: '10.30.3.253',
      });
      const ip = (i: number) => (results[i].ips[0].address as string).split('/')[0]!;
      expect(new Set(results.map((_, i) => ip(i))).size).toBe(7);

      const client = new EniDaemonClient(socket);
      const a0 = await client.check({ containerId: 'weC0', ifname: 'eth0' });
      const a6 = await client.check({ containerId: 'weC6', ifname: 'eth0' });
      expect(a6.eni.id).not.toBe(a0.eni.id);

      plumbPod(node, pods[0]!, 'wehost0', ip(0));
      plumbPod(node, pods[1]!, 'wehost1', ip(6));
      // Egress from each pod is routed through the ENI that owns its address.
      const viaFor = (podIp: string, hostIf: string) =>
        sh('ip', '-n', node.name, 'route', 'get', '10.30.3.253', 'from', podIp, 'iif', hostIf);
      expect(viaFor(ip(0), 'wehost0')).toContain(`dev ${linkByMac(node, a0.eni.mac)}`);
      expect(viaFor(ip(6), 'wehost1')).toContain(`dev ${linkByMac(node, a6.eni.mac)}`);
      // Real packets: to the VPC gateway, and pod to pod across two ENIs (through the VPC).
      pods[0]!.exec('ping', '-c', '1', '-W', '2', '10.30.3.253');
      pods[1]!.exec('ping', '-c', '1', '-W', '2', '10.30.3.253');
      pods[0]!.exec('ping', '-c', '1', '-W', '2', ip(6));

      // CHECK passes; DEL removes the rules and the records, and is idempotent.
      expect(
        (
          await runPlugin(bin, 'CHECK', 'weC0', pods[0]!.path, socket, {
            prevResult: { cniVersion: '1.1.0', ips: results[0].ips },
          })
        ).code,
      ).toBe(0);
      for (let i = 0; i < 7; i++)
        expect((await runPlugin(bin, 'DEL', `weC${i}`, pods[0]!.path, socket)).code).toBe(0);
      expect((await runPlugin(bin, 'DEL', 'weC0', pods[0]!.path, socket)).code).toBe(0);
      expect(sh('ip', '-n', node.name, 'rule', 'show')).not.toMatch(/^(512|2048):/m);
      expect(Object.keys((await client.state()).allocations)).toEqual([]);
      const chk = await runPlugin(bin, 'CHECK', 'weC0', pods[0]!.path, socket);
      expect(chk.out).toMatchObject({ code: 3 });
      // STATUS while up; ADD with the daemon gone is "try again later".
      expect((await runPlugin(bin, 'STATUS', '', '', socket)).code).toBe(0);
      await env.stopDaemon();
      expect((await runPlugin(bin, 'ADD', 'weC9', pods[0]!.path, socket)).out).toMatchObject({ code: 11 });
      expect((await runPlugin(bin, 'STATUS', '', '', socket)).out).toMatchObject({ code: 50 });
      expect((await runPlugin(bin, 'DEL', 'weC9', pods[0]!.path, socket)).code).toBe(0);
    } finally {
      await env?.dispose();
      for (const ns of [...pods, node, vpc]) ns.remove();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('gives an exclusive-ENI pod a whole ENI next to shared-ENI pods, and cleans both up on DEL', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'ip', 'ping', 'nsenter');
    const { node, vpc } = nodeNamespaces();
    const exclusivePod = new ScratchNetns('wex');
    const sharedPod = new ScratchNetns('wep');
    let env: TestEnv | undefined;
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
      const ex = await client.allocate({
        containerId: 'weX1',
        ifname: 'eth0',
        netns: exclusivePod.path,
        exclusive: true,
      });
      const shared = await client.allocate({ containerId: 'weS1', ifname: 'eth0', netns: sharedPod.path });
      expect(shared.eni.id).not.toBe(ex.eni.id);
      // Idempotent, and the exclusive ENI is never used for shared addresses.
      expect(
        await client.allocate({
          containerId: 'weX1',
          ifname: 'eth0',
          netns: exclusivePod.path,
          exclusive: true,
        }),
      ).toEqual(ex);
      const cloudEni = env.emu.model.enis.get(ex.eni.id)!;
      expect(cloudEni.secondaryIps).toEqual([]);
      expect(ex.ipv4!.address).toBe(cloudEni.primaryIp);

      const nodeName = await moveEniIntoPod(node.name, exclusivePod.path, {
        mac: ex.eni.mac,
        ifname: 'eth0',
        address: ex.ipv4!.address,
        prefixLength: ex.ipv4!.prefixLength,
        gateway: ex.ipv4!.gateway,
      });
      expect(nodeName).toMatch(/^eth\d$/);
      expect(exclusivePod.exec('ip', '-o', 'link', 'show', 'eth0')).toContain(ex.eni.mac);
      plumbPod(node, sharedPod, 'wehost9', shared.ipv4!.address);
      exclusivePod.exec('ping', '-c', '1', '-W', '2', ex.ipv4!.gateway);
      sharedPod.exec('ping', '-c', '1', '-W', '2', '10.30.3.253');
      // Pod to pod through the VPC: the exclusive pod is a VPC host of its own.
      exclusivePod.exec('ping', '-c', '1', '-W', '2', shared.ipv4!.address);

      await moveEniBack(node.name, exclusivePod.path, ex.eni.mac, nodeName);
      expect(sh('ip', '-n', node.name, '-o', 'link', 'show', nodeName)).toContain(ex.eni.mac);
      expect(await client.release({ containerId: 'weX1', ifname: 'eth0' })).toEqual({ released: true });
      expect(await client.release({ containerId: 'weS1', ifname: 'eth0' })).toEqual({ released: true });
      await env.emu.model.settle();
      expect(env.emu.model.enis.has(ex.eni.id)).toBe(false);
      expect(sh('ip', '-n', node.name, '-o', 'link')).not.toContain(ex.eni.mac);
      expectAgreement(env.emu, await client.state());
    } finally {
      await env?.dispose();
      for (const ns of [exclusivePod, sharedPod, node, vpc]) ns.remove();
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
          `daemon start: ${stderr.slice(-500)}`,
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
