import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { dispatch, type CniContext, type CniHandlers, type DispatchOptions } from './dispatch';
import { CniError } from './errors';
import { createLogger } from './logger';
import { MAX_CONF_BYTES } from './netconf';
import { CNI_SPEC_VERSIONS } from './versions';
import type { CniResult } from './types';

const NETNS = '/proc/self/ns/net';
const baseEnv = {
  CNI_CONTAINERID: 'wc-dispatch-1',
  CNI_NETNS: NETNS,
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/usr/lib/cni:/opt/cni/bin',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1',
};
const RESULT: CniResult = {
  cniVersion: '1.1.0',
  interfaces: [{ name: 'eth0', mac: '0a:58:0a:63:00:05', mtu: 1450, sandbox: NETNS }],
  ips: [{ address: '10.99.0.5/24', gateway: '10.99.0.1', interface: 0 }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.99.0.1', table: 254 }],
};

async function run(
  handlers: CniHandlers,
  command: string,
  stdin: DispatchOptions['stdin'],
  env: Record<string, string | undefined> = {},
) {
  let out = '';
  const code = await dispatch(handlers, {
    env: { ...baseEnv, CNI_COMMAND: command, ...env },
    stdin,
    stdout: { write: (s: string) => (out += s) },
    logger: createLogger('t', { env: {} }),
  });
  return {
    code,
    out,
    json: out ? JSON.parse(out) : undefined,
    documents: out.split('\n').filter(Boolean).length,
  };
}

const conf = (v: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: v, name: 'wcnet', type: 'weft-cni', ...extra });

function recorder() {
  const seen: CniContext[] = [];
  const handlers: CniHandlers = {
    add: async (ctx) => (seen.push(ctx), RESULT),
    del: async (ctx) => void seen.push(ctx),
    check: async (ctx) => void seen.push(ctx),
    gc: async (ctx) => void seen.push(ctx),
    status: async (ctx) => void seen.push(ctx),
  };
  return { seen, handlers };
}

describe('dispatch', () => {
  it('answers VERSION itself with all five versions, with or without stdin', async () => {
    const { handlers, seen } = recorder();
    for (const stdin of ['', '{"cniVersion":"0.4.0"}', 'not json']) {
      const r = await run(handlers, 'VERSION', stdin, {
        CNI_CONTAINERID: undefined,
        CNI_NETNS: undefined,
        CNI_IFNAME: undefined,
        CNI_PATH: undefined,
      });
      expect(r.code).toBe(0);
      expect(r.json.supportedVersions).toEqual([...CNI_SPEC_VERSIONS]);
      expect(r.json.cniVersion).toBe(stdin.includes('0.4.0') ? '0.4.0' : '1.1.0');
    }
    expect(seen).toHaveLength(0);
  });

  it('gives ADD handlers a typed context and prints the result in the conf version', async () => {
    for (const v of CNI_SPEC_VERSIONS) {
      const { handlers, seen } = recorder();
      const r = await run(handlers, 'ADD', conf(v, { mtu: 1450 }));
      expect(r.code).toBe(0);
      expect(r.documents).toBe(1);
      expect(r.json.cniVersion).toBe(v);
      expect('version' in r.json.ips[0]).toBe(v.startsWith('0.'));
      expect('table' in r.json.routes[0]).toBe(v === '1.1.0');
      const ctx = seen[0]!;
      expect(ctx).toMatchObject({
        command: 'ADD',
        containerId: 'wc-dispatch-1',
        netns: NETNS,
        ifname: 'eth0',
        path: ['/usr/lib/cni', '/opt/cni/bin'],
      });
      expect(ctx.args.K8S_POD_NAME).toBe('pod1');
      expect(ctx.conf.mtu).toBe(1450);
      expect(ctx.rawConf.toString()).toBe(conf(v, { mtu: 1450 }));
      expect(ctx.prevResult).toBeUndefined();
    }
  });

  it('parses prevResult for the handler', async () => {
    const { handlers, seen } = recorder();
    const prev = { cniVersion: '1.0.0', ips: [{ address: '10.1.0.2/16' }] };
    await run(handlers, 'ADD', conf('1.0.0', { prevResult: prev }));
    expect(seen[0]!.prevResult).toEqual(prev);
  });

  it('prints nothing for successful DEL, CHECK, GC, STATUS', async () => {
    const { handlers, seen } = recorder();
    for (const cmd of ['DEL', 'CHECK', 'GC', 'STATUS']) {
      const r = await run(
        handlers,
        cmd,
        conf('1.1.0', { 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }] }),
      );
      expect({ cmd, code: r.code, out: r.out }).toEqual({ cmd, code: 0, out: '' });
    }
    expect(seen.map((c) => c.command)).toEqual(['DEL', 'CHECK', 'GC', 'STATUS']);
    expect(seen[2]!.validAttachments).toEqual([{ containerID: 'a', ifname: 'eth0' }]);
    expect(seen[2]!.containerId).toBe('');
  });

  it('succeeds silently when optional handlers are missing', async () => {
    const r = await run({ add: async () => RESULT }, 'DEL', conf('1.0.0'));
    expect(r).toMatchObject({ code: 0, out: '' });
  });

  it('DEL runs with a vanished netns', async () => {
    const { handlers, seen } = recorder();
    const r = await run(handlers, 'DEL', conf('1.0.0'), { CNI_NETNS: '/var/run/netns/wc-vanished' });
    expect(r.code).toBe(0);
    expect(seen[0]!.netns).toBe('');
  });

  it('refuses GC and STATUS before 1.1.0 and CHECK before 0.4.0 with error 1', async () => {
    const { handlers, seen } = recorder();
    for (const [cmd, v] of [
      ['GC', '1.0.0'],
      ['STATUS', '0.4.0'],
      ['CHECK', '0.3.1'],
    ] as const) {
      const r = await run(handlers, cmd, conf(v));
      expect(r.code).toBe(1);
      expect(r.json).toMatchObject({ cniVersion: v, code: 1, msg: expect.stringContaining(cmd) });
    }
    expect(seen).toHaveLength(0);
  });

  it('reports env and config errors as one spec JSON document', async () => {
    const { handlers } = recorder();
    const cases: Array<[string, string, Record<string, string | undefined>, number]> = [
      ['ADD', conf('1.0.0'), { CNI_IFNAME: 'a/b' }, 4],
      ['BOGUS', conf('1.0.0'), {}, 4],
      ['ADD', conf('1.0.0'), { CNI_NETNS: '/etc/hostname' }, 4],
      ['ADD', '', {}, 6],
      ['ADD', '[]', {}, 6],
      ['ADD', conf('0.2.0'), {}, 1],
      ['ADD', conf('1.0.0', { name: 'bad name' }), {}, 7],
    ];
    for (const [cmd, stdin, env, code] of cases) {
      const r = await run(handlers, cmd, stdin, env);
      expect(r.code).toBe(1);
      expect(r.documents).toBe(1);
      expect(r.json.code).toBe(code);
      expect(typeof r.json.msg).toBe('string');
    }
  });

  it('refuses more than 1 MiB on a stdin stream without reading it all', async () => {
    const { handlers, seen } = recorder();
    let produced = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const endless = new Readable({
      read() {
        produced += chunk.length;
        this.push(produced > 16 * MAX_CONF_BYTES ? null : chunk);
      },
    });
    const r = await run(handlers, 'ADD', endless);
    expect(r.json.code).toBe(6);
    expect(r.json.msg).toContain('too large');
    expect(produced).toBeLessThan(4 * MAX_CONF_BYTES);
    expect(seen).toHaveLength(0);
  });

  it('answers error 1 for a version the plugin does not speak', async () => {
    let out = '';
    const code = await dispatch(recorder().handlers, {
      env: { ...baseEnv, CNI_COMMAND: 'ADD' },
      stdin: conf('0.3.0'),
      stdout: { write: (s: string) => (out += s) },
      supportedVersions: ['1.0.0', '1.1.0'],
      logger: createLogger('t', { env: {} }),
    });
    expect(code).toBe(1);
    expect(JSON.parse(out)).toMatchObject({
      code: 1,
      cniVersion: '0.3.0',
      details: expect.stringContaining('1.1.0'),
    });
  });

  it('passes handler CniErrors through and turns crashes into 999 without a stack', async () => {
    const failing: CniHandlers = {
      add: async () => {
        throw new CniError(11, 'agent busy', 'retry in a second');
      },
      del: async () => {
        throw new TypeError("Cannot read properties of undefined (reading 'x')");
      },
    };
    const a = await run(failing, 'ADD', conf('1.0.0'));
    expect(a.json).toEqual({
      cniVersion: '1.0.0',
      code: 11,
      msg: 'agent busy',
      details: 'retry in a second',
    });
    const d = await run(failing, 'DEL', conf('1.0.0'));
    expect(d.code).toBe(1);
    expect(d.json).toEqual({
      cniVersion: '1.0.0',
      code: 999,
      msg: "Cannot read properties of undefined (reading 'x')",
    });
    expect(d.out).not.toContain('    at ');
  });

  it('treats a malformed ADD result from the handler as an internal error', async () => {
    const r = await run(
      { add: async () => ({ cniVersion: '1.0.0', ips: [{ address: 'bogus' }] }) as CniResult },
      'ADD',
      conf('1.0.0'),
    );
    expect(r.json.code).toBe(999);
    expect(r.json.msg).toContain('invalid result');
  });

  it('logs to the conf logFile, never to stdout', async () => {
    const lines: string[] = [];
    let out = '';
    await dispatch(recorder().handlers, {
      env: { ...baseEnv, CNI_COMMAND: 'ADD' },
      stdin: conf('1.0.0'),
      stdout: { write: (s: string) => (out += s) },
      logger: createLogger('t', { env: { WEFT_LOG_LEVEL: 'debug' }, sink: (l) => lines.push(l) }),
    });
    expect(lines.some((l) => JSON.parse(l).msg === 'invoked')).toBe(true);
    expect(out.split('\n').filter(Boolean)).toHaveLength(1);
  });
});
