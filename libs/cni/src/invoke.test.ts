import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireCommands } from '@weft/testkit';
import { parseCniArgs } from './cni-args';
import { CniError } from './errors';
import {
  delegateAdd,
  delegateCheck,
  delegateDel,
  delegateGc,
  delegateStatus,
  execPlugin,
  findPlugin,
  pluginVersions,
  type DelegateContext,
} from './invoke';
import type { NetConf } from './types';

const REF = '/usr/lib/cni';
let dir: string;
let scripts: string;

function script(name: string, body: string): string {
  const p = join(scripts, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wc-invoke-'));
  scripts = join(dir, 'bin');
  mkdirSync(scripts);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ctx = (over: Partial<DelegateContext> = {}): DelegateContext => ({
  containerId: 'wc-ctr-1',
  netns: '/proc/self/ns/net',
  ifname: 'eth0',
  args: parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=p1'),
  path: [REF],
  ...over,
});

const hostLocalConf = (cniVersion: string, extra: Record<string, unknown> = {}): NetConf => ({
  cniVersion,
  name: 'wcnet',
  type: 'weft-cni',
  ipam: {
    type: 'host-local',
    dataDir: join(dir, 'ipam'),
    ranges: [[{ subnet: '10.250.7.0/24' }]],
    routes: [{ dst: '0.0.0.0/0' }],
  },
  ...extra,
});

describe('findPlugin', () => {
  it('finds reference plugins and refuses path-like types with 7, missing ones with 50', (c) => {
    requireCommands(c, `${REF}/host-local`);
    expect(findPlugin('host-local', ['/nonexistent', REF])).toBe(`${REF}/host-local`);
    for (const bad of ['', '.', '..', '../host-local', `${REF}/host-local`, 'a\0b']) {
      expect(() => findPlugin(bad, [REF])).toThrow(expect.objectContaining({ code: 7 }));
    }
    expect(() => findPlugin('wc-no-such-plugin', [REF])).toThrow(
      expect.objectContaining({ code: 50, message: expect.stringContaining('wc-no-such-plugin') }),
    );
    expect(() => findPlugin('host-local', [])).toThrow(
      expect.objectContaining({ code: 50, details: 'CNI_PATH is empty' }),
    );
  });
});

describe('delegation to the reference host-local (IPAM gets the whole network config)', () => {
  it('ADD, CHECK, DEL, DEL again', async (c) => {
    requireCommands(c, `${REF}/host-local`);
    const conf = hostLocalConf('1.0.0');
    const result = await delegateAdd('host-local', conf, ctx());
    expect(result.cniVersion).toBe('1.0.0');
    expect(result.ips).toEqual([{ address: '10.250.7.2/24', gateway: '10.250.7.1' }]);
    expect(result.routes).toEqual([{ dst: '0.0.0.0/0' }]);
    const lease = join(dir, 'ipam', 'wcnet', '10.250.7.2');
    expect(readFileSync(lease, 'utf8')).toContain('wc-ctr-1');

    await delegateCheck(
      'host-local',
      { ...conf, prevResult: { cniVersion: '1.0.0', ips: result.ips } },
      ctx(),
    );
    await delegateDel('host-local', conf, ctx({ netns: '' }));
    expect(existsSync(lease)).toBe(false);
    await expect(delegateDel('host-local', conf, ctx({ netns: '' }))).resolves.toBeUndefined();
  });

  it('converts the result to the conf version (0.3.1 gains ips[].version on the wire)', async (c) => {
    requireCommands(c, `${REF}/host-local`);
    const conf = hostLocalConf('0.3.1');
    const result = await delegateAdd('host-local', conf, ctx({ containerId: 'wc-ctr-031' }));
    expect(result.cniVersion).toBe('0.3.1');
    expect(result.ips?.[0]?.address).toMatch(/^10\.250\.7\.\d+\/24$/);
    await delegateDel('host-local', conf, ctx({ containerId: 'wc-ctr-031' }));
  });

  it('a 1.1.0 config works with the 1.0.0 reference plugin by negotiating down, and fails without', async (c) => {
    requireCommands(c, `${REF}/host-local`);
    expect((await pluginVersions(`${REF}/host-local`)).supportedVersions).not.toContain('1.1.0');
    const conf = hostLocalConf('1.1.0', { prevResult: undefined });
    const strict = delegateAdd('host-local', conf, ctx({ containerId: 'wc-ctr-110' }), {
      negotiateVersion: false,
    });
    await expect(strict).rejects.toMatchObject({ code: 1 });
    const result = await delegateAdd('host-local', conf, ctx({ containerId: 'wc-ctr-110' }));
    expect(result.cniVersion).toBe('1.1.0');
    await delegateCheck(
      'host-local',
      { ...conf, prevResult: { cniVersion: '1.1.0', ips: result.ips } },
      ctx({ containerId: 'wc-ctr-110' }),
    );
    // GC and STATUS need 1.1.0: a delegate that cannot do them is skipped, not an error.
    await delegateGc('host-local', { ...conf, 'cni.dev/valid-attachments': [] }, { path: [REF] });
    await delegateStatus('host-local', conf, { path: [REF] });
    await delegateDel('host-local', conf, ctx({ containerId: 'wc-ctr-110' }));
    expect(existsSync(join(dir, 'ipam', 'wcnet', result.ips![0]!.address.split('/')[0]!))).toBe(false);
  });

  it('rethrows the delegate error keeping its code and message', async (c) => {
    requireCommands(c, `${REF}/host-local`);
    const conf = hostLocalConf('1.0.0', {
      ipam: { type: 'host-local', dataDir: join(dir, 'ipam'), ranges: [[{ subnet: '10.250.0.0/33' }]] },
    });
    const err = await delegateAdd('host-local', conf, ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniError);
    expect(err).toMatchObject({ code: 999, msg: 'invalid CIDR address: 10.250.0.0/33' });
  });

  it('DEL through a delegate that is not installed counts as done', async () => {
    await expect(delegateDel('wc-not-installed', hostLocalConf('1.0.0'), ctx())).resolves.toBeUndefined();
    await expect(delegateAdd('wc-not-installed', hostLocalConf('1.0.0'), ctx())).rejects.toMatchObject({
      code: 50,
    });
  });
});

describe('delegation to the reference static IPAM', () => {
  it('returns the configured addresses, routes and dns', async (c) => {
    requireCommands(c, `${REF}/static`);
    const conf: NetConf = {
      cniVersion: '1.0.0',
      name: 'wcnet',
      type: 'weft-cni',
      ipam: {
        type: 'static',
        addresses: [{ address: '10.251.0.9/24', gateway: '10.251.0.1' }, { address: 'fd00:251::9/64' }],
        routes: [{ dst: '0.0.0.0/0', gw: '10.251.0.1' }],
        dns: { nameservers: ['10.251.0.53'], search: ['wc.local'] },
      },
    };
    const result = await delegateAdd('static', conf, ctx());
    expect(result).toEqual({
      cniVersion: '1.0.0',
      ips: [{ address: '10.251.0.9/24', gateway: '10.251.0.1' }, { address: 'fd00:251::9/64' }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.251.0.1' }],
      dns: { nameservers: ['10.251.0.53'], search: ['wc.local'] },
    });
    await delegateDel('static', conf, ctx());
  });
});

describe('execPlugin', () => {
  it('passes the CNI_* environment and conf, inherits PATH, drops our own CNI_* values', async () => {
    const echo = script(
      'wc-echo-env',
      `conf=$(cat)
printf '{"cniVersion":"1.0.0","dns":{"search":["%s","%s","%s","%s","%s","%s","%s","%s"]}}' \\
  "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH" "\${CNI_STRAY:-none}" "\${PATH:+has-path}"
[ "$conf" = '{"cniVersion":"1.0.0","name":"wcnet","type":"wc-echo-env"}' ] || exit 9`,
    );
    const result = await execPlugin({
      pluginPath: echo,
      command: 'ADD',
      conf: { cniVersion: '1.0.0', name: 'wcnet', type: 'wc-echo-env' },
      env: {
        containerId: 'wc-ctr-9',
        netns: '/proc/self/ns/net',
        ifname: 'net1',
        args: 'K8S_POD_NAME=x',
        path: ['/a', '/b'],
      },
      baseEnv: { ...process.env, CNI_STRAY: 'leaked' },
    });
    expect(result?.dns?.search).toEqual([
      'ADD',
      'wc-ctr-9',
      '/proc/self/ns/net',
      'net1',
      'K8S_POD_NAME=x',
      '/a:/b',
      'none',
      'has-path',
    ]);
  });

  it('kills a plugin that exceeds its timeout and reports 11 (retryable)', async () => {
    const slow = script('wc-slow', 'sleep 20');
    const started = Date.now();
    const err = await execPlugin({
      pluginPath: slow,
      command: 'ADD',
      conf: { cniVersion: '1.0.0' },
      env: { path: [] },
      timeoutMs: 300,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 11,
      retryable: true,
      msg: expect.stringContaining('timed out after 300 ms'),
    });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('reports a failure without an error object as 999 with its output', async () => {
    const bad = script('wc-crash', 'echo "panic: something broke"; exit 3');
    const err = await execPlugin({ pluginPath: bad, command: 'DEL', conf: {}, env: { path: [] } }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({
      code: 999,
      msg: 'plugin wc-crash exited with status 3 on DEL',
      details: 'panic: something broke',
    });
  });

  it('keeps code, msg and details of a plugin error object', async () => {
    const refusing = script(
      'wc-refuse',
      `echo '{"cniVersion":"1.0.0","code":107,"msg":"quota exceeded","details":"eni pool empty"}'; exit 1`,
    );
    const err = await execPlugin({ pluginPath: refusing, command: 'ADD', conf: {}, env: { path: [] } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).toJSON('1.0.0')).toEqual({
      cniVersion: '1.0.0',
      code: 107,
      msg: 'quota exceeded',
      details: 'eni pool empty',
    });
  });

  it('refuses a malformed ADD result with 6 and a non-executable plugin with 50', async () => {
    const garbage = script('wc-garbage', 'echo "[1,2]"');
    await expect(
      execPlugin({ pluginPath: garbage, command: 'ADD', conf: {}, env: { path: [] } }),
    ).rejects.toMatchObject({ code: 6 });
    const notExec = join(scripts, 'wc-noexec');
    writeFileSync(notExec, 'x');
    await expect(
      execPlugin({ pluginPath: notExec, command: 'ADD', conf: {}, env: { path: [] } }),
    ).rejects.toMatchObject({ code: 50 });
  });
});
