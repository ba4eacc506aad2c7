import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CniError, CNI_SPEC_VERSIONS, createLogger, type CniResult } from '@weft/cni';
import { runWeftCniWith, selectMode } from './cni-main';
import {
  registeredModes,
  registerMode,
  restoreBuiltInModes,
  unregisterMode,
  type ModeHandlers,
  type ModeName,
} from './modes/registry';

const ROOT = join(__dirname, '..', '..', '..');
const env = {
  CNI_CONTAINERID: 'wc-main-1',
  CNI_NETNS: '/proc/self/ns/net',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/usr/lib/cni',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web',
};
const conf = (extra: Record<string, unknown> = {}, cniVersion = '1.1.0') =>
  JSON.stringify({ cniVersion, name: 'wcnet', type: 'weft-cni', ...extra });

async function cni(command: string, stdin: string, extraEnv: Record<string, string | undefined> = {}) {
  let out = '';
  const code = await runWeftCniWith({
    env: { ...env, CNI_COMMAND: command, ...extraEnv },
    stdin,
    stdout: { write: (s: string) => (out += s) },
    logger: createLogger('test', { env: {} }),
  });
  return { code, out, json: out ? JSON.parse(out) : undefined };
}

const PREV = {
  cniVersion: '1.1.0',
  interfaces: [{ name: 'eth0', sandbox: '/proc/self/ns/net' }],
  ips: [{ address: '10.88.0.4/16', interface: 0 }],
};

function register(name: ModeName, handlers: ModeHandlers) {
  registerMode(name, async () => handlers);
}
/** A build without any mode. */
function noModes() {
  registeredModes().forEach(unregisterMode);
}
afterEach(restoreBuiltInModes);

describe('weft-cni in process', () => {
  it('VERSION lists all five versions', async () => {
    const r = await cni('VERSION', '', {
      CNI_CONTAINERID: undefined,
      CNI_NETNS: undefined,
      CNI_IFNAME: undefined,
    });
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ cniVersion: '1.1.0', supportedVersions: [...CNI_SPEC_VERSIONS] });
  });

  it("STATUS asks the conf's mode, and carries its problem through", async () => {
    // veth, degraded, no IPAM: nothing can be missing.
    expect(await cni('STATUS', conf({ degraded: true }))).toEqual({ code: 0, out: '', json: undefined });
    register('eni', {
      add: async () => PREV,
      del: async () => {},
      check: async () => {},
      gc: async () => {},
      status: async () => {
        throw new CniError(51, 'ENI daemon unreachable', 'existing pods keep their network');
      },
    });
    const r = await cni('STATUS', conf({ mode: 'eni' }));
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ code: 51, msg: 'ENI daemon unreachable' });
    noModes();
    expect((await cni('STATUS', conf())).json).toMatchObject({ code: 50 });
  });

  it('ADD for a mode this build lacks is error 50, never a fake success', async () => {
    noModes();
    for (const [extra, name] of [
      [{}, 'veth'],
      [{ mode: 'ipvlan' }, 'ipvlan'],
      [{ mode: 'eni' }, 'eni'],
      [{ chainingMode: 'generic-veth', prevResult: PREV }, 'generic-veth'],
      [{ chainingMode: 'terway', prevResult: PREV }, 'terway'],
    ] as const) {
      const r = await cni('ADD', conf(extra));
      expect(r.code).toBe(1);
      expect(r.json).toEqual({
        cniVersion: '1.1.0',
        code: 50,
        msg: `mode ${name} is not available in this build`,
      });
    }
    expect((await cni('CHECK', conf({ prevResult: PREV }))).json.code).toBe(50);
  });

  it('DEL and GC for an unavailable mode succeed (DEL is best effort and idempotent)', async () => {
    noModes();
    expect(await cni('DEL', conf())).toMatchObject({ code: 0, out: '' });
    expect(await cni('DEL', conf({ prevResult: PREV }), { CNI_NETNS: '' })).toMatchObject({
      code: 0,
      out: '',
    });
    expect(await cni('GC', conf({ 'cni.dev/valid-attachments': [] }))).toMatchObject({ code: 0, out: '' });
  });

  it('refuses ambiguous chaining with error 7 saying what to do', async () => {
    const noMode = await cni('ADD', conf({ prevResult: PREV }));
    expect(noMode.json).toMatchObject({ code: 7, msg: expect.stringContaining('no chainingMode') });
    const noPrev = await cni('ADD', conf({ chainingMode: 'generic-veth' }));
    expect(noPrev.json).toMatchObject({ code: 7, msg: expect.stringContaining('needs a prevResult') });
    const badChain = await cni('ADD', conf({ chainingMode: 'flannel', prevResult: PREV }));
    expect(badChain.json).toMatchObject({ code: 7, msg: expect.stringContaining('"flannel"') });
    const badMode = await cni('ADD', conf({ mode: 'macvlan' }));
    expect(badMode.json).toMatchObject({ code: 7, msg: expect.stringContaining('"macvlan"') });
  });

  it('routes DEL/CHECK by chainingMode even when a prevResult is present, else by mode', () => {
    const c = (extra: Record<string, unknown>) => JSON.parse(conf(extra));
    expect(selectMode({ command: 'DEL', conf: c({ prevResult: PREV }) })).toBe('veth');
    expect(selectMode({ command: 'CHECK', conf: c({ mode: 'eni', prevResult: PREV }) })).toBe('eni');
    expect(selectMode({ command: 'DEL', conf: c({ chainingMode: 'terway' }) })).toBe('terway');
    expect(selectMode({ command: 'ADD', conf: c({ chainingMode: 'terway', prevResult: PREV }) })).toBe(
      'terway',
    );
  });

  it('hands requests to a registered mode and prints its result in the conf version', async () => {
    const calls: string[] = [];
    const result: CniResult = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'eth0', mtu: 1500, sandbox: '/proc/self/ns/net' }],
      ips: [{ address: '10.99.0.7/24', gateway: '10.99.0.1', interface: 0 }],
    };
    register('veth', {
      add: async (ctx) => (calls.push(`add ${ctx.args.K8S_POD_NAME}`), result),
      del: async (ctx) => void calls.push(`del ${ctx.netns || '-'}`),
      check: async () => void calls.push('check'),
      gc: async (ctx) => void calls.push(`gc ${ctx.validAttachments.length}`),
    });
    const add = await cni('ADD', conf({}, '0.4.0'));
    expect(add.json).toEqual({
      cniVersion: '0.4.0',
      interfaces: [{ name: 'eth0', sandbox: '/proc/self/ns/net' }],
      ips: [{ version: '4', interface: 0, address: '10.99.0.7/24', gateway: '10.99.0.1' }],
    });
    await cni('CHECK', conf({ prevResult: { ...result, cniVersion: '0.4.0' } }, '0.4.0'));
    await cni('DEL', conf({}, '0.4.0'), { CNI_NETNS: '' });
    await cni('GC', conf({ 'cni.dev/valid-attachments': [{ containerID: 'x', ifname: 'eth0' }] }));
    expect(calls).toEqual(['add web', 'check', 'del -', 'gc 1']);
  });
});

describe('weft-cni bundle, end to end', () => {
  it('builds and answers VERSION as a real process', (c) => {
    if (!existsSync('/usr/bin/flock')) {
      console.log('SKIPPED: needs flock(1) to build the bundle safely');
      c.skip();
    }
    execFileSync(
      'flock',
      ['/tmp/weft-bundle.lock', process.execPath, join(ROOT, 'apps/cni-plugin/bundle.mjs')],
      { cwd: ROOT, stdio: 'pipe' },
    );
    const bin = join(ROOT, 'dist/bin/weft-cni');
    const envNoCa = { PATH: process.env.PATH ?? '/usr/bin:/bin', CNI_COMMAND: 'VERSION' };
    const run = spawnSync(bin, [], { env: envNoCa, input: '', encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({
      cniVersion: '1.1.0',
      supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    });

    // And one failing request: exactly one spec error document on stdout, exit status 1.
    const add = spawnSync(bin, [], {
      env: { ...envNoCa, ...env, CNI_COMMAND: 'ADD' },
      input: conf(),
      encoding: 'utf8',
    });
    expect(add.status).toBe(1);
    expect(JSON.parse(add.stdout)).toEqual({
      cniVersion: '1.1.0',
      code: 7,
      msg: 'invalid network config: no "ipam" section (weft-cni needs one to get addresses, e.g. {"type": "weft-host-local", "ranges": [...]})',
    });
  });
});
