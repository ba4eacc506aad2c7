/*
 * The real weft-cni shim (dist/bin/weft-cni, built from shim/weft-cni-shim.c) against the real
 * CniServer, with a recording runner in place of the plugin: what crosses the socket, which socket
 * the shim picks, and the fallback to a process of its own when no server answers.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireCommands } from '@weft/testkit';
import { DIST_BIN } from '../testing/cni-run';
import { CniServer, cniSocketFor, type CniRunner } from './cni-server';
import type { CniWireRequest } from './wire';

const SHIM = join(DIST_BIN, 'weft-cni');
const quiet = { info: () => undefined, warn: () => undefined };

function runShim(
  stdin: string | Buffer,
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(SHIM, [], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe('weft-cni shim', () => {
  let dir: string;
  const seen: CniWireRequest[] = [];
  let answer: Awaited<ReturnType<CniRunner>> = { exitCode: 0, stdout: '', stderr: '' };
  const recording: CniRunner = async (req) => {
    seen.push(req);
    return answer;
  };
  let server: CniServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-shim-'));
    server = new CniServer(cniSocketFor(join(dir, 'agent.sock')), quiet, recording);
    await server.start();
  });
  afterAll(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('forwards environment and stdin, and prints the answer with its exit code', async (ctx) => {
    requireCommands(ctx, SHIM);
    answer = { exitCode: 7, stdout: '{"code":7,"msg":"no"}\n', stderr: 'a warning\n' };
    // The scanner must not be fooled by a nested key of the same name, by strings holding JSON
    // punctuation, or by escaped slashes (valid JSON that JSON.stringify never writes).
    const conf = JSON.stringify({
      cniVersion: '1.1.0',
      name: 'n',
      type: 'weft-cni',
      nested: { agentSocket: '/nowhere/agent.sock', list: [{ a: '"}' }] },
      agentSocket: join(dir, 'agent.sock'),
    }).replace(`"${join(dir, 'agent.sock')}"`, `"${join(dir, 'agent.sock').replace(/\//g, '\\/')}"`);
    expect(conf).toContain('\\/agent.sock"');
    const r = await runShim(conf, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' });
    expect(r).toEqual({ code: 7, stdout: '{"code":7,"msg":"no"}\n', stderr: 'a warning\n' });
    const req = seen.at(-1)!;
    expect(req.stdin.toString()).toBe(conf);
    expect(req.env).toMatchObject({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' });
  });

  it('carries a config past the plugin limit whole, so the plugin can refuse it (code 6)', async (ctx) => {
    requireCommands(ctx, SHIM);
    answer = { exitCode: 0, stdout: '', stderr: '' };
    const big = JSON.stringify({ agentSocket: join(dir, 'agent.sock'), pad: 'x'.repeat(1 << 20) });
    await runShim(big, { CNI_COMMAND: 'DEL' });
    expect(seen.at(-1)!.stdin.length).toBe((1 << 20) + 1); // 1 MiB + 1: enough to know it is too big
  });

  it('$WEFT_CNI_SOCKET overrides the config', async (ctx) => {
    requireCommands(ctx, SHIM);
    answer = { exitCode: 0, stdout: 'ok\n', stderr: '' };
    const r = await runShim('{}', { CNI_COMMAND: 'VERSION', WEFT_CNI_SOCKET: cniSocketFor(join(dir, 'agent.sock')) });
    expect(r.stdout).toBe('ok\n');
  });

  it('with no server answering, runs the request in a weft-cni process of its own', async (ctx) => {
    requireCommands(ctx, SHIM, join(DIST_BIN, 'weft'));
    const before = seen.length;
    const conf = JSON.stringify({ cniVersion: '1.0.0', agentSocket: join(dir, 'other-agent.sock') });
    const r = await runShim(conf, { CNI_COMMAND: 'VERSION' });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '1.0.0', supportedVersions: expect.arrayContaining(['1.1.0']) });
    // A real error from the real plugin, stdin replayed: the config was read.
    const bad = await runShim('{"cniVersion":"1.0.0","name":"n","type":"weft-cni","agentSocket":"/no/such.sock"}', {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'c2',
      CNI_NETNS: '/var/run/netns/weft-shim-no-such-netns',
      CNI_IFNAME: 'eth0',
      CNI_PATH: DIST_BIN,
    });
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 3, msg: expect.stringContaining('weft-shim-no-such-netns') });
    expect(seen.length).toBe(before);
  });

  it('falls back the same way once the server has stopped', async (ctx) => {
    requireCommands(ctx, SHIM, join(DIST_BIN, 'weft'));
    const other = new CniServer(cniSocketFor(join(dir, 'stopping.sock')), quiet, recording);
    await other.start();
    await other.stop();
    const r = await runShim(JSON.stringify({ cniVersion: '1.1.0', agentSocket: join(dir, 'stopping.sock') }), {
      CNI_COMMAND: 'VERSION',
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).cniVersion).toBe('1.1.0');
  });
});
