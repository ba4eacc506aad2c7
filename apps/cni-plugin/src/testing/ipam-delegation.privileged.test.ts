/**
 * IPAM delegation (CNI spec section 4) of weft-cni's own veth mode, proven against the real
 * plugins: `ipam.type` = the reference `host-local` and `static` (exec'd from CNI_PATH) and
 * `weft-host-local` (in-process). A recording wrapper around the reference host-local shows what
 * the delegate is given: the calling plugin's environment and the whole network config.
 *
 * The reference plugins here are 1.1.1 and speak at most CNI 1.0.0: a 1.1.0 conf is refused by
 * them (error 1) and the delegation retries at 1.0.0; GC and STATUS do not exist at 1.0.0, so the
 * delegation asks VERSION first and skips them. What that means is asserted below: GC of a veth
 * network with reference host-local releases weft's links and records but not the addresses,
 * which the next DEL (or a host-local that speaks 1.1.0) releases.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privileged, requireCommands, ScratchNetns } from '@weft/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLSACT_ENV, linkExists, ping } from './chain-fixtures';
import { DIST_BIN, REFERENCE_CNI_DIR, runCni, type CniOutcome } from './cni-run';

const WEFT_CNI = join(DIST_BIN, 'weft-cni');
let work = '';
let pinRoot = '';
let path = '';
const namespaces: ScratchNetns[] = [];
const dels: Array<() => Promise<unknown>> = [];

function pod(): ScratchNetns {
  const ns = new ScratchNetns('wipd');
  namespaces.push(ns);
  return ns;
}

function conf(name: string, ipam: object, extra: object = {}, cniVersion = '1.1.0') {
  return {
    cniVersion,
    name,
    type: 'weft-cni',
    degraded: true,
    stateDir: join(work, 'state'),
    agentSocket: join(work, 'no-agent.sock'),
    pinRoot,
    ipam,
    ...extra,
  };
}

const run = (command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS', c: object, id?: string, ns?: ScratchNetns | string) =>
  runCni(WEFT_CNI, {
    command,
    conf: c,
    ...(id !== undefined ? { containerId: id, netns: typeof ns === 'string' ? ns : (ns?.path ?? '') } : {}),
    path,
    args: id ? 'IgnoreUnknown=1;K8S_POD_NAMESPACE=ipam;K8S_POD_NAME=p' : undefined,
    env: { ...CLSACT_ENV, WEFT_LOG_LEVEL: 'info' },
  });

async function add(c: object, id: string, ns: ScratchNetns): Promise<CniOutcome> {
  const r = await run('ADD', c, id, ns);
  dels.push(() => run('DEL', c, id, ns));
  return r;
}

function ok(r: CniOutcome): void {
  if (r.code !== 0) throw new Error(`weft-cni failed (${r.code}): ${r.stdout} ${r.stderr}`);
}

function reserved(dataDir: string, network: string): string[] {
  const dir = join(dataDir, network);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip')).sort();
}

/** What the recording host-local wrapper saw, oldest first: command, CNI_* environment, stdin. */
function recorded(): Array<{ command: string; env: Record<string, string>; conf: Record<string, unknown> | undefined }> {
  const dir = join(work, 'record');
  if (!existsSync(dir)) return [];
  const stems = [...new Set(readdirSync(dir).map((f) => f.replace(/\.(env|json)$/, '')))].sort();
  return stems.map((stem) => {
    const env = Object.fromEntries(
      readFileSync(join(dir, `${stem}.env`), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    const text = readFileSync(join(dir, `${stem}.json`), 'utf8').trim();
    return { command: env.CNI_COMMAND ?? '?', env, conf: text ? JSON.parse(text) : undefined };
  });
}

describe('IPAM delegation of weft-cni veth mode', () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'wipam-'));
    pinRoot = `/sys/fs/bpf/wipam-${process.pid}`;
    // `host-local-rec`: records its invocation, then is the reference host-local.
    const bin = join(work, 'bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'host-local-rec'),
      `#!/bin/sh\nd=${join(work, 'record')}\nmkdir -p "$d"\nn=$(date +%s%N)\nenv | grep '^CNI_' | sort >"$d/$n.env"\ntee "$d/$n.json" | ${REFERENCE_CNI_DIR}/host-local\n`,
    );
    chmodSync(join(bin, 'host-local-rec'), 0o755);
    path = [DIST_BIN, bin, REFERENCE_CNI_DIR].join(':');
  });

  afterAll(async () => {
    for (const d of dels.reverse()) await d().catch(() => undefined);
    for (const ns of namespaces) ns.remove();
    try {
      execFileSync('rm', ['-rf', pinRoot]);
    } catch {
      /* bpffs entries go with rm */
    }
    rmSync(work, { recursive: true, force: true });
  });

  it('reference host-local: the delegate gets the caller\'s environment and whole config, ADD/CHECK/DEL work, GC and STATUS are skipped', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'ip', 'ping', WEFT_CNI, `${REFERENCE_CNI_DIR}/host-local`);
    const dataDir = join(work, 'ipam-hl');
    const ipam = { type: 'host-local-rec', ranges: [[{ subnet: '10.241.1.0/24' }]], routes: [{ dst: '10.241.0.0/16' }], dataDir };
    const c = conf('wipdhl', ipam);
    const a = pod();
    const b = pod();
    const ra = await add(c, 'wipd-hl-a', a);
    const rb = await add(c, 'wipd-hl-b', b);
    ok(ra);
    ok(rb);
    expect(ra.json.ips).toEqual([{ address: '10.241.1.2/32', gateway: '169.254.1.1', interface: 1 }]);
    // The IPAM route comes back via weft's gateway.
    expect(ra.json.routes).toEqual([{ dst: '0.0.0.0/0', gw: '169.254.1.1' }, { dst: '10.241.0.0/16', gw: '169.254.1.1' }]);
    expect(reserved(dataDir, 'wipdhl')).toEqual(['10.241.1.2', '10.241.1.3']);
    expect(readFileSync(join(dataDir, 'wipdhl', '10.241.1.2'), 'utf8')).toMatch(/^wipd-hl-a\s+eth0$/);
    expect(ping(a.name, '10.241.1.3')).toBe(true);

    // What host-local saw for the first ADD: 1.1.0 refused with error 1, VERSION, then ADD at 1.0.0,
    // with weft's environment and the whole network config (only cniVersion lowered).
    const adds = recorded().slice(0, 3); // a's ADD came first; VERSION carries no CNI_CONTAINERID
    expect(adds.map((r) => `${r.command} ${r.conf?.cniVersion ?? ''}`)).toEqual(['ADD 1.1.0', 'VERSION ', 'ADD 1.0.0']);
    const last = adds[2]!;
    expect(last.env).toMatchObject({
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'wipd-hl-a',
      CNI_NETNS: a.path,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=ipam;K8S_POD_NAME=p',
      CNI_PATH: path,
    });
    expect(last.conf).toEqual({ ...c, cniVersion: '1.0.0' });

    const beforeCheck = recorded().length;
    ok(await run('CHECK', { ...c, prevResult: ra.json }, 'wipd-hl-a', a));
    const checks = recorded().slice(beforeCheck).filter((r) => r.command === 'CHECK');
    expect(checks.at(-1)!.conf).toMatchObject({ cniVersion: '1.0.0', name: 'wipdhl', prevResult: { cniVersion: '1.0.0' } });

    // GC: host-local 1.1.1 has no GC. The delegation asks VERSION and skips it (logged).
    const beforeGc = recorded().length;
    const gc = await run('GC', { ...c, 'cni.dev/valid-attachments': [{ containerID: 'wipd-hl-a', ifname: 'eth0' }] });
    ok(gc);
    expect(recorded().slice(beforeGc).map((r) => r.command)).toEqual(['VERSION']);
    expect(gc.stderr).toMatch(/speaks at most 1\.0\.0: skipping GC/);
    // weft's own part of GC happened: b's link and record are gone; host-local still holds b's address.
    const hostB = rb.json.interfaces[0].name;
    expect(linkExists(hostB)).toBe(false);
    expect(reserved(dataDir, 'wipdhl')).toEqual(['10.241.1.2', '10.241.1.3']);
    // ... which b's DEL releases, even with weft's record gone.
    ok(await run('DEL', c, 'wipd-hl-b', b));
    expect(reserved(dataDir, 'wipdhl')).toEqual(['10.241.1.2']);

    const beforeStatus = recorded().length;
    ok(await run('STATUS', c));
    expect(recorded().slice(beforeStatus).map((r) => r.command)).toEqual(['VERSION']);

    for (let i = 0; i < 2; i++) ok(await run('DEL', c, 'wipd-hl-a', a));
    const delConf = recorded().filter((r) => r.command === 'DEL' && r.conf?.cniVersion === '1.0.0').at(-1)!.conf;
    expect(delConf).toEqual({ ...c, cniVersion: '1.0.0' }); // no prevResult: that belongs to the chain
    expect(reserved(dataDir, 'wipdhl')).toEqual([]);
  });

  it('reference host-local at 1.0.0 needs no negotiation; GC is refused by the version rules', async (ctx) => {
    privileged(ctx);
    const dataDir = join(work, 'ipam-hl10');
    const c = conf('wipdhl10', { type: 'host-local', ranges: [[{ subnet: '10.241.2.0/24' }]], dataDir }, {}, '1.0.0');
    const a = pod();
    const r = await add(c, 'wipd-hl10', a);
    ok(r);
    expect(r.json).toMatchObject({ cniVersion: '1.0.0', ips: [{ address: '10.241.2.2/32' }] });
    ok(await run('CHECK', { ...c, prevResult: r.json }, 'wipd-hl10', a));
    expect((await run('GC', { ...c, 'cni.dev/valid-attachments': [] })).json).toMatchObject({ code: 1 });
    ok(await run('DEL', c, 'wipd-hl10', a));
    expect(reserved(dataDir, 'wipdhl10')).toEqual([]);
  });

  it('reference static: the configured address, CHECK against it, DEL/GC with nothing to release', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, `${REFERENCE_CNI_DIR}/static`);
    const a = pod();
    const c = conf('wipdst', { type: 'static', addresses: [{ address: '10.241.3.5/24' }], routes: [{ dst: '10.241.0.0/16' }] });
    const r = await add(c, 'wipd-st', a);
    ok(r);
    expect(r.json.ips).toEqual([{ address: '10.241.3.5/32', gateway: '169.254.1.1', interface: 1 }]);
    expect(a.exec('ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0')).toMatch(/10\.241\.3\.5\/32/);
    ok(await run('CHECK', { ...c, prevResult: r.json }, 'wipd-st', a));
    ok(await run('GC', { ...c, 'cni.dev/valid-attachments': [] })); // static has no GC: skipped; weft's link goes
    expect(linkExists(r.json.interfaces[0].name)).toBe(false);
    ok(await run('DEL', c, 'wipd-st', a));

    // A static gateway: weft's result names its own link-local gateway; CHECK hands static the
    // result static itself returned on ADD (kept in the attachment record), so it still matches.
    const b = pod();
    const g = conf('wipdstg', { type: 'static', addresses: [{ address: '10.241.3.6/24', gateway: '10.241.3.1' }] });
    const rg = await add(g, 'wipd-stg', b);
    ok(rg);
    expect(rg.json.ips[0].gateway).toBe('169.254.1.1');
    ok(await run('CHECK', { ...g, prevResult: rg.json }, 'wipd-stg', b));
    ok(await run('DEL', g, 'wipd-stg', b));
  });

  it('weft-host-local in-process: ADD/CHECK/DEL, and GC releases what is not valid', async (ctx) => {
    privileged(ctx);
    const dataDir = join(work, 'ipam-weft');
    const c = conf('wipdwh', { type: 'weft-host-local', ranges: [[{ subnet: '10.241.4.0/24' }]], dataDir });
    const a = pod();
    const b = pod();
    const before = recorded().length;
    const ra = await add(c, 'wipd-wh-a', a);
    const rb = await add(c, 'wipd-wh-b', b);
    ok(ra);
    ok(rb);
    expect(recorded().length).toBe(before); // no process was exec'd for IPAM
    expect(reserved(dataDir, 'wipdwh')).toEqual(['10.241.4.2', '10.241.4.3']);
    ok(await run('CHECK', { ...c, prevResult: ra.json }, 'wipd-wh-a', a));
    ok(await run('GC', { ...c, 'cni.dev/valid-attachments': [{ containerID: 'wipd-wh-a', ifname: 'eth0' }] }));
    expect(reserved(dataDir, 'wipdwh')).toEqual(['10.241.4.2']);
    expect(linkExists(rb.json.interfaces[0].name)).toBe(false);
    ok(await run('STATUS', c));
    ok(await run('DEL', c, 'wipd-wh-a', a));
    ok(await run('DEL', c, 'wipd-wh-b', b));
    expect(reserved(dataDir, 'wipdwh')).toEqual([]);
    // Same on-disk format as the reference: the reference host-local reads weft-host-local's store.
    const mixed = conf('wipdmix', { type: 'weft-host-local', ranges: [[{ subnet: '10.241.5.0/24' }]], dataDir });
    const rm = await add(mixed, 'wipd-mix', a);
    ok(rm);
    ok(await run('DEL', { ...mixed, ipam: { ...mixed.ipam, type: 'host-local' } }, 'wipd-mix', a));
    expect(reserved(dataDir, 'wipdmix')).toEqual([]);
  });
});
