/**
 * weft-cni chained in terway mode, the shipped executable after reference plugins that give pods
 * Terway's two ENIIP shapes (until weft's own ENI side exists):
 * - after `ptp`: a veth pod with its peer in the host namespace (Terway's veth/policy-route shape),
 *   the ENI named by `eniDevice` (a scratch veth stands in for the ENI);
 * - after `ipvlan`: an IPvlan slave inside the pod with no host peer (Terway's IPvlan shape); the
 *   datapath attaches inside the pod. This kernel may have no ipvlan: then that test says so and
 *   skips; run it in the VM:  scripts/vm/run-in-vm.sh 'npx vitest run apps/cni-plugin/src/modes/terway'
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privileged, requireCommands, requireKernelFeature, ScratchNetns, scratchName } from '@weft/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CLSACT_ENV,
  canonical,
  chainPath,
  datapathEndpoints,
  linkExists,
  ping,
  queueEntries,
  records,
  tcFilters,
  weftDirs,
  weftEntry,
  type WeftDirs,
} from '../../testing/chain-fixtures';
import { DIST_BIN, runCni } from '../../testing/cni-run';
import { addList, checkList, delList, type ConfList, type ListOutcome, type RuntimeConf } from '../../testing/conflist-run';

const WEFT_CNI = join(DIST_BIN, 'weft-cni');
let work = '';
let dirs: WeftDirs;
let path = '';
const namespaces: ScratchNetns[] = [];
const hostLinks: string[] = [];
const cleanups: Array<() => Promise<unknown>> = [];

function pod(): ScratchNetns {
  const ns = new ScratchNetns('wtwp');
  namespaces.push(ns);
  return ns;
}

/** A host device to stand for an ENI / IPvlan master: a veth pair, up, its peer left in the host. */
function fakeEni(prefix: string): string {
  const name = scratchName(prefix);
  execFileSync('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`]);
  hostLinks.push(name);
  execFileSync('ip', ['link', 'set', name, 'up']);
  execFileSync('ip', ['link', 'set', `${name}p`, 'up']);
  return name;
}

async function added(list: ConfList, rt: RuntimeConf): Promise<ListOutcome> {
  const o = await addList(list, rt);
  cleanups.push(() => delList(list, rt, o.result ?? o.runs.at(-2)?.outcome.json));
  return o;
}

function expectListOk(o: { ok: boolean; error?: unknown }): void {
  if (!o.ok) throw new Error(`conflist failed: ${JSON.stringify(o.error)}`);
}

/** The registration weft-cni queued for the agent (degraded mode). */
function queuedRegistration(containerId: string): Record<string, unknown> | undefined {
  const dir = join(dirs.stateDir, 'queue');
  for (const f of readdirSync(dir)) {
    const w = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    if (w.kind === 'register' && w.registration.containerId === containerId) return w.registration;
  }
  return undefined;
}

describe('weft-cni terway chaining', () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'wterway-'));
    dirs = weftDirs(work, `/sys/fs/bpf/wterway-${process.pid}`);
    path = chainPath();
  });

  // What a test added is DELeted when it ends, passed or failed: the next test starts clean.
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  afterAll(async () => {
    for (const ns of namespaces) ns.remove();
    for (const l of hostLinks) {
      try {
        execFileSync('ip', ['link', 'del', l], { stdio: 'ignore' });
      } catch {
        /* gone */
      }
    }
    try {
      execFileSync('rm', ['-rf', dirs.pinRoot]);
    } catch {
      /* bpffs entries go with rm */
    }
    rmSync(work, { recursive: true, force: true });
  });

  function ptpList(subnet: string, weft: object): ConfList {
    return {
      name: 'wtwptp',
      cniVersion: '0.4.0',
      plugins: [
        {
          type: 'ptp',
          ipMasq: false,
          ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(work, 'ipam-ptp') },
        },
        weftEntry(dirs, 'terway', weft),
      ],
    };
  }

  it('after ptp (Terway veth shape): registers the host veth and the ENI, passes the result on, CHECK/DEL', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'ip', 'tc', 'ping', WEFT_CNI, '/usr/lib/cni/ptp');
    const eni = fakeEni('wteni');
    const list = ptpList('10.235.1.0/24', { eniDevice: eni });
    const a = pod();
    const b = pod();
    const rt = (id: string, ns: ScratchNetns) => ({ env: CLSACT_ENV, containerId: id, netns: ns.path, path, args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web' });
    const oa = await added(list, rt('wt-veth-a', a));
    const ob = await added(list, rt('wt-veth-b', b));
    expectListOk(oa);
    expectListOk(ob);
    expect(canonical(oa.result)).toEqual(canonical(oa.runs[0]!.outcome.json));
    const hostVeth = (oa.result!.interfaces as Array<{ name: string }>)[0]!.name;
    expect(records(dirs, list.name).find((r) => r.containerId === 'wt-veth-a')).toMatchObject({
      mode: 'terway',
      hostIfname: hostVeth,
      parentDevice: eni,
      registeredWith: 'degraded',
    });
    expect(queuedRegistration('wt-veth-a')).toMatchObject({
      mode: 'terway',
      attachInPod: false,
      hostIfname: hostVeth,
      parentDevice: eni,
      podIfname: 'eth0',
      podNamespace: 'default',
      podName: 'web',
      ips: ['10.235.1.2'],
    });
    expect(tcFilters(hostVeth, 'ingress'), oa.runs[1]!.outcome.stderr).toMatch(/from_container/);
    expect(ping(a.name, '10.235.1.1')).toBe(true);
    expect(ping(a.name, (ob.result!.ips as Array<{ address: string }>)[0]!.address.split('/')[0]!)).toBe(true);
    expectListOk(await checkList(list, rt('wt-veth-a', a), oa.result!));

    // CHECK notices the ENI going away.
    const rename = (from: string, to: string) => {
      // Kernels before 6.2 rename only links that are down.
      execFileSync('ip', ['link', 'set', from, 'down']);
      execFileSync('ip', ['link', 'set', from, 'name', to]);
      execFileSync('ip', ['link', 'set', to, 'up']);
    };
    rename(eni, `${eni}x`);
    hostLinks.push(`${eni}x`);
    const gone = await checkList(list, rt('wt-veth-a', a), oa.result!);
    expect(gone.error).toMatchObject({ type: 'weft-cni', code: 112 });
    expect(JSON.stringify(gone.error?.json)).toMatch(/parent device .* no longer exists/);
    rename(`${eni}x`, eni);

    for (const [id, ns, o] of [['wt-veth-a', a, oa], ['wt-veth-b', b, ob]] as const)
      expectListOk(await delList(list, rt(id, ns), o.result));
    expect(records(dirs, list.name)).toEqual([]);
    expect(queueEntries(dirs)).toEqual([]);
    expect(datapathEndpoints(dirs)).toEqual([]);
  });

  it('after ptp without an ENI named: no parent device; a named ENI that does not exist is error 7 and changes nothing', async (ctx) => {
    privileged(ctx);
    const a = pod();
    const plain = ptpList('10.235.2.0/24', {});
    const o = await added(plain, { containerId: 'wt-noeni', netns: a.path, path, env: CLSACT_ENV });
    expectListOk(o);
    const rec = records(dirs, plain.name).find((r) => r.containerId === 'wt-noeni')!;
    expect(rec.mode).toBe('terway');
    expect(rec.parentDevice).toBeUndefined();
    expectListOk(await delList(plain, { containerId: 'wt-noeni', netns: a.path, path, env: CLSACT_ENV }, o.result));

    const b = pod();
    const main = await added({ ...plain, plugins: [plain.plugins[0]!] }, { containerId: 'wt-badeni', netns: b.path, path, env: CLSACT_ENV });
    expectListOk(main);
    const base = { ...plain.plugins[1], name: plain.name, cniVersion: plain.cniVersion, prevResult: main.result };
    for (const [conf, msg] of [
      [{ ...base, eniDevice: 'wtnoeni0' }, /eniDevice "wtnoeni0" does not exist/],
      [{ ...base, eniDevice: 'bad/name' }, /eniDevice "bad\/name"/],
      [{ ...base, eniDevice: 'wtnoeni0', master: 'wtnoeni1' }, /name different devices/],
    ] as const) {
      const r = await runCni(WEFT_CNI, { env: CLSACT_ENV, command: 'ADD', conf, containerId: 'wt-badeni', netns: b.path });
      expect(r.json).toMatchObject({ code: 7, msg: expect.stringMatching(msg) });
    }
    expect(records(dirs, plain.name)).toEqual([]);
    expect(queueEntries(dirs)).toEqual([]);
    expect(tcFilters((main.result!.interfaces as Array<{ name: string }>)[0]!.name, 'ingress')).not.toMatch(/from_container/);
  });

  it('after ipvlan (Terway IPvlan shape): attaches inside the pod, records the IPvlan master, CHECK/DEL', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'ip', 'tc', 'ping', WEFT_CNI, '/usr/lib/cni/ipvlan');
    // Skips loudly where the kernel has no ipvlan; in the VM it runs.
    try {
      requireKernelFeature(ctx, 'ipvlan');
    } catch (skip) {
      console.log(`SKIPPED: run it in a VM: scripts/vm/run-in-vm.sh 'npx vitest run apps/cni-plugin/src/modes/terway'`);
      throw skip;
    }
    const master = fakeEni('wtmst');
    const list: ConfList = {
      name: 'wtwipvl',
      cniVersion: '1.0.0',
      plugins: [
        {
          type: 'ipvlan',
          master,
          mode: 'l2',
          ipam: { type: 'host-local', ranges: [[{ subnet: '10.235.3.0/24' }]], dataDir: join(work, 'ipam-ipvlan') },
        },
        weftEntry(dirs, 'terway'),
      ],
    };
    const a = pod();
    const b = pod();
    const oa = await added(list, { containerId: 'wt-ipvl-a', netns: a.path, path, env: CLSACT_ENV });
    const ob = await added(list, { containerId: 'wt-ipvl-b', netns: b.path, path, env: CLSACT_ENV });
    expectListOk(oa);
    expectListOk(ob);
    expect(canonical(oa.result)).toEqual(canonical(oa.runs[0]!.outcome.json));
    expect(records(dirs, list.name).find((r) => r.containerId === 'wt-ipvl-a')).toMatchObject({
      mode: 'terway',
      attachInPod: true,
      podIfname: 'eth0',
      parentDevice: master,
    });
    expect(records(dirs, list.name).find((r) => r.containerId === 'wt-ipvl-a')!.hostIfname).toBeUndefined();
    expect(queuedRegistration('wt-ipvl-a')).toMatchObject({ mode: 'terway', attachInPod: true, podIfname: 'eth0', parentDevice: master });
    // The datapath is inside the pod: from-container on eth0's egress, to-container on its ingress.
    expect(a.exec('tc', 'filter', 'show', 'dev', 'eth0', 'egress')).toMatch(/from_container/);
    expect(a.exec('tc', 'filter', 'show', 'dev', 'eth0', 'ingress')).toMatch(/to_container/);
    expect(ping(a.name, (ob.result!.ips as Array<{ address: string }>)[0]!.address.split('/')[0]!)).toBe(true);
    expectListOk(await checkList(list, { containerId: 'wt-ipvl-a', netns: a.path, path, env: CLSACT_ENV }, oa.result!));

    // generic-veth refuses an IPvlan pod and says which mode takes it.
    const wrong = await runCni(WEFT_CNI, {
        env: CLSACT_ENV,
      command: 'ADD',
      conf: { ...weftEntry(dirs), name: list.name, cniVersion: '1.0.0', prevResult: oa.runs[0]!.outcome.json },
      containerId: 'wt-ipvl-x',
      netns: a.path,
    });
    expect(wrong.json).toMatchObject({ code: 7, details: expect.stringMatching(/chainingMode": "terway/) });

    let sawWeftDel = false;
    expectListOk(
      await delList(list, { containerId: 'wt-ipvl-a', netns: a.path, path, env: CLSACT_ENV }, oa.result, {
        after: (run) => {
          if (run.type !== 'weft-cni') return;
          sawWeftDel = true;
          expect(a.exec('tc', 'filter', 'show', 'dev', 'eth0', 'egress')).not.toMatch(/from_container/);
        },
      }),
    );
    expect(sawWeftDel).toBe(true);
    expectListOk(await delList(list, { containerId: 'wt-ipvl-b', netns: b.path, path, env: CLSACT_ENV }, ob.result));
    expect(records(dirs, list.name)).toEqual([]);
    expect(queueEntries(dirs)).toEqual([]);
    expect(linkExists(master)).toBe(true); // the master is not weft's
  });
});
