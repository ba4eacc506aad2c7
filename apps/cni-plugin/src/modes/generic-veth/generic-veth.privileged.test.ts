/**
 * weft-cni chained in generic-veth mode, the shipped executable in real conflists with the
 * reference plugins from /usr/lib/cni, on real namespaces:
 *   [flannel (stand-in) → bridge + host-local], [ptp + host-local], [bridge + host-local]
 * each followed by weft-cni, portmap, bandwidth and tuning. The datapath is attached by weft-cni
 * itself (degraded: no agent here); every state and data dir is a temp dir.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privileged, requireCommands, ScratchNetns, scratchName } from '@weft/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CLSACT_ENV,
  TCX_ENV,
  canonical,
  chainPath,
  datapathEndpoints,
  flannelBinDir,
  hostAddress,
  linkExists,
  normalise,
  ping,
  queueEntries,
  records,
  tcFilters,
  weftDirs,
  weftProgramsOn,
  weftEntry,
  type WeftDirs,
} from '../../testing/chain-fixtures';
import { DIST_BIN, runCni } from '../../testing/cni-run';
import {
  addList,
  checkList,
  delList,
  gcList,
  type ConfList,
  type ListOutcome,
  type RuntimeConf,
} from '../../testing/conflist-run';

const WEFT_CNI = join(DIST_BIN, 'weft-cni');
const GOLDEN = join(__dirname, 'golden');
let work = '';
let dirs: WeftDirs;
let path = '';
const namespaces: ScratchNetns[] = [];
const bridges: string[] = [];
/** DELs of everything added, run after each test (a failed assertion must not leak iptables rules). */
const cleanups: Array<() => Promise<unknown>> = [];

async function added(list: ConfList, rt: RuntimeConf): Promise<ListOutcome> {
  const o = await addList(list, rt);
  cleanups.push(() => delList(list, rt, o.result ?? o.runs.at(-2)?.outcome.json));
  return o;
}

function pod(prefix = 'wgp'): ScratchNetns {
  const ns = new ScratchNetns(prefix);
  namespaces.push(ns);
  return ns;
}

function bridgeName(): string {
  const b = scratchName('wgbr');
  bridges.push(b);
  return b;
}

/** The plugins after weft: portmap, bandwidth (ingress shaping: a tbf on the host veth), tuning. */
const AFTER = [
  { type: 'portmap', capabilities: { portMappings: true } },
  { type: 'bandwidth', capabilities: { bandwidth: true } },
  { type: 'tuning', sysctl: { 'net.core.somaxconn': '512' } },
];

function runtime(id: string, ns: ScratchNetns, hostPort: number): RuntimeConf {
  return {
    containerId: id,
    netns: ns.path,
    path,
    env: CLSACT_ENV,
    capabilityArgs: {
      portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }],
      bandwidth: { ingressRate: 100_000_000, ingressBurst: 1_000_000 },
    },
  };
}

interface Chain {
  name: string;
  list: ConfList;
  /** Unique names in results, replaced for the golden. */
  names: Record<string, string>;
  gateway: string;
  /** Index of the host-side veth in the main plugin's result interfaces. */
  hostIf: number;
  after?: () => void;
}

function flannelChain(cniVersion: string, subnet: string): Chain {
  const env = join(work, `subnet-${cniVersion}.env`);
  const [a, b, c] = subnet.split('.');
  writeFileSync(
    env,
    `FLANNEL_NETWORK=${a}.${b}.0.0/16\nFLANNEL_SUBNET=${a}.${b}.${c}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`,
  );
  const br = bridgeName();
  return {
    name: `flannel-${cniVersion}`,
    // The shape of flannel's 10-flannel.conflist, weft inserted after flannel. Only what keeps the
    // test off the host's real state is added: subnetFile/dataDir/ipam.dataDir (temp) and a unique
    // bridge instead of the default cni0.
    list: {
      name: 'cbr0',
      cniVersion,
      plugins: [
        {
          type: 'flannel',
          delegate: { hairpinMode: true, isDefaultGateway: true, bridge: br },
          subnetFile: env,
          dataDir: join(work, `flannel-${cniVersion}`),
          ipam: { dataDir: join(work, `ipam-flannel-${cniVersion}`) },
        },
        weftEntry(dirs),
        ...AFTER,
      ],
    },
    names: { [br]: '<bridge>' },
    gateway: `${a}.${b}.${c}.1`,
    hostIf: 1,
  };
}

function ptpChain(subnet: string): Chain {
  return {
    name: 'ptp',
    list: {
      name: 'wgptp',
      cniVersion: '1.0.0',
      plugins: [
        {
          type: 'ptp',
          ipMasq: false,
          mtu: 1400,
          ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(work, 'ipam-ptp') },
        },
        weftEntry(dirs),
        ...AFTER,
      ],
    },
    names: {},
    gateway: subnet.replace(/\.0\/24$/, '.1'),
    hostIf: 0,
  };
}

function bridgeChain(subnet: string): Chain {
  const br = bridgeName();
  return {
    name: 'bridge',
    list: {
      name: 'wgbridge',
      cniVersion: '1.0.0',
      plugins: [
        {
          type: 'bridge',
          bridge: br,
          isGateway: true,
          ipMasq: false,
          ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(work, 'ipam-bridge') },
        },
        weftEntry(dirs),
        ...AFTER,
      ],
    },
    names: { [br]: '<bridge>' },
    gateway: subnet.replace(/\.0\/24$/, '.1'),
    hostIf: 1,
  };
}

function natRulesFor(containerId: string): string[] {
  return execFileSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(containerId));
}

function expectListOk(o: { ok: boolean; error?: unknown }): void {
  if (!o.ok) throw new Error(`conflist failed: ${JSON.stringify(o.error)}`);
}

/**
 * CHECK of a list. The reference portmap 1.1.1 fails every CHECK (containernetworking/plugins#819:
 * it looks for its DNAT rules in ip6tables as well, also for IPv4-only pods, and checks IPv4 rules
 * there for dual-stack ones). So with portmap in the list: the plugins before it (the main plugin
 * and weft) must pass and portmap must fail with exactly that bug; the list without portmap, on the
 * same cached result, must pass entirely.
 */
async function expectCheckOk(list: ConfList, rt: RuntimeConf, cached: Record<string, unknown>): Promise<void> {
  const full = await checkList(list, rt, cached);
  const at = list.plugins.findIndex((p) => p.type === 'portmap');
  if (at < 0) return expectListOk(full);
  expect(full.error, 'portmap CHECK (upstream bug #819)').toMatchObject({ index: at, type: 'portmap' });
  expect(JSON.stringify(full.error?.json)).toMatch(/could not check ipv6 dnat/);
  expect(full.runs.slice(0, at).map((r) => [r.type, r.outcome.code])).toEqual(
    list.plugins.slice(0, at).map((p) => [p.type, 0]),
  );
  expectListOk(await checkList({ ...list, plugins: list.plugins.filter((p) => p.type !== 'portmap') }, rt, cached));
}

function golden(name: string, actual: unknown): void {
  const file = join(GOLDEN, `${name}.json`);
  if (process.env.WEFT_UPDATE_GOLDEN === '1') {
    mkdirSync(GOLDEN, { recursive: true });
    writeFileSync(file, JSON.stringify(actual, null, 2) + '\n');
  }
  expect(actual).toEqual(JSON.parse(readFileSync(file, 'utf8')));
}

describe('weft-cni generic-veth chained after real plugins', () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'wgveth-'));
    dirs = weftDirs(work, `/sys/fs/bpf/wgveth-${process.pid}`);
    path = chainPath(flannelBinDir(join(work, 'bin')));
  });

  // What a test added is DELeted when it ends, passed or failed: the next test starts clean.
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  afterAll(async () => {
    for (const ns of namespaces) ns.remove();
    for (const b of bridges) {
      try {
        execFileSync('ip', ['link', 'del', b], { stdio: 'ignore' });
      } catch {
        /* never made, or already gone */
      }
    }
    try {
      execFileSync('rm', ['-rf', dirs.pinRoot]);
    } catch {
      /* bpffs entries go with rm */
    }
    rmSync(work, { recursive: true, force: true });
  });

  const cases: Array<[string, () => Chain, number]> = [
    ['flannel-shaped (0.3.1, exactly as 10-flannel.conflist)', () => flannelChain('0.3.1', '10.231.1.0/24'), 31001],
    ['flannel-shaped at 1.0.0 (so that CHECK runs)', () => flannelChain('1.0.0', '10.231.2.0/24'), 31011],
    ['ptp + host-local', () => ptpChain('10.232.1.0/24'), 31021],
    ['bridge + host-local', () => bridgeChain('10.233.1.0/24'), 31031],
  ];

  for (const [title, make, port] of cases) {
    it(`${title}: ADD connects two pods with the datapath attached, CHECK passes, DEL leaves nothing of weft's`, async (ctx) => {
      privileged(ctx);
      requireCommands(ctx, 'ip', 'ping', 'tc', 'iptables-save', WEFT_CNI, '/usr/lib/cni/bridge', '/usr/lib/cni/portmap');
      const chain = make();
      const a = pod();
      const b = pod();
      const ids = [`wg-${chain.name}-a`, `wg-${chain.name}-b`];
      const rts = [runtime(ids[0]!, a, port), runtime(ids[1]!, b, port + 1)];
      const adds = [await added(chain.list, rts[0]!), await added(chain.list, rts[1]!)];
      adds.forEach(expectListOk);

      for (const [i, o] of adds.entries()) {
        const main = o.runs[0]!.outcome.json;
        // weft passes the previous result on unchanged, and so do portmap, bandwidth (ingress
        // shaping only: it adds an interface for egress shaping) and tuning (no MAC change).
        expect(canonical(o.runs[1]!.outcome.json)).toEqual(canonical(main));
        expect(canonical(o.result)).toEqual(canonical(main));
        const rec = records(dirs, chain.list.name).find((r) => r.containerId === ids[i]);
        const hostVeth = main.interfaces[chain.hostIf].name;
        expect(rec).toMatchObject({ mode: 'generic-veth', hostIfname: hostVeth, podIfname: 'eth0', registeredWith: 'degraded' });
        expect(tcFilters(hostVeth, 'ingress')).toMatch(/from_container/);
        expect(tcFilters(hostVeth, 'egress')).toMatch(/to_container/);
        // What the plugins after weft did: a DNAT for the port, a tbf on the host veth, a sysctl in the pod.
        expect(natRulesFor(ids[i]!).length).toBeGreaterThan(0);
        expect(execFileSync('tc', ['qdisc', 'show', 'dev', hostVeth], { encoding: 'utf8' })).toMatch(/tbf/);
        expect([a, b][i]!.exec('cat', '/proc/sys/net/core/somaxconn').trim()).toBe('512');
      }
      golden(`${chain.name}-final-result`, normalise(adds[0]!.result, chain.names));

      const ipB = (adds[1]!.result!.ips as Array<{ address: string }>)[0]!.address.split('/')[0]!;
      expect(ping(a.name, chain.gateway)).toBe(true);
      expect(ping(a.name, hostAddress())).toBe(true);
      expect(ping(a.name, ipB)).toBe(true);

      if (chain.list.cniVersion === '0.3.1') {
        const check = await checkList(chain.list, rts[0]!, adds[0]!.result!);
        // As libcni: CHECK does not exist before 0.4.0, the runtime does not run it.
        expect(check.error?.json).toMatchObject({ msg: expect.stringContaining('does not support the CHECK command') });
        const direct = await runCni(WEFT_CNI, {
        env: CLSACT_ENV,
          command: 'CHECK',
          conf: { ...weftEntry(dirs), name: 'cbr0', cniVersion: '0.3.1', prevResult: adds[0]!.result },
          containerId: ids[0],
          netns: a.path,
        });
        expect(direct.json).toMatchObject({ code: 1 });
      } else {
        await expectCheckOk(chain.list, rts[0]!, adds[0]!.result!);
      }

      // DEL in reverse order with the cached result; look at the host right after weft's DEL,
      // while the previous plugin's links still exist.
      const hostVethA = (adds[0]!.result!.interfaces as Array<{ name: string }>)[chain.hostIf]!.name;
      let sawWeftDel = false;
      const del = await delList(chain.list, rts[0]!, adds[0]!.result, {
        after: (run) => {
          if (run.type !== 'weft-cni') return;
          sawWeftDel = true;
          expect(run.outcome.code).toBe(0);
          expect(linkExists(hostVethA)).toBe(true);
          expect(tcFilters(hostVethA, 'ingress')).not.toMatch(/from_container/);
          expect(tcFilters(hostVethA, 'egress')).not.toMatch(/to_container/);
          expect(records(dirs, chain.list.name).map((r) => r.containerId)).not.toContain(ids[0]);
        },
      });
      expectListOk(del);
      expect(sawWeftDel).toBe(true);
      expect(linkExists(hostVethA)).toBe(false);
      expect(natRulesFor(ids[0]!)).toEqual([]);
      // DEL is idempotent.
      expectListOk(await delList(chain.list, rts[0]!, adds[0]!.result));
      expectListOk(await delList(chain.list, rts[1]!, adds[1]!.result));
      expectListOk(await delList(chain.list, rts[1]!));
      expect(records(dirs, chain.list.name)).toEqual([]);
      expect(queueEntries(dirs)).toEqual([]);
      expect(datapathEndpoints(dirs)).toEqual([]);
      if (chain.name.startsWith('flannel')) {
        const flannelData = String(chain.list.plugins[0]!.dataDir);
        expect(existsSync(flannelData) ? readdirSync(flannelData) : []).toEqual([]);
      }
    });
  }

  it('a prevResult from a plugin that speaks only 0.3.1 chains at 0.3.1 and is returned in 0.3.1', async (ctx) => {
    privileged(ctx);
    const a = pod();
    const list = ptpChain('10.232.2.0/24').list;
    list.cniVersion = '0.3.1';
    list.plugins = list.plugins.slice(0, 2);
    const o = await added(list, { containerId: 'wg-v031', netns: a.path, path, env: CLSACT_ENV });
    expectListOk(o);
    expect(o.result).toMatchObject({ cniVersion: '0.3.1', ips: [{ version: '4', interface: 1 }] });
    expect(canonical(o.result)).toEqual(canonical(o.runs[0]!.outcome.json));
    expectListOk(await delList(list, { containerId: 'wg-v031', netns: a.path, path, env: CLSACT_ENV }, o.result));
  });

  it('bad configs give spec errors with the right code and change nothing', async (ctx) => {
    privileged(ctx);
    const a = pod();
    const list = ptpChain('10.232.3.0/24').list;
    list.plugins = list.plugins.slice(0, 1);
    const rt = { containerId: 'wg-bad', netns: a.path, path, env: CLSACT_ENV };
    const main = await added(list, rt);
    expectListOk(main);
    const prev = main.result!;
    const hostVeth = (prev.interfaces as Array<{ name: string }>)[0]!.name;
    const base = { ...weftEntry(dirs), name: list.name, cniVersion: '1.0.0' };
    const attempt = (conf: object) => runCni(WEFT_CNI, { env: CLSACT_ENV, command: 'ADD', conf, containerId: 'wg-bad', netns: a.path });

    const cases: Array<[string, object, number, RegExp]> = [
      ['unknown chainingMode', { ...base, chainingMode: 'cilium', prevResult: prev }, 7, /chainingMode "cilium"/],
      ['a prevResult without chainingMode', { ...base, chainingMode: undefined, prevResult: prev }, 7, /no chainingMode/],
      [
        'a prevResult without the pod interface',
        { ...base, prevResult: { ...prev, interfaces: [(prev.interfaces as object[])[0]] } },
        7,
        /no pod interface eth0/,
      ],
      [
        'a prevResult with no address on the pod interface',
        { ...base, prevResult: { ...prev, ips: [{ address: '10.232.3.9/24', interface: 0 }] } },
        7,
        /no IP address on the pod interface eth0/,
      ],
      ['a prevResult in another version', { ...base, prevResult: { ...prev, cniVersion: '0.4.0' } }, 1, /prevResult.cniVersion "0.4.0" differs/],
      [
        'a prevResult naming an interface the pod does not have',
        {
          ...base,
          prevResult: { ...prev, interfaces: [(prev.interfaces as object[])[0], { name: 'eth9', sandbox: a.path }] },
        },
        7,
        /no pod interface eth0|has no such link/,
      ],
      ['a bad mtu', { ...base, mtu: 'big', prevResult: prev }, 7, /mtu/],
    ];
    for (const [what, conf, code, msg] of cases) {
      const r = await attempt(conf);
      expect(r.code, what).not.toBe(0);
      expect(r.json, what).toMatchObject({ code });
      expect(r.json.msg, what).toMatch(msg);
    }
    // The interface named by CNI_IFNAME: eth9 is in the netns? no: a prevResult naming a link that
    // does not exist in the pod is refused before anything is registered.
    const ghost = await runCni(WEFT_CNI, {
        env: CLSACT_ENV,
      command: 'ADD',
      conf: { ...base, prevResult: { ...prev, interfaces: [(prev.interfaces as object[])[0], { name: 'eth9', sandbox: a.path }], ips: [{ address: '10.232.3.2/24', interface: 1 }] } },
      containerId: 'wg-bad',
      netns: a.path,
      ifname: 'eth9',
    });
    expect(ghost.json).toMatchObject({ code: 7, msg: expect.stringMatching(/has no such link/) });
    expect(records(dirs, list.name)).toEqual([]);
    expect(queueEntries(dirs)).toEqual([]);
    expect(tcFilters(hostVeth, 'ingress')).not.toMatch(/from_container/);
    expectListOk(await delList(list, rt, prev));
  });

  it('DEL succeeds when the previous plugin already removed the interface, or the netns is gone', async (ctx) => {
    privileged(ctx);
    const list = ptpChain('10.232.4.0/24').list;
    list.plugins = list.plugins.slice(0, 2);
    for (const id of ['wg-gone-if', 'wg-gone-ns']) {
      const a = pod();
      const rt = { containerId: id, netns: a.path, path, env: CLSACT_ENV };
      const o = await added(list, rt);
      expectListOk(o);
      if (id === 'wg-gone-if') a.exec('ip', 'link', 'del', 'eth0');
      else a.remove();
      const weftConf = { ...list.plugins[1], name: list.name, cniVersion: list.cniVersion, prevResult: o.result };
      for (const netns of id === 'wg-gone-ns' ? [a.path, ''] : [a.path]) {
        const r = await runCni(WEFT_CNI, { env: CLSACT_ENV, command: 'DEL', conf: weftConf, containerId: id, netns });
        expect(r.code, r.stdout).toBe(0);
      }
      expectListOk(await delList(list, { ...rt, netns: id === 'wg-gone-ns' ? '' : a.path }, o.result));
    }
    expect(records(dirs, list.name)).toEqual([]);
    expect(queueEntries(dirs)).toEqual([]);
    expect(datapathEndpoints(dirs)).toEqual([]);
  });

  it('a repeated ADD for the same attachment is safe: one record, one queued registration, the datapath attached once', async (ctx) => {
    privileged(ctx);
    const list = ptpChain('10.232.8.0/24').list;
    list.plugins = list.plugins.slice(0, 2);
    const a = pod();
    const rt = { containerId: 'wg-repeat', netns: a.path, path, env: CLSACT_ENV };
    const first = await added(list, rt);
    expectListOk(first);
    const weftConf = { ...list.plugins[1], name: list.name, cniVersion: list.cniVersion, prevResult: first.runs[0]!.outcome.json };
    const again = await runCni(WEFT_CNI, { env: CLSACT_ENV, command: 'ADD', conf: weftConf, containerId: 'wg-repeat', netns: a.path });
    expect(again.code, again.stdout).toBe(0);
    expect(again.json).toEqual(first.runs[1]!.outcome.json);
    expect(records(dirs, list.name).filter((r) => r.containerId === 'wg-repeat')).toHaveLength(1);
    expect(queueEntries(dirs)).toHaveLength(1);
    expect(datapathEndpoints(dirs)).toHaveLength(1);
    const hostVeth = (first.result!.interfaces as Array<{ name: string }>)[0]!.name;
    expect(tcFilters(hostVeth, 'ingress').split('\n').filter((l) => /from_container/.test(l))).toHaveLength(1);
    expectListOk(await delList(list, rt, first.result));
    expect(records(dirs, list.name)).toEqual([]);
    expect(queueEntries(dirs)).toEqual([]);
    expect(datapathEndpoints(dirs)).toEqual([]);
  });

  it('CHECK fails when the pod interface or its host peer no longer match the result', async (ctx) => {
    privileged(ctx);
    const list = ptpChain('10.232.5.0/24').list;
    list.plugins = list.plugins.slice(0, 2);
    const a = pod();
    const rt = { containerId: 'wg-check', netns: a.path, path, env: CLSACT_ENV };
    const o = await added(list, rt);
    expectListOk(o);
    await expectCheckOk(list, rt, o.result!);
    const weftCheck = (prevResult: object) =>
      runCni(WEFT_CNI, {
        env: CLSACT_ENV,
        command: 'CHECK',
        conf: { ...list.plugins[1], name: list.name, cniVersion: list.cniVersion, prevResult },
        containerId: 'wg-check',
        netns: a.path,
      });
    const ifs = o.result!.interfaces as Array<{ name: string; mac?: string }>;
    const wrongMac = { ...o.result, interfaces: [ifs[0], { ...ifs[1], mac: '02:00:00:00:00:01' }] };
    expect((await weftCheck(wrongMac)).json).toMatchObject({ code: 112, msg: expect.stringMatching(/has MAC/) });
    a.exec('ip', 'addr', 'flush', 'dev', 'eth0');
    expect((await weftCheck(o.result!)).json).toMatchObject({ code: 112, msg: expect.stringMatching(/lacks address/) });
    expectListOk(await delList(list, rt, o.result));
    expect((await weftCheck(o.result!)).json).toMatchObject({ code: 112, msg: expect.stringMatching(/no record/) });
  });

  it('GC forgets the endpoints of attachments not in cni.dev/valid-attachments and leaves the links; STATUS reports the agent', async (ctx) => {
    privileged(ctx);
    const list = ptpChain('10.232.6.0/24').list;
    list.cniVersion = '1.1.0';
    list.plugins = [list.plugins[1]!]; // GC of a chain reaches every plugin; ptp (1.0.0) cannot take 1.1.0
    const ptpList = ptpChain('10.232.6.0/24').list;
    ptpList.plugins = ptpList.plugins.slice(0, 1);
    const keep = pod();
    const drop = pod();
    const prevs: Record<string, Record<string, unknown>> = {};
    for (const [id, ns] of [['wg-keep', keep], ['wg-drop', drop]] as const) {
      const p = await added(ptpList, { containerId: id, netns: ns.path, path, env: CLSACT_ENV });
      expectListOk(p);
      // weft at 1.1.0 needs its prevResult in 1.1.0 (the runtime converts it): 1.0.0 → 1.1.0 adds nothing.
      const prev = { ...p.result!, cniVersion: '1.1.0' };
      const w = await runCni(WEFT_CNI, {
        env: CLSACT_ENV,
        command: 'ADD',
        conf: { ...list.plugins[0], name: list.name, cniVersion: '1.1.0', prevResult: prev },
        containerId: id,
        netns: ns.path,
      });
      expect(w.code, w.stdout).toBe(0);
      expect(w.json).toEqual(canonical(prev));
      prevs[id] = p.result!;
    }
    const hostOf = (id: string) => (prevs[id]!.interfaces as Array<{ name: string }>)[0]!.name;
    expectListOk(await gcList(list, { path }, [{ containerID: 'wg-keep', ifname: 'eth0' }]));
    expect(records(dirs, list.name).map((r) => r.containerId)).toEqual(['wg-keep']);
    expect(tcFilters(hostOf('wg-keep'), 'ingress')).toMatch(/from_container/);
    expect(tcFilters(hostOf('wg-drop'), 'ingress')).not.toMatch(/from_container/);
    expect(linkExists(hostOf('wg-drop'))).toBe(true); // the link is ptp's, not weft's
    expect(ping(drop.name, '10.232.6.1')).toBe(true);

    const status = (extra: object) =>
      runCni(WEFT_CNI, { env: CLSACT_ENV, command: 'STATUS', conf: { ...list.plugins[0], name: list.name, cniVersion: '1.1.0', ...extra } });
    expect((await status({})).code).toBe(0);
    expect((await status({ degraded: false })).json).toMatchObject({ code: 50 });

    for (const [id, ns] of [['wg-keep', keep], ['wg-drop', drop]] as const) {
      const r = await runCni(WEFT_CNI, {
        env: CLSACT_ENV,
        command: 'DEL',
        conf: { ...list.plugins[0], name: list.name, cniVersion: '1.1.0', prevResult: { ...prevs[id], cniVersion: '1.1.0' } },
        containerId: id,
        netns: ns.path,
      });
      expect(r.code).toBe(0);
      expectListOk(await delList(ptpList, { containerId: id, netns: ns.path, path, env: CLSACT_ENV }, prevs[id]));
    }
    expect(records(dirs, list.name)).toEqual([]);
    expect(queueEntries(dirs)).toEqual([]);
  });

  it('bandwidth egress shaping after weft: refused beside a clsact attachment, works beside a tcx one', async (ctx) => {
    privileged(ctx);
    const list = ptpChain('10.232.7.0/24').list;
    list.plugins = [list.plugins[0]!, list.plugins[1]!, { type: 'bandwidth', capabilities: { bandwidth: true } }];
    const shaping = { bandwidth: { egressRate: 100_000_000, egressBurst: 1_000_000 } };

    // clsact occupies the device's ingress qdisc slot, where bandwidth puts its `ingress` qdisc.
    const a = pod();
    const rtA: RuntimeConf = { containerId: 'wg-bw-clsact', netns: a.path, path, env: CLSACT_ENV, capabilityArgs: shaping };
    const o = await addList(list, rtA);
    expect(o.ok).toBe(false);
    expect(o.error).toMatchObject({ type: 'bandwidth' });
    expect(JSON.stringify(o.error?.json)).toMatch(/create ingress qdisc/);
    // The runtime then DELs the whole list: weft and ptp clean up.
    expectListOk(await delList(list, rtA, o.runs[1]!.outcome.json));
    expect(records(dirs, list.name)).toEqual([]);

    // A tcx link needs no qdisc: the bandwidth plugin's ingress qdisc and ifb go beside it.
    const b = pod();
    const rtB: RuntimeConf = { containerId: 'wg-bw-tcx', netns: b.path, path, env: TCX_ENV, capabilityArgs: shaping };
    const t = await added(list, rtB);
    if (!t.ok && /tcx|WEFT_TC_MODE/.test(JSON.stringify(t.error))) {
      await delList(list, rtB, t.runs[0]?.outcome.json);
      console.log(`SKIPPED (tcx half): this build or kernel cannot attach tcx: ${JSON.stringify(t.error?.json)}`);
      return;
    }
    expectListOk(t);
    const hostVeth = (t.result!.interfaces as Array<{ name: string }>)[0]!.name;
    const mechanism = weftProgramsOn(hostVeth, dirs);
    if (mechanism !== 'tcx') {
      await delList(list, rtB, t.result);
      console.log(`SKIPPED (tcx half): the datapath of this build attached by ${mechanism ?? 'nothing'}, not tcx`);
      return;
    }
    expect(execFileSync('tc', ['qdisc', 'show', 'dev', hostVeth], { encoding: 'utf8' })).toMatch(/qdisc ingress ffff:/);
    // bandwidth's egress shaping adds its ifb to the result: the one thing after weft that changes it.
    const ifs = t.result!.interfaces as Array<{ name: string }>;
    expect(ifs.length).toBe(3);
    expect(canonical({ ...t.result, interfaces: ifs.slice(0, 2) })).toEqual(canonical(t.runs[0]!.outcome.json));
    golden('ptp-bandwidth-egress-final-result', normalise(t.result));
    expect(ping(b.name, '10.232.7.1')).toBe(true);
    expectListOk(await delList(list, rtB, t.result));
    expect(weftProgramsOn(hostVeth, dirs)).toBeUndefined();
    expect(records(dirs, list.name)).toEqual([]);
    expect(queueEntries(dirs)).toEqual([]);
    expect(datapathEndpoints(dirs)).toEqual([]);
  });
});
