/**
 * The flannel stand-in does what flannel's CNI plugin does: the delegate config it builds from
 * subnet.env, where it saves it, how ADD/DEL/CHECK/VERSION and errors behave. A recording fake
 * `bridge` stands in for the delegate, so no root is needed (the privileged chain tests run it
 * with the real bridge).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { flannelBinDir, FLANNEL_STANDIN } from './chain-fixtures';
// eslint-disable-next-line @typescript-eslint/ban-ts-comment
// @ts-ignore -- a plain ESM script, no types
import { delegateConf, loadSubnetEnv } from './flannel-standin.mjs';

const work = mkdtempSync(join(tmpdir(), 'wflannel-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const bin = flannelBinDir(join(work, 'bin'));
// The fake delegate: records what it got, answers like bridge would.
writeFileSync(
  join(bin, 'bridge'),
  `#!/bin/sh
cat >"${work}/delegate-$CNI_COMMAND.json"
env | grep '^CNI_' | sort >"${work}/delegate-$CNI_COMMAND.env"
[ -f "${work}/fail" ] && { echo '{"cniVersion":"0.3.1","code":11,"msg":"bridge is busy"}'; exit 1; }
[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"0.3.1","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"version":"4","address":"10.244.1.2/24","gateway":"10.244.1.1","interface":0}],"dns":{}}'
exit 0
`,
);
chmodSync(join(bin, 'bridge'), 0o755);

function subnetEnv(text: string): string {
  const file = join(work, `subnet-${Math.random().toString(16).slice(2)}.env`);
  writeFileSync(file, text);
  return file;
}

function flannel(command: string, conf: object | string, containerId = 'cid-1') {
  const r = spawnSync(join(bin, 'flannel'), [], {
    input: typeof conf === 'string' ? conf : JSON.stringify(conf),
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      CNI_COMMAND: command,
      CNI_CONTAINERID: containerId,
      CNI_NETNS: '/var/run/netns/x',
      CNI_IFNAME: 'eth0',
      CNI_PATH: bin,
    },
  });
  return { code: r.status, stdout: r.stdout, json: r.stdout.trim() ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
}

const ENV = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';

describe('flannel stand-in', () => {
  it('parses subnet.env like flannel: subnets masked, several networks, IPv6, missing keys named', () => {
    expect(loadSubnetEnv(subnetEnv(ENV))).toEqual({
      nws: ['10.244.0.0/16'],
      ip6Nws: [],
      sn: '10.244.1.0/24',
      mtu: 1450,
      ipmasq: true,
    });
    const dual = loadSubnetEnv(
      subnetEnv(`${ENV}FLANNEL_NETWORK=10.244.0.0/16,10.245.0.0/16\nFLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:1::1/64\n`),
    );
    expect(dual).toMatchObject({ nws: ['10.244.0.0/16', '10.245.0.0/16'], ip6Nws: ['fd00:10:244::/56'], ip6Sn: 'fd00:10:244:1::/64' });
    expect(() => loadSubnetEnv(subnetEnv('FLANNEL_NETWORK=10.244.0.0/16\n'))).toThrow(
      /is missing FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ/,
    );
    expect(() => loadSubnetEnv(join(work, 'absent.env'))).toThrow(/open .*absent.env: no such file or directory/);
  });

  it('builds the delegate config as flannel does', () => {
    const se = loadSubnetEnv(subnetEnv(ENV));
    expect(
      delegateConf(
        { cniVersion: '0.3.1', name: 'cbr0', delegate: { hairpinMode: true, isDefaultGateway: true }, runtimeConfig: { portMappings: [] } },
        se,
      ),
    ).toEqual({
      hairpinMode: true,
      isDefaultGateway: true,
      runtimeConfig: { portMappings: [] },
      name: 'cbr0',
      type: 'bridge',
      ipMasq: false, // FLANNEL_IPMASQ=true: flannel masquerades, the bridge must not
      mtu: 1450,
      isGateway: true,
      cniVersion: '0.3.1',
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.1.0/24' }]], routes: [{ dst: '10.244.0.0/16' }] },
    });
    // The conf's own ipam is the base (routes kept, type kept); delegate keys win over defaults.
    const d = delegateConf(
      { cniVersion: '1.0.0', name: 'n', ipam: { dataDir: '/d', routes: [{ dst: '192.168.0.0/16' }] }, delegate: { type: 'ptp', mtu: 1400, ipMasq: true } },
      { ...se, ipmasq: false },
    );
    expect(d).toMatchObject({ type: 'ptp', mtu: 1400, ipMasq: true, ipam: { dataDir: '/d', type: 'host-local', routes: [{ dst: '192.168.0.0/16' }, { dst: '10.244.0.0/16' }] } });
    expect(d.isGateway).toBeUndefined(); // only for bridge
    expect(() => delegateConf({ name: 'n', delegate: { name: 'x' } }, se)).toThrow(/must not have 'name'/);
    expect(() => delegateConf({ name: 'n', delegate: { ipam: {} } }, se)).toThrow(/must not have 'ipam'/);
    expect(() => delegateConf({ name: 'n', delegate: { type: 1 } }, se)).toThrow(/must have \(string\) 'type'/);
  });

  it('ADD saves the delegate config under dataDir/<containerID> and delegates; DEL reads it, delegates and removes it', () => {
    const dataDir = join(work, 'data-1');
    const conf = { cniVersion: '0.3.1', name: 'cbr0', type: 'flannel', subnetFile: subnetEnv(ENV), dataDir, delegate: { isDefaultGateway: true } };
    const add = flannel('ADD', conf);
    expect(add.code, add.stdout).toBe(0);
    expect(add.json).toMatchObject({ cniVersion: '0.3.1', ips: [{ address: '10.244.1.2/24' }] });
    const saved = readFileSync(join(dataDir, 'cid-1'), 'utf8');
    expect(readFileSync(join(work, 'delegate-ADD.json'), 'utf8')).toBe(saved); // exactly what was saved
    expect(Object.keys(JSON.parse(saved))).toEqual([...Object.keys(JSON.parse(saved))].sort()); // Go's map order
    expect(readFileSync(join(work, 'delegate-ADD.env'), 'utf8')).toMatch(/CNI_CONTAINERID=cid-1\nCNI_IFNAME=eth0\nCNI_NETNS=\/var\/run\/netns\/x/);
    expect(flannel('CHECK', conf).code).toBe(0); // flannel's CHECK does nothing
    const del = flannel('DEL', conf);
    expect(del.code, del.stdout).toBe(0);
    expect(readFileSync(join(work, 'delegate-DEL.json'), 'utf8')).toBe(saved);
    expect(readdirSync(dataDir)).toEqual([]);
    expect(flannel('DEL', conf).code).toBe(0); // nothing saved: already gone, success
  });

  it('a failing delegate: its error object is passed on; DEL keeps the saved file to retry', () => {
    const dataDir = join(work, 'data-2');
    const conf = { cniVersion: '0.3.1', name: 'cbr0', type: 'flannel', subnetFile: subnetEnv(ENV), dataDir };
    expect(flannel('ADD', conf, 'cid-2').code).toBe(0);
    writeFileSync(join(work, 'fail'), '');
    try {
      const del = flannel('DEL', conf, 'cid-2');
      expect(del.code).toBe(1);
      expect(del.json).toEqual({ cniVersion: '0.3.1', code: 11, msg: 'bridge is busy' });
      expect(existsSync(join(dataDir, 'cid-2'))).toBe(true);
    } finally {
      rmSync(join(work, 'fail'));
    }
  });

  it('errors like skel: unsupported version 1, missing subnet file 999, VERSION', () => {
    const conf = { cniVersion: '1.1.0', name: 'cbr0', type: 'flannel', subnetFile: join(work, 'none.env'), dataDir: join(work, 'd3') };
    expect(flannel('ADD', conf).json).toMatchObject({ code: 1, msg: 'incompatible CNI versions' });
    const missing = flannel('ADD', { ...conf, cniVersion: '0.3.1' });
    expect(missing.json).toMatchObject({ code: 999, msg: expect.stringMatching(/open .*none.env: no such file or directory/) });
    expect(existsSync(join(work, 'd3'))).toBe(false);
    expect(flannel('VERSION', '').json).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0'] });
    mkdirSync(join(work, 'd4'));
    expect(flannel('ADD', '{nope').json).toMatchObject({ code: 999, msg: expect.stringMatching(/failed to load netconf/) });
    expect(FLANNEL_STANDIN.endsWith('flannel-standin.mjs')).toBe(true);
  });
});
