import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { createNamedNetns, deleteNamedNetns } from '@weft/netns';
import { privileged, requireCommands, scratchName } from '@weft/testkit';
import { parseAttrs } from './attrs';
import { IFLA, RTM, SIZEOF } from './constants';
import {
  encodeIpvlan,
  encodeMacvlan,
  type IpvlanFlag,
  type IpvlanMode,
  type MacvlanMode,
} from './link-codec';

// The encoders the netlink package lacks are checked against iproute2 itself: run `ip link add`
// under strace and compare the IFLA_LINKINFO it sends with ours. ip sends the request before the
// kernel answers, so this checks the ipvlan encoder even on a kernel without ipvlan.

const nsName = scratchName('wnst');
let created = false;
afterAll(() => {
  if (created) deleteNamedNetns(nsName);
});

/** The IFLA_LINKINFO payload of the RTM_NEWLINK that `ip ...args` sends. */
function iproute2LinkInfo(args: string[]): Buffer {
  const r = spawnSync(
    'strace',
    ['-f', '-e', 'trace=sendmsg', '-e', 'write=all', '-xx', 'ip', '-n', nsName, ...args],
    { encoding: 'utf8' },
  );
  // strace dumps each sent buffer as " | 00000  58 00 00 00 10 00 ...  ascii |" lines.
  const buffers: Buffer[] = [];
  let current: number[] | undefined;
  for (const line of r.stderr.split('\n')) {
    const m = /^ \| ([0-9a-f]{5}) {2}((?:[0-9a-f]{2}\s{1,2}){1,16})/.exec(line);
    if (!m) {
      if (current) buffers.push(Buffer.from(current));
      current = undefined;
      continue;
    }
    if (m[1] === '00000') {
      if (current) buffers.push(Buffer.from(current));
      current = [];
    }
    current!.push(
      ...m[2]!
        .trim()
        .split(/\s+/)
        .map((h) => parseInt(h, 16)),
    );
  }
  if (current) buffers.push(Buffer.from(current));
  const newlink = buffers.find((b) => b.length > 16 && b.readUInt16LE(4) === RTM.NEWLINK);
  if (!newlink) throw new Error(`no RTM_NEWLINK in strace output:\n${r.stderr}`);
  return parseAttrs(newlink, 16 + SIZEOF.ifinfomsg).get(IFLA.LINKINFO)!;
}

const ours = (payload: Buffer) => parseAttrs(payload, SIZEOF.ifinfomsg).get(IFLA.LINKINFO)!;

describe('IFLA_LINKINFO encoders agree with iproute2', () => {
  it('ipvlan: every mode and flag', (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'strace', 'ip');
    createNamedNetns(nsName);
    created = true;
    spawnSync('ip', ['-n', nsName, 'link', 'add', 'wnst0', 'type', 'veth', 'peer', 'name', 'wnst1']);
    const modes: IpvlanMode[] = ['l2', 'l3', 'l3s'];
    const flags: IpvlanFlag[] = ['bridge', 'private', 'vepa'];
    for (const mode of modes) {
      for (const flag of flags) {
        const theirs = iproute2LinkInfo([
          'link',
          'add',
          'wnstv',
          'link',
          'wnst0',
          'type',
          'ipvlan',
          'mode',
          mode,
          flag,
        ]);
        spawnSync('ip', ['-n', nsName, 'link', 'del', 'wnstv']); // in case this kernel has ipvlan
        expect(
          ours(encodeIpvlan({ name: 'wnstv', master: 2, mode, flags: flag })),
          `${mode} ${flag}`,
        ).toEqual(theirs);
      }
    }
  });

  it('macvlan: every mode', (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'strace', 'ip');
    if (!created) ctx.skip('needs the namespace of the previous test');
    const modes: MacvlanMode[] = ['private', 'vepa', 'bridge', 'passthru', 'source'];
    for (const mode of modes) {
      const theirs = iproute2LinkInfo([
        'link',
        'add',
        'wnstm',
        'link',
        'wnst0',
        'type',
        'macvlan',
        'mode',
        mode,
      ]);
      spawnSync('ip', ['-n', nsName, 'link', 'del', 'wnstm']);
      expect(ours(encodeMacvlan({ name: 'wnstm', master: 2, mode })), mode).toEqual(theirs);
    }
  });
});
