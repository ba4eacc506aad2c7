/**
 * weft-cni mode eni without a cloud: what it refuses (7, before anything is touched) and what it
 * says when the ENI daemon is not there (ADD 11, DEL 0, STATUS 50). The end-to-end test with the
 * ECS emulator and real links is apps/ipam-terway/src/eni-e2e.privileged.test.ts.
 */
import { mkdtempSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privileged, requireCommands, ScratchNetns } from '@weft/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIST_BIN, runCni } from '../../testing/cni-run';

const WEFT_CNI = join(DIST_BIN, 'weft-cni');
let work = '';
const namespaces: ScratchNetns[] = [];

function conf(extra: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.1.0',
    name: 'wenimode',
    type: 'weft-cni',
    mode: 'eni',
    degraded: true,
    stateDir: join(work, 'state'),
    agentSocket: join(work, 'no-agent.sock'),
    ipam: { type: 'weft-eni', socket: join(work, 'no-eni.sock') },
    ...extra,
  };
}

describe('weft-cni mode eni: bad input and an absent ENI daemon', () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'weni-'));
  });
  afterAll(() => {
    for (const ns of namespaces) ns.remove();
    rmSync(work, { recursive: true, force: true });
  });

  it('refuses an ipam section that is not weft-eni, unknown ipam keys and bad sockets with 7; the daemon down is 11 / 0 / 50', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'ip', WEFT_CNI);
    const pod = new ScratchNetns('wenm');
    namespaces.push(pod);
    const add = (c: object) =>
      runCni(WEFT_CNI, { command: 'ADD', conf: c, containerId: 'wen-1', netns: pod.path });
    const bad: [Record<string, unknown>, RegExp][] = [
      [
        { ipam: { type: 'weft-host-local', ranges: [[{ subnet: '10.9.0.0/24' }]] } },
        /ipam.type "weft-host-local" \(expected weft-eni\)/,
      ],
      [{ ipam: { type: 'weft-eni', pool: 'x' } }, /unknown ipam key "pool"/],
      [{ ipam: { type: 'weft-eni', socket: 'relative.sock' } }, /ipam.socket "relative.sock"/],
      [{ ipam: { type: 'weft-eni', socket: '/run/../etc/x' } }, /ipam.socket/],
      [{ ipam: { type: 'weft-eni', timeoutMs: -1 } }, /ipam.timeoutMs -1/],
      [{ ipam: { type: 'weft-eni', routes: [{ gw: '10.0.0.1' }] } }, /ipam.routes/],
      [{ mtu: 10 }, /mtu 10/],
    ];
    for (const [extra, msg] of bad) {
      const r = await add(conf(extra));
      expect(r.json?.code, JSON.stringify(extra)).toBe(7);
      expect(r.json.msg).toMatch(msg);
    }
    // The daemon is not there: try again later, and nothing was made in the pod or recorded.
    const down = await add(conf());
    expect(down.json).toMatchObject({ code: 11, msg: expect.stringMatching(/ENI daemon not reachable/) });
    expect(pod.exec('ip', '-o', 'link', 'show')).not.toMatch(/eth0/);
    const records = join(work, 'state', 'cni', 'wenimode');
    expect(existsSync(records) ? readdirSync(records) : []).toEqual([]);
    // DEL succeeds regardless (the daemon's GC releases what it holds); STATUS says 50.
    const del = await runCni(WEFT_CNI, {
      command: 'DEL',
      conf: conf(),
      containerId: 'wen-1',
      netns: pod.path,
    });
    expect(del.code).toBe(0);
    const status = await runCni(WEFT_CNI, { command: 'STATUS', conf: conf() });
    expect(status.json).toMatchObject({ code: 50, msg: 'ENI daemon not reachable' });
    // An eth0 in the pod that is not the ENI: a conflict (111), before the daemon is even asked.
    pod.exec('ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'wenmo0');
    expect((await add(conf())).json?.code).toBe(111);
  });
});
