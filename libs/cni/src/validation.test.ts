import { describe, expect, it } from 'vitest';
import { parseCniArgs } from './cni-args';
import { parseCniEnv, type EnvSource } from './env';
import { CniError } from './errors';
import {
  MAX_CONF_BYTES,
  negotiateConfListVersion,
  parseNetConf,
  parseNetConfList,
  pluginConfFromList,
  validAttachments,
} from './netconf';

/** /proc/self/ns/net is a real network namespace on nsfs that any user can stat: no root needed. */
const NETNS = '/proc/self/ns/net';
const conf = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: '1.0.0', name: 'wcnet', type: 'weft-cni', ...extra });
const env = (extra: EnvSource = {}): EnvSource => ({
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'wc-0123abc',
  CNI_NETNS: NETNS,
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/usr/lib/cni',
  ...extra,
});
const without = (e: EnvSource, key: string): EnvSource => {
  const copy = { ...e };
  delete copy[key];
  return copy;
};

interface Case {
  name: string;
  run: () => unknown;
  code: number;
  /** Text the message must contain: the offending key or value. */
  mentions: string;
}

const cases: Case[] = [
  // ---- stdin / network config ----
  { name: 'stdin empty', run: () => parseNetConf(''), code: 6, mentions: 'empty' },
  { name: 'stdin only whitespace', run: () => parseNetConf(' \n'), code: 6, mentions: 'empty' },
  { name: 'stdin not JSON', run: () => parseNetConf('{"cniVersion":'), code: 6, mentions: 'not valid JSON' },
  {
    name: 'stdin a JSON array',
    run: () => parseNetConf('[{"cniVersion":"1.0.0"}]'),
    code: 6,
    mentions: 'an array',
  },
  { name: 'stdin a JSON string', run: () => parseNetConf('"x"'), code: 6, mentions: 'string' },
  {
    name: 'stdin over 1 MiB',
    run: () => parseNetConf(conf({ pad: 'x'.repeat(MAX_CONF_BYTES) })),
    code: 6,
    mentions: 'too large',
  },
  {
    name: 'cniVersion missing',
    run: () => parseNetConf('{"name":"wcnet","type":"x"}'),
    code: 1,
    mentions: 'cniVersion',
  },
  {
    name: 'cniVersion 0.2.0',
    run: () => parseNetConf(conf({ cniVersion: '0.2.0' })),
    code: 1,
    mentions: '"0.2.0"',
  },
  {
    name: 'cniVersion 9.9.9',
    run: () => parseNetConf(conf({ cniVersion: '9.9.9' })),
    code: 1,
    mentions: '"9.9.9"',
  },
  {
    name: 'cniVersion not a string',
    run: () => parseNetConf(conf({ cniVersion: 1 })),
    code: 7,
    mentions: 'cniVersion 1',
  },
  { name: 'name missing', run: () => parseNetConf(conf({ name: undefined })), code: 7, mentions: 'name' },
  { name: 'name with a slash', run: () => parseNetConf(conf({ name: 'a/b' })), code: 7, mentions: '"a/b"' },
  {
    name: 'name starting with a dot',
    run: () => parseNetConf(conf({ name: '.net' })),
    code: 7,
    mentions: '".net"',
  },
  {
    name: 'name with a space',
    run: () => parseNetConf(conf({ name: 'my net' })),
    code: 7,
    mentions: '"my net"',
  },
  { name: 'type missing', run: () => parseNetConf(conf({ type: undefined })), code: 7, mentions: 'type' },
  { name: 'type a number', run: () => parseNetConf(conf({ type: 3 })), code: 7, mentions: 'type 3' },
  {
    name: 'prevResult of another version',
    run: () => parseNetConf(conf({ prevResult: { cniVersion: '0.4.0', ips: [] } })),
    code: 1,
    mentions: 'prevResult.cniVersion "0.4.0"',
  },
  {
    name: 'prevResult not an object',
    run: () => parseNetConf(conf({ prevResult: [1] })),
    code: 7,
    mentions: 'prevResult',
  },
  {
    name: 'prevResult with a bad address',
    run: () => parseNetConf(conf({ prevResult: { ips: [{ address: 'nope' }] } })),
    code: 7,
    mentions: 'prevResult.ips[0].address "nope"',
  },
  { name: 'mtu a string', run: () => parseNetConf(conf({ mtu: '1500' })), code: 7, mentions: 'mtu "1500"' },
  { name: 'mtu too small', run: () => parseNetConf(conf({ mtu: 10 })), code: 7, mentions: 'mtu 10' },
  {
    name: 'ipam not an object',
    run: () => parseNetConf(conf({ ipam: 'host-local' })),
    code: 7,
    mentions: 'ipam "host-local"',
  },
  {
    name: 'ipam without type',
    run: () => parseNetConf(conf({ ipam: { subnet: '10.0.0.0/8' } })),
    code: 7,
    mentions: 'ipam.type',
  },
  {
    name: 'dns not an object',
    run: () => parseNetConf(conf({ dns: ['8.8.8.8'] })),
    code: 7,
    mentions: 'dns',
  },
  {
    name: 'dns.nameservers a string',
    run: () => parseNetConf(conf({ dns: { nameservers: '8.8.8.8' } })),
    code: 7,
    mentions: 'dns.nameservers "8.8.8.8"',
  },
  {
    name: 'dns.search with a number',
    run: () => parseNetConf(conf({ dns: { search: ['a', 1] } })),
    code: 7,
    mentions: 'dns.search[1] 1',
  },
  {
    name: 'capabilities not an object',
    run: () => parseNetConf(conf({ capabilities: true })),
    code: 7,
    mentions: 'capabilities true',
  },
  {
    name: 'capabilities value not boolean',
    run: () => parseNetConf(conf({ capabilities: { portMappings: 'yes' } })),
    code: 7,
    mentions: 'capabilities.portMappings "yes"',
  },
  {
    name: 'runtimeConfig an array',
    run: () => parseNetConf(conf({ runtimeConfig: [] })),
    code: 7,
    mentions: 'runtimeConfig []',
  },
  { name: 'args a string', run: () => parseNetConf(conf({ args: 'x' })), code: 7, mentions: 'args "x"' },
  {
    name: 'ipMasq a string',
    run: () => parseNetConf(conf({ ipMasq: 'true' })),
    code: 7,
    mentions: 'ipMasq "true"',
  },
  {
    name: 'valid-attachments malformed',
    run: () =>
      parseNetConf(conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'a' }] })),
    code: 7,
    mentions: 'cni.dev/valid-attachments[0]',
  },
  // ---- conflists ----
  { name: 'conflist empty', run: () => parseNetConfList(''), code: 6, mentions: 'empty' },
  { name: 'conflist an array', run: () => parseNetConfList('[]'), code: 6, mentions: 'an array' },
  {
    name: 'conflist without plugins',
    run: () => parseNetConfList(conf({ type: undefined })),
    code: 7,
    mentions: 'plugins',
  },
  {
    name: 'conflist plugins empty',
    run: () => parseNetConfList(conf({ plugins: [] })),
    code: 7,
    mentions: 'plugins []',
  },
  {
    name: 'conflist plugin without type',
    run: () => parseNetConfList(conf({ plugins: [{ mtu: 1500 }] })),
    code: 7,
    mentions: 'plugins[0].type',
  },
  {
    name: 'conflist plugin ipam wrong',
    run: () => parseNetConfList(conf({ plugins: [{ type: 'a', ipam: 5 }] })),
    code: 7,
    mentions: 'plugins[0].ipam 5',
  },
  {
    name: 'conflist cniVersions not strings',
    run: () => parseNetConfList(conf({ cniVersions: [1], plugins: [{ type: 'a' }] })),
    code: 7,
    mentions: 'cniVersions [1]',
  },
  {
    name: 'conflist no supported version',
    run: () =>
      parseNetConfList(
        conf({ cniVersion: undefined, cniVersions: ['0.2.0', '2.0.0'], plugins: [{ type: 'a' }] }),
      ),
    code: 1,
    mentions: '0.2.0',
  },
  {
    name: 'conflist disableCheck a string',
    run: () => parseNetConfList(conf({ disableCheck: 'true', plugins: [{ type: 'a' }] })),
    code: 7,
    mentions: 'disableCheck "true"',
  },
  {
    name: 'conflist bad name',
    run: () => parseNetConfList(conf({ name: '-x', plugins: [{ type: 'a' }] })),
    code: 7,
    mentions: '"-x"',
  },
  // ---- environment ----
  {
    name: 'no CNI_COMMAND',
    run: () => parseCniEnv(without(env(), 'CNI_COMMAND')),
    code: 4,
    mentions: 'CNI_COMMAND',
  },
  {
    name: 'unknown CNI_COMMAND',
    run: () => parseCniEnv(env({ CNI_COMMAND: 'ATTACH' })),
    code: 4,
    mentions: '"ATTACH"',
  },
  {
    name: 'lower-case CNI_COMMAND',
    run: () => parseCniEnv(env({ CNI_COMMAND: 'add' })),
    code: 4,
    mentions: '"add"',
  },
  {
    name: 'ADD without CNI_CONTAINERID',
    run: () => parseCniEnv(without(env(), 'CNI_CONTAINERID')),
    code: 4,
    mentions: 'CNI_CONTAINERID',
  },
  {
    name: 'ADD without CNI_IFNAME',
    run: () => parseCniEnv(without(env(), 'CNI_IFNAME')),
    code: 4,
    mentions: 'CNI_IFNAME',
  },
  {
    name: 'ADD without CNI_NETNS',
    run: () => parseCniEnv(without(env(), 'CNI_NETNS')),
    code: 4,
    mentions: 'CNI_NETNS',
  },
  {
    name: 'ADD without CNI_PATH',
    run: () => parseCniEnv(without(env(), 'CNI_PATH')),
    code: 4,
    mentions: 'CNI_PATH',
  },
  {
    name: 'CHECK without CNI_NETNS',
    run: () => parseCniEnv(without(env({ CNI_COMMAND: 'CHECK' }), 'CNI_NETNS')),
    code: 4,
    mentions: 'CNI_NETNS',
  },
  {
    name: 'CHECK without CNI_CONTAINERID',
    run: () => parseCniEnv(without(env({ CNI_COMMAND: 'CHECK' }), 'CNI_CONTAINERID')),
    code: 4,
    mentions: 'CNI_CONTAINERID',
  },
  {
    name: 'DEL without CNI_IFNAME',
    run: () => parseCniEnv(without(env({ CNI_COMMAND: 'DEL' }), 'CNI_IFNAME')),
    code: 4,
    mentions: 'CNI_IFNAME',
  },
  {
    name: 'ifname 16 bytes',
    run: () => parseCniEnv(env({ CNI_IFNAME: 'abcdefghijklmnop' })),
    code: 4,
    mentions: '"abcdefghijklmnop"',
  },
  {
    name: 'ifname with /',
    run: () => parseCniEnv(env({ CNI_IFNAME: 'eth/0' })),
    code: 4,
    mentions: '"eth/0"',
  },
  {
    name: 'ifname with :',
    run: () => parseCniEnv(env({ CNI_IFNAME: 'eth0:1' })),
    code: 4,
    mentions: '"eth0:1"',
  },
  {
    name: 'ifname with a space',
    run: () => parseCniEnv(env({ CNI_IFNAME: 'eth 0' })),
    code: 4,
    mentions: '"eth 0"',
  },
  {
    name: 'ifname with a tab',
    run: () => parseCniEnv(env({ CNI_IFNAME: 'eth\t0' })),
    code: 4,
    mentions: 'CNI_IFNAME',
  },
  { name: 'ifname "."', run: () => parseCniEnv(env({ CNI_IFNAME: '.' })), code: 4, mentions: '"."' },
  { name: 'ifname ".."', run: () => parseCniEnv(env({ CNI_IFNAME: '..' })), code: 4, mentions: '".."' },
  {
    name: 'ifname non-ASCII',
    run: () => parseCniEnv(env({ CNI_IFNAME: 'éth0' })),
    code: 4,
    mentions: '"éth0"',
  },
  {
    name: 'ifname 15 chars but 16 bytes',
    run: () => parseCniEnv(env({ CNI_IFNAME: 'abcdefghijklmn\u00e9' })),
    code: 4,
    mentions: 'CNI_IFNAME',
  },
  {
    name: 'containerid with a slash',
    run: () => parseCniEnv(env({ CNI_CONTAINERID: '../etc' })),
    code: 4,
    mentions: '"../etc"',
  },
  {
    name: 'containerid starting with -',
    run: () => parseCniEnv(env({ CNI_CONTAINERID: '-abc' })),
    code: 4,
    mentions: '"-abc"',
  },
  {
    name: 'containerid with ;',
    run: () => parseCniEnv(env({ CNI_CONTAINERID: 'a;b' })),
    code: 4,
    mentions: '"a;b"',
  },
  {
    name: 'netns does not exist',
    run: () => parseCniEnv(env({ CNI_NETNS: '/var/run/netns/wc-nonexistent' })),
    code: 3,
    mentions: 'wc-nonexistent',
  },
  {
    name: 'netns a regular file',
    run: () => parseCniEnv(env({ CNI_NETNS: '/etc/hostname' })),
    code: 4,
    mentions: '"/etc/hostname"',
  },
  {
    name: 'netns a directory',
    run: () => parseCniEnv(env({ CNI_NETNS: '/tmp' })),
    code: 4,
    mentions: '"/tmp"',
  },
  {
    name: 'netns a mount namespace',
    run: () => parseCniEnv(env({ CNI_NETNS: '/proc/self/ns/mnt' })),
    code: 4,
    mentions: 'mnt namespace',
  },
  {
    name: 'netns relative path',
    run: () => parseCniEnv(env({ CNI_NETNS: 'proc/self/ns/net' })),
    code: 4,
    mentions: 'absolute',
  },
  {
    name: 'DEL netns a regular file',
    run: () => parseCniEnv(env({ CNI_COMMAND: 'DEL', CNI_NETNS: '/etc/hostname' })),
    code: 4,
    mentions: '"/etc/hostname"',
  },
  // ---- CNI_ARGS ----
  {
    name: 'CNI_ARGS pair without =',
    run: () => parseCniEnv(env({ CNI_ARGS: 'IgnoreUnknown=1;FOO' })),
    code: 4,
    mentions: '"FOO"',
  },
  {
    name: 'CNI_ARGS two = in a pair',
    run: () => parseCniArgs('K8S_POD_NAME=a=b'),
    code: 4,
    mentions: 'K8S_POD_NAME=a=b',
  },
  { name: 'CNI_ARGS empty key', run: () => parseCniArgs('=x'), code: 4, mentions: '"=x"' },
  {
    name: 'CNI_ARGS unknown key',
    run: () => parseCniArgs('FOO=bar;K8S_POD_NAME=p'),
    code: 4,
    mentions: 'FOO',
  },
  {
    name: 'CNI_ARGS unknown key, IgnoreUnknown=0',
    run: () => parseCniArgs('IgnoreUnknown=0;FOO=bar'),
    code: 4,
    mentions: 'FOO',
  },
  {
    name: 'CNI_ARGS IgnoreUnknown not boolean',
    run: () => parseCniArgs('IgnoreUnknown=maybe'),
    code: 4,
    mentions: '"maybe"',
  },
  {
    name: 'CNI_ARGS duplicate key',
    run: () => parseCniArgs('K8S_POD_NAME=a;K8S_POD_NAME=b'),
    code: 4,
    mentions: 'K8S_POD_NAME',
  },
  {
    name: 'CNI_ARGS control char in value',
    run: () => parseCniArgs('K8S_POD_NAME=a\nb'),
    code: 4,
    mentions: 'K8S_POD_NAME',
  },
  {
    name: 'CNI_ARGS bad key characters',
    run: () => parseCniArgs('IgnoreUnknown=1;K$=1'),
    code: 4,
    mentions: '"K$"',
  },
];

describe('bad input gets the spec error code and a message naming the culprit', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    let caught: unknown;
    try {
      c.run();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CniError);
    const e = caught as CniError;
    expect({ code: e.code, msg: e.message }).toEqual({
      code: c.code,
      msg: expect.stringContaining(c.mentions),
    });
  });
});

describe('good input', () => {
  it('keeps unknown top-level keys and parses a full 1.1.0 config', () => {
    const c = parseNetConf(
      conf({
        cniVersion: '1.1.0',
        mode: 'veth',
        somethingElse: { deep: [1] },
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.99.0.0/24' }]] },
        dns: { nameservers: ['10.96.0.10'], search: ['svc'] },
        capabilities: { portMappings: true },
        runtimeConfig: { portMappings: [] },
        args: { cni: { labels: [] } },
        mtu: 1500,
        prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.99.0.2/24' }] },
        'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }],
      }),
    );
    expect(c.somethingElse).toEqual({ deep: [1] });
    expect(c.mode).toBe('veth');
    expect(validAttachments(c)).toEqual([{ containerID: 'c1', ifname: 'eth0' }]);
  });

  it('accepts a prevResult without its own cniVersion (taken as the conf version)', () => {
    expect(parseNetConf(conf({ prevResult: { ips: [] } })).prevResult).toEqual({ ips: [] });
  });

  it('reads a valid ADD environment, with typed CNI_ARGS', () => {
    const e = parseCniEnv(
      env({
        CNI_ARGS:
          'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_UID=u-1;K8S_POD_INFRA_CONTAINER_ID=abc;X=y',
        CNI_PATH: '/a::/b',
      }),
    );
    expect(e).toMatchObject({
      command: 'ADD',
      containerId: 'wc-0123abc',
      netns: NETNS,
      ifname: 'eth0',
      path: ['/a', '/b'],
    });
    expect(e.args.K8S_POD_NAMESPACE).toBe('default');
    expect(e.args.K8S_POD_NAME).toBe('web-0');
    expect(e.args.K8S_POD_UID).toBe('u-1');
    expect(e.args.K8S_POD_INFRA_CONTAINER_ID).toBe('abc');
    expect(e.args.values.X).toBe('y');
    expect(e.args.ignoreUnknown).toBe(true);
  });

  it('accepts names the kernel accepts: 15 bytes, dots inside, VLAN-style', () => {
    for (const ifname of ['abcdefghijklmno', 'eth0.100', 'net-1_a', 'a..b']) {
      expect(parseCniEnv(env({ CNI_IFNAME: ifname })).ifname).toBe(ifname);
    }
  });

  it('DEL tolerates an empty or vanished netns; VERSION needs nothing but the command', () => {
    expect(parseCniEnv(env({ CNI_COMMAND: 'DEL', CNI_NETNS: '' })).netns).toBe('');
    expect(parseCniEnv(env({ CNI_COMMAND: 'DEL', CNI_NETNS: '/var/run/netns/wc-gone' })).netns).toBe('');
    expect(parseCniEnv(without(env({ CNI_COMMAND: 'DEL' }), 'CNI_NETNS')).netns).toBe('');
    expect(parseCniEnv({ CNI_COMMAND: 'VERSION' }).command).toBe('VERSION');
    expect(parseCniEnv({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }).path).toEqual(['/x']);
    expect(parseCniEnv({ CNI_COMMAND: 'STATUS' }).path).toEqual([]);
  });

  it('accepts CNI_ARGS quirks runtimes produce: trailing ";", empty values, IgnoreUnknown=true', () => {
    const a = parseCniArgs('IgnoreUnknown=true;K8S_POD_UID=;Other=1;');
    expect(a.K8S_POD_UID).toBe('');
    expect(a.values.Other).toBe('1');
    expect(parseCniArgs('MYKEY=v', { knownKeys: ['MYKEY'] }).values.MYKEY).toBe('v');
    expect(parseCniArgs(undefined).values).toEqual({});
  });

  it('negotiates conflist versions: highest of cniVersions we support', () => {
    expect(
      negotiateConfListVersion({ cniVersion: '0.4.0', cniVersions: ['0.4.0', '1.0.0', '1.1.0', '9.0.0'] }),
    ).toBe('1.1.0');
    expect(negotiateConfListVersion({ cniVersion: '0.3.1' })).toBe('0.3.1');
    expect(
      negotiateConfListVersion({ cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'] }, ['0.4.0', '1.0.0']),
    ).toBe('1.0.0');
    const list = parseNetConfList(
      JSON.stringify({
        cniVersion: '1.0.0',
        cniVersions: ['1.0.0', '1.1.0'],
        name: 'wcnet',
        disableGC: true,
        plugins: [{ type: 'weft-cni' }, { type: 'portmap', capabilities: { portMappings: true } }],
      }),
    );
    expect(pluginConfFromList(list, 1)).toEqual({
      type: 'portmap',
      capabilities: { portMappings: true },
      cniVersion: '1.1.0',
      name: 'wcnet',
    });
  });
});
