/**
 * `weft install --chain-after` and `weft uninstall` on the real-world conflist shapes: flannel's
 * 10-flannel.conflist, Terway's terway-chainer (with cilium-cni in it), a single bridge `.conf`.
 * Each is run twice (the second run changes nothing, byte for byte) and uninstall restores the
 * original byte for byte. No root needed: everything is in temp dirs.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BACKUP_SUFFIX, planChain } from './chain';
import { installChained, InstallError, MANIFEST_NAME, readManifest, uninstall, type ChainInstallOptions } from './install';

const scratch = mkdtempSync(join(tmpdir(), 'wi-chain-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Real-world shapes, byte for byte as those projects ship them (indentation included). */
const FLANNEL = `{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "flannel",
      "delegate": {
        "hairpinMode": true,
        "isDefaultGateway": true
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}
`;
const TERWAY_CHAINER = `{
  "cniVersion": "0.4.0",
  "name": "terway-chainer",
  "plugins": [
    {
      "type": "terway",
      "eniip_virtual_type": "IPVlan",
      "host_stack_cidrs": ["169.254.20.10/32"]
    },
    {
      "type": "cilium-cni"
    }
  ]
}
`;
const BRIDGE_CONF = `{
    "cniVersion": "0.4.0",
    "name": "mynet",
    "type": "bridge",
    "bridge": "cni0",
    "isGateway": true,
    "ipMasq": true,
    "ipam": {
        "type": "host-local",
        "subnet": "10.22.0.0/16",
        "routes": [ { "dst": "0.0.0.0/0" } ]
    }
}
`;

let n = 0;
function fixture(files: Record<string, string> = {}) {
  const root = join(scratch, `case-${n++}`);
  const confDir = join(root, 'etc/cni/net.d');
  mkdirSync(confDir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(confDir, name), text);
  const source = join(root, 'weft-src');
  writeFileSync(source, '#!/bin/sh\necho weft\n');
  chmodSync(source, 0o755);
  return { root, source, confDir, binDir: join(root, 'opt/cni/bin') };
}

type Fixture = ReturnType<typeof fixture>;

function opts(f: Fixture, extra: Partial<ChainInstallOptions> = {}): ChainInstallOptions {
  return { source: f.source, binDir: f.binDir, confDir: f.confDir, version: '1', chainAfter: '*', ...extra };
}

/** Every file under dir with its bytes: compares whole trees. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  for (const rel of readdirSync(dir, { recursive: true }).map(String).sort()) {
    const p = join(dir, rel);
    if (statSync(p).isFile()) out[rel] = readFileSync(p, 'utf8');
  }
  return out;
}

const plugins = (file: string) => (JSON.parse(readFileSync(file, 'utf8')).plugins as Array<Record<string, unknown>>);

describe('weft install --chain-after', () => {
  it("flannel's 10-flannel.conflist: weft after flannel, before portmap; twice; uninstall restores it byte for byte", async () => {
    const f = fixture({ '10-flannel.conflist': FLANNEL });
    const file = join(f.confDir, '10-flannel.conflist');
    const r = await installChained(opts(f, { chainAfter: 'cbr0' }));
    expect(r.chain).toEqual({ action: 'rewritten', file, network: 'cbr0' });
    expect(plugins(file).map((p) => p.type)).toEqual(['flannel', 'weft-cni', 'portmap']);
    expect(plugins(file)[1]).toEqual({ type: 'weft-cni', chainingMode: 'generic-veth' });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ name: 'cbr0', cniVersion: '0.3.1' });
    expect(readFileSync(`${file}${BACKUP_SUFFIX}`, 'utf8')).toBe(FLANNEL);
    expect(readdirSync(f.confDir).filter((x) => x.endsWith('.tmp'))).toEqual([]);
    expect(readManifest(f.binDir)!.entries.filter((e) => e.kind === 'chain')).toEqual([
      expect.objectContaining({ kind: 'chain', path: file, original: file, backup: `${file}${BACKUP_SUFFIX}`, network: 'cbr0' }),
    ]);

    const conf = snapshot(f.confDir);
    const bin = snapshot(f.binDir);
    const inode = statSync(file).ino;
    const again = await installChained(opts(f, { chainAfter: 'cbr0' }));
    expect(again.chain.action).toBe('unchanged');
    expect(again.changed).toEqual([]);
    expect(again.notes.join('\n')).toMatch(/already chained after flannel/);
    expect(snapshot(f.confDir)).toEqual(conf);
    expect(snapshot(f.binDir)).toEqual(bin); // the manifest too
    expect(statSync(file).ino).toBe(inode);

    const u = uninstall({ binDir: f.binDir });
    expect(u.notes.join('\n')).toMatch(/restored from 10-flannel.conflist.weft-backup/);
    expect(snapshot(f.confDir)).toEqual({ '10-flannel.conflist': FLANNEL });
    expect(existsSync(f.binDir)).toBe(false);
  });

  it("Terway's terway-chainer: refuses beside cilium-cni unless --replace cilium-cni; then weft (terway mode) takes its place", async () => {
    const f = fixture({ '10-terway.conflist': TERWAY_CHAINER });
    const file = join(f.confDir, '10-terway.conflist');
    const before = snapshot(f.root);
    await expect(installChained(opts(f, { chainAfter: 'terway-chainer' }))).rejects.toThrow(
      /already chains cilium-cni after terway.*--replace cilium-cni/,
    );
    expect(snapshot(f.root)).toEqual(before); // refused before the binaries were installed, too

    for (let i = 0; i < 2; i++) {
      const r = await installChained(opts(f, { chainAfter: 'terway-chainer', replace: ['cilium-cni'] }));
      expect(r.chain.action).toBe(i === 0 ? 'rewritten' : 'unchanged');
      if (i === 1) expect(r.notes.join('\n')).toMatch(/nothing to replace: no cilium-cni/);
    }
    expect(plugins(file)).toEqual([
      { type: 'terway', eniip_virtual_type: 'IPVlan', host_stack_cidrs: ['169.254.20.10/32'] },
      { type: 'weft-cni', chainingMode: 'terway' },
    ]);
    uninstall({ binDir: f.binDir });
    expect(snapshot(f.confDir)).toEqual({ '10-terway.conflist': TERWAY_CHAINER });
  });

  it('a single .conf becomes a .conflist, the .conf moved aside (the runtime never sees two); uninstall puts it back', async () => {
    const f = fixture({ '10-bridge.conf': BRIDGE_CONF });
    const conf = join(f.confDir, '10-bridge.conf');
    const list = join(f.confDir, '10-bridge.conflist');
    for (let i = 0; i < 2; i++) {
      const r = await installChained(opts(f, { chainAfter: 'mynet' }));
      expect(r.chain).toEqual({ action: i === 0 ? 'rewritten' : 'unchanged', file: list, network: 'mynet' });
      expect(readdirSync(f.confDir).sort()).toEqual(['10-bridge.conf.weft-backup', '10-bridge.conflist']);
    }
    expect(JSON.parse(readFileSync(list, 'utf8'))).toEqual({
      cniVersion: '0.4.0',
      name: 'mynet',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: true,
          ipam: { type: 'host-local', subnet: '10.22.0.0/16', routes: [{ dst: '0.0.0.0/0' }] },
        },
        { type: 'weft-cni', chainingMode: 'generic-veth' },
      ],
    });
    expect(readFileSync(`${conf}${BACKUP_SUFFIX}`, 'utf8')).toBe(BRIDGE_CONF);
    uninstall({ binDir: f.binDir });
    expect(snapshot(f.confDir)).toEqual({ '10-bridge.conf': BRIDGE_CONF });
  });

  it('"*" chains after the network the runtime uses: the first file by name', async () => {
    const f = fixture({ '20-flannel.conflist': FLANNEL, '10-bridge.conf': BRIDGE_CONF, '99-other.json.disabled': 'x' });
    const r = await installChained(opts(f));
    expect(r.chain).toMatchObject({ action: 'rewritten', network: 'mynet' });
    expect(readFileSync(join(f.confDir, '20-flannel.conflist'), 'utf8')).toBe(FLANNEL);
  });

  it('puts weft after the interface plugin and before the meta plugins, keeping keys of an existing weft entry', () => {
    const f = fixture({
      '10-ptp.conflist': JSON.stringify({
        cniVersion: '1.0.0',
        name: 'p',
        plugins: [
          { type: 'ptp', ipam: { type: 'host-local', subnet: '10.1.0.0/16' } },
          { type: 'tuning', sysctl: {} },
          { type: 'weft-cni', chainingMode: 'generic-veth', degraded: true },
          { type: 'portmap', capabilities: { portMappings: true } },
          { type: 'firewall' },
        ],
      }),
    });
    const p = planChain({ confDir: f.confDir, chainAfter: 'p' });
    expect(p.action).toBe('rewrite');
    const out = JSON.parse(p.action === 'rewrite' ? p.content : '');
    expect(out.plugins.map((x: { type: string }) => x.type)).toEqual(['ptp', 'weft-cni', 'tuning', 'portmap', 'firewall']);
    expect(out.plugins[1]).toEqual({ type: 'weft-cni', chainingMode: 'generic-veth', degraded: true });
    expect(p.action === 'rewrite' && p.writeBackup).toBe(false); // weft was in it already: no weft-free original
  });

  it('refuses, changing nothing, when the network is not there or its file is malformed', async () => {
    const cases: Array<[Record<string, string>, string, RegExp]> = [
      [{ '10-flannel.conflist': FLANNEL }, 'nope', /network nope not found in .*\(there: cbr0 \(10-flannel.conflist\)\)/],
      [{}, 'cbr0', /no network config in/],
      [{ '10-a.conflist': '{"name": "a", "cniVersion": "1.0.0", "plugins": [' }, '*', /10-a.conflist .* is malformed: not valid JSON/],
      [{ '10-a.conflist': '{"name": "a", "cniVersion": "1.0.0", "plugins": []}' }, 'a', /malformed: "plugins" is not a non-empty list/],
      [{ '10-a.conflist': '{"name": "a", "cniVersion": "1.0.0", "plugins": [{"x": 1}]}' }, 'a', /plugins\[0\] has no "type"/],
      [{ '05-bad.conf': '{oops', '10-flannel.conflist': FLANNEL }, 'nope', /not found.*05-bad.conf is malformed/],
      [{ '10-old.conf': '{"cniVersion": "0.2.0", "name": "old", "type": "bridge"}' }, 'old', /does not speak cniVersion \["0.2.0"\]/],
      [{ '10-weft.conflist': '{"cniVersion": "1.0.0", "name": "weftnet", "plugins": [{"type": "weft-cni", "mode": "veth"}]}' }, 'weftnet', /weft's own/],
      [{ '10-pm.conflist': '{"cniVersion": "1.0.0", "name": "pm", "plugins": [{"type": "portmap"}]}' }, 'pm', /starts with portmap/],
      [{ '10-b.conf': BRIDGE_CONF, '10-b.conflist': FLANNEL }, 'mynet', /would become .*10-b.conflist, which exists already/],
    ];
    for (const [files, chainAfter, msg] of cases) {
      const f = fixture(files);
      const before = snapshot(f.root);
      const err = await installChained(opts(f, { chainAfter })).catch((e: unknown) => e);
      expect(err, chainAfter).toBeInstanceOf(InstallError);
      expect((err as Error).message).toMatch(msg);
      expect(snapshot(f.root)).toEqual(before);
    }
    const f = fixture({ '10-flannel.conflist': FLANNEL });
    await expect(installChained(opts(f, { chainAfter: 'cbr0', replace: ['flannel'] }))).rejects.toThrow(/--replace flannel/);
  });

  it('--require-agent: the conflist is written only once the agent answers /v1/healthz', async () => {
    const f = fixture({ '10-flannel.conflist': FLANNEL });
    const socket = join(f.root, 'agent.sock');
    const err = await installChained(opts(f, { chainAfter: 'cbr0', requireAgent: true, agentSocket: socket, waitSeconds: 0.3 })).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'not-ready', message: expect.stringMatching(/weft-agent is not ready on .*agent.sock/) });
    expect(readdirSync(f.confDir)).toEqual(['10-flannel.conflist']);
    expect(readFileSync(join(f.confDir, '10-flannel.conflist'), 'utf8')).toBe(FLANNEL);
    expect(existsSync(join(f.binDir, 'weft-cni'))).toBe(true); // the binaries are in place, ready for the retry

    let healthz = 0;
    const server: Server = createServer((req, res) => {
      if (req.url === '/v1/healthz') healthz++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ok: true, version: 'test' }));
    });
    await new Promise<void>((r) => server.listen(socket, r));
    try {
      const r = await installChained(opts(f, { chainAfter: 'cbr0', requireAgent: true, agentSocket: socket, weftKeys: { agentSocket: socket } }));
      expect(r.chain.action).toBe('rewritten');
      expect(r.notes.join('\n')).toMatch(/weft-agent test answers/);
      expect(healthz).toBeGreaterThan(0);
      expect(plugins(join(f.confDir, '10-flannel.conflist'))[1]).toEqual({ type: 'weft-cni', chainingMode: 'generic-veth', agentSocket: socket });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('uninstall after someone else changed the file: weft-cni taken out of it, their change kept', async () => {
    const f = fixture({ '10-flannel.conflist': FLANNEL });
    const file = join(f.confDir, '10-flannel.conflist');
    await installChained(opts(f, { chainAfter: 'cbr0' }));
    const edited = JSON.parse(readFileSync(file, 'utf8'));
    edited.plugins.push({ type: 'bandwidth', capabilities: { bandwidth: true } });
    writeFileSync(file, JSON.stringify(edited, null, 2) + '\n');
    const u = uninstall({ binDir: f.binDir });
    expect(u.notes.join('\n')).toMatch(/changed since install: weft-cni removed from it, the rest left as it is; the original stays in/);
    expect(plugins(file).map((p) => p.type)).toEqual(['flannel', 'portmap', 'bandwidth']);
    expect(readFileSync(`${file}${BACKUP_SUFFIX}`, 'utf8')).toBe(FLANNEL);

    // flannel's DaemonSet writes its file again (no weft): install chains again, renewing the backup.
    const g = fixture({ '10-flannel.conflist': FLANNEL });
    const gf = join(g.confDir, '10-flannel.conflist');
    await installChained(opts(g, { chainAfter: 'cbr0' }));
    writeFileSync(gf, FLANNEL.replace('"hairpinMode": true', '"hairpinMode": false'));
    const again = await installChained(opts(g, { chainAfter: 'cbr0' }));
    expect(again.chain.action).toBe('rewritten');
    expect(again.notes.join('\n')).toMatch(/weft-backup replaced/);
    expect(readFileSync(`${gf}${BACKUP_SUFFIX}`, 'utf8')).toMatch(/"hairpinMode": false/);
    uninstall({ binDir: g.binDir });
    expect(snapshot(g.confDir)).toEqual({ '10-flannel.conflist': FLANNEL.replace('"hairpinMode": true', '"hairpinMode": false') });
  });

  it('uninstall with the backup gone removes weft-cni from the conflist', async () => {
    const f = fixture({ '10-flannel.conflist': FLANNEL });
    const file = join(f.confDir, '10-flannel.conflist');
    await installChained(opts(f, { chainAfter: 'cbr0' }));
    rmSync(`${file}${BACKUP_SUFFIX}`);
    const u = uninstall({ binDir: f.binDir });
    expect(u.notes.join('\n')).toMatch(/no backup of .*weft-cni removed/);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(JSON.parse(FLANNEL));
    expect(readdirSync(f.confDir)).toEqual(['10-flannel.conflist']);
  });
});

describe('weft install --chain-after, the CLI of the shipped executable', () => {
  const weft = resolve(__dirname, '../../../../dist/bin/weft');
  const cli = (args: string[]) => spawnSync(weft, args, { encoding: 'utf8', env: { PATH: process.env.PATH } });

  it('says what it did, says "unchanged" the second time, and exits 2 on a refusal', (ctx) => {
    if (!existsSync(weft)) {
      console.log(`SKIPPED: ${weft} is not built (npx tsc -b apps/cni-plugin && node apps/cni-plugin/bundle.mjs --no-sea)`);
      ctx.skip();
    }
    const f = fixture({ '10-flannel.conflist': FLANNEL });
    const args = ['install', '--from', f.source, '--bin-dir', f.binDir, '--conf-dir', f.confDir, '--chain-after', 'cbr0'];
    const first = cli(args);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/chained: weft-cni in .*10-flannel.conflist \(network cbr0\)/);
    const second = cli(args);
    expect(second.status).toBe(0);
    expect(second.stdout).toMatch(/unchanged: weft-cni is already chained in .*10-flannel.conflist/);
    const missing = cli([...args.slice(0, -1), 'nope']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/network nope not found/);
    expect(cli([...args, '--chaining-mode', 'bogus']).status).toBe(2);
    expect(cli(['install', '--replace', 'cilium-cni']).stderr).toMatch(/--replace goes with --chain-after/);
    const u = cli(['uninstall', '--bin-dir', f.binDir]);
    expect(u.status).toBe(0);
    expect(readFileSync(join(f.confDir, '10-flannel.conflist'), 'utf8')).toBe(FLANNEL);
    expect(existsSync(join(f.binDir, MANIFEST_NAME))).toBe(false);
  });
});
