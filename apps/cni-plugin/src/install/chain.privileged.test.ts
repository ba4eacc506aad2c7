/**
 * The conflist `weft install --chain-after` writes is one a runtime can run: a flannel-shaped
 * network is chained, then run as libcni would (flannel stand-in → bridge, weft-cni, portmap) on a
 * real namespace, then uninstalled back to the original bytes.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privileged, requireCommands, ScratchNetns, scratchName } from '@weft/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { chainPath, CLSACT_ENV, flannelBinDir, ping, records, tcFilters, weftDirs } from '../testing/chain-fixtures';
import { DIST_BIN } from '../testing/cni-run';
import { addList, delList, type ConfList } from '../testing/conflist-run';
import { installChained, uninstall } from './install';

const work = mkdtempSync(join(tmpdir(), 'wi-chainp-'));
const pinRoot = `/sys/fs/bpf/wichain-${process.pid}`;
const bridge = scratchName('wibr');
const cleanups: Array<() => unknown> = [];

afterAll(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
  for (const cmd of [['ip', 'link', 'del', bridge], ['rm', '-rf', pinRoot]]) {
    try {
      execFileSync(cmd[0]!, cmd.slice(1), { stdio: 'ignore' });
    } catch {
      /* gone */
    }
  }
  rmSync(work, { recursive: true, force: true });
});

describe('a conflist chained by weft install, run by a runtime', () => {
  it('flannel-shaped: chained, ADD/DEL through it with the datapath attached, uninstall restores the bytes', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'ip', 'ping', 'tc', join(DIST_BIN, 'weft-cni'), '/usr/lib/cni/bridge');
    const confDir = join(work, 'net.d');
    const binDir = join(work, 'bin');
    mkdirSync(confDir);
    const subnetFile = join(work, 'subnet.env');
    writeFileSync(subnetFile, 'FLANNEL_NETWORK=10.243.0.0/16\nFLANNEL_SUBNET=10.243.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    const original =
      JSON.stringify(
        {
          name: 'cbr0',
          cniVersion: '0.3.1',
          plugins: [
            {
              type: 'flannel',
              delegate: { hairpinMode: true, isDefaultGateway: true, bridge },
              subnetFile,
              dataDir: join(work, 'flannel'),
              ipam: { dataDir: join(work, 'ipam') },
            },
            { type: 'portmap', capabilities: { portMappings: true } },
          ],
        },
        null,
        2,
      ) + '\n';
    const file = join(confDir, '10-flannel.conflist');
    writeFileSync(file, original);
    const source = join(work, 'weft-src');
    writeFileSync(source, '#!/bin/sh\n');
    chmodSync(source, 0o755);
    const dirs = weftDirs(work, pinRoot);

    const r = await installChained({ source, binDir, confDir, chainAfter: '*', weftKeys: { degraded: true, ...dirs } });
    expect(r.chain.action).toBe('rewritten');
    const list = JSON.parse(readFileSync(file, 'utf8')) as ConfList;
    expect(list.plugins.map((p) => p.type)).toEqual(['flannel', 'weft-cni', 'portmap']);

    const a = new ScratchNetns('wicp');
    cleanups.push(() => a.remove());
    const rt = {
      containerId: 'wi-chain-a',
      netns: a.path,
      path: chainPath(flannelBinDir(join(work, 'standin'))),
      env: CLSACT_ENV,
      capabilityArgs: { portMappings: [{ hostPort: 31201, containerPort: 80, protocol: 'tcp' }] },
    };
    const o = await addList(list, rt);
    cleanups.push(() => delList(list, rt, o.result));
    expect(o.ok, JSON.stringify(o.error)).toBe(true);
    const hostVeth = (o.result!.interfaces as Array<{ name: string }>)[1]!.name;
    expect(tcFilters(hostVeth, 'ingress')).toMatch(/from_container/);
    expect(ping(a.name, '10.243.1.1')).toBe(true);
    const d = await delList(list, rt, o.result);
    expect(d.ok, JSON.stringify(d.error)).toBe(true);
    expect(records(dirs, 'cbr0')).toEqual([]);

    uninstall({ binDir });
    expect(readFileSync(file, 'utf8')).toBe(original);
  });
});
