import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { privileged, ScratchNetns } from '@weft/testkit';
import { BpfObject, type BpfProgram } from './bpf-object';
import {
  attachTc,
  detachTc,
  listTcx,
  queryTc,
  resolveTcMechanism,
  tcModeFromEnv,
  tcxLinkInfo,
  tcxSupported,
  type TcMechanism,
} from './tc';
import { buildBpfObjects } from './testing/bpf-objects';

const isRoot = process.getuid?.() === 0;
type SkipContext = { skip: (note?: string) => void };

function noTcx(ctx: SkipContext): void {
  console.log(`SKIPPED: kernel ${execFileSync('uname', ['-r']).toString().trim()} has no tcx (needs 6.6+)`);
  ctx.skip('no tcx in this kernel');
}

describe('WEFT_TC_MODE', () => {
  it('parses clsact, tcx, auto (default) and rejects anything else', () => {
    expect(tcModeFromEnv({})).toBe('auto');
    expect(tcModeFromEnv({ WEFT_TC_MODE: 'clsact' })).toBe('clsact');
    expect(tcModeFromEnv({ WEFT_TC_MODE: ' TCX ' })).toBe('tcx');
    expect(tcModeFromEnv({ WEFT_TC_MODE: 'auto' })).toBe('auto');
    expect(() => tcModeFromEnv({ WEFT_TC_MODE: 'tc' })).toThrow(/expected clsact, tcx or auto/);
    expect(resolveTcMechanism('clsact')).toBe('clsact');
  });
});

describe('tc attachment on a veth, per mechanism', () => {
  let ns: ScratchNetns | undefined;
  let pinRoot = '';
  let objects: BpfObject[] = [];
  let progA: BpfProgram, progB: BpfProgram;
  const sh = (cmd: string, ...args: string[]) => ns!.exec(cmd, ...args);
  const qdiscs = (dev: string) => sh('tc', 'qdisc', 'show', 'dev', dev);

  beforeAll(() => {
    if (!isRoot) return;
    execFileSync('sh', ['-c', 'mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf']);
    pinRoot = `/sys/fs/bpf/weft-test-tc${randomBytes(4).toString('hex')}`;
    const dir = buildBpfObjects();
    objects = ['from-container.o', 'to-container.o'].map((f) => BpfObject.load(join(dir, f), { pinRoot }));
    progA = objects[0]!.program('from_container');
    progB = objects[1]!.program('to_container');
    ns = new ScratchNetns('wtc');
  });

  afterAll(() => {
    for (const o of objects) o.close();
    ns?.remove();
    if (pinRoot) rmSync(pinRoot, { recursive: true, force: true });
  });

  let n = 0;
  /** A fresh veth pair (host end returned) in the scratch netns. */
  const veth = () => {
    const name = `wtv${n++}`;
    sh('ip', 'link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`);
    sh('ip', 'link', 'set', name, 'up');
    return name;
  };

  describe.each(['clsact', 'tcx'] as TcMechanism[])('%s', (mode) => {
    const skipUnlessKernel = (ctx: SkipContext) => {
      privileged(ctx);
      if (mode === 'tcx' && !tcxSupported()) noTcx(ctx);
    };

    it('attaches, re-attaches idempotently, replaces the program, queries and detaches', (ctx) => {
      skipUnlessKernel(ctx);
      const dev = veth();
      const pinPath = join(pinRoot, 'links', `${mode}-${dev}-ingress`);
      const opts = { netns: ns!.path, pinPath, mode };
      const first = attachTc(dev, 'ingress', progA, opts);
      expect(first.mechanism).toBe(mode);
      expect(first.progId).toBe(progA.info().id);
      expect(queryTc(dev, 'ingress', opts)).toMatchObject({ progId: progA.info().id, mechanism: mode });
      expect(queryTc(dev, 'egress', opts).progId).toBe(0);

      const again = attachTc(dev, 'ingress', progA, opts);
      expect(again).toEqual(first);
      const replaced = attachTc(dev, 'ingress', progB, opts);
      expect(replaced.progId).toBe(progB.info().id);
      expect(queryTc(dev, 'ingress', opts).progId).toBe(progB.info().id);
      if (mode === 'tcx') {
        expect(replaced.linkId).toBe(first.linkId); // updated in place, never detached meanwhile
        expect(listTcx(dev, 'ingress', opts).programs).toEqual([
          { progId: progB.info().id, linkId: first.linkId },
        ]);
        expect(qdiscs(dev)).not.toMatch(/clsact/);
        expect(existsSync(pinPath)).toBe(true);
      } else {
        expect(qdiscs(dev)).toMatch(/clsact/);
        expect(sh('tc', 'filter', 'show', 'dev', dev, 'ingress').match(/ handle 0x/g)).toHaveLength(1);
        expect(existsSync(pinPath)).toBe(false);
      }

      expect(detachTc(dev, 'ingress', opts)).toBe(true);
      expect(queryTc(dev, 'ingress', opts).progId).toBe(0);
      expect(existsSync(pinPath)).toBe(false);
      expect(detachTc(dev, 'ingress', opts)).toBe(false);
    });

    it('with the interface deleted: query says ENODEV, detach succeeds and removes a stale pin', (ctx) => {
      skipUnlessKernel(ctx);
      const dev = veth();
      const pinPath = join(pinRoot, 'links', `${mode}-${dev}-egress`);
      const opts = { netns: ns!.path, pinPath, mode };
      attachTc(dev, 'egress', progA, opts);
      sh('ip', 'link', 'del', dev);
      if (mode === 'tcx') {
        expect(tcxLinkInfo(pinPath)).toMatchObject({ ifindex: 0, progId: progA.info().id }); // defunct
      }
      expect(() => queryTc(dev, 'egress', opts)).toThrow(expect.objectContaining({ code: 'ENODEV' }));
      expect(detachTc(dev, 'egress', opts)).toBe(false);
      expect(existsSync(pinPath)).toBe(false);
    });

    it("the reference bandwidth plugin's qdiscs: ingress qdisc + tbf root", (ctx) => {
      skipUnlessKernel(ctx);
      const dev = veth();
      const opts = { netns: ns!.path, pinPath: join(pinRoot, 'links', `${mode}-${dev}-ingress`), mode };
      attachTc(dev, 'ingress', progA, opts);
      attachTc(dev, 'egress', progB, { ...opts, pinPath: join(pinRoot, 'links', `${mode}-${dev}-egress`) });
      // bandwidth's ingress shaping: a tbf root qdisc. Never conflicted with clsact.
      sh(
        'tc',
        'qdisc',
        'add',
        'dev',
        dev,
        'root',
        'tbf',
        'rate',
        '100mbit',
        'burst',
        '256k',
        'latency',
        '25ms',
      );
      // bandwidth's egress shaping: an ingress qdisc (handle ffff:), which clsact occupies.
      const addIngress = () =>
        execFileSync('ip', ['netns', 'exec', ns!.name, 'tc', 'qdisc', 'add', 'dev', dev, 'ingress'], {
          stdio: 'pipe',
          encoding: 'utf8',
        });
      if (mode === 'tcx') {
        addIngress();
        expect(qdiscs(dev)).toMatch(/qdisc ingress ffff:/);
        expect(queryTc(dev, 'ingress', opts).progId).toBe(progA.info().id);
      } else {
        // "Exclusivity flag on, cannot modify." (EEXIST): bandwidth's "create ingress qdisc: file exists".
        expect(addIngress).toThrow(/Exclusivity flag on|File exists/);
        expect(qdiscs(dev)).not.toMatch(/qdisc ingress/);
      }
    });
  });

  it('switching mechanisms replaces the other one (no second copy of the program)', (ctx) => {
    privileged(ctx);
    if (!tcxSupported()) return noTcx(ctx);
    const dev = veth();
    const pinPath = join(pinRoot, 'links', `switch-${dev}`);
    const opts = { netns: ns!.path, pinPath };
    attachTc(dev, 'ingress', progA, { ...opts, mode: 'clsact' });
    expect(queryTc(dev, 'ingress', opts).mechanism).toBe('clsact');
    attachTc(dev, 'ingress', progA, { ...opts, mode: 'tcx' });
    expect(queryTc(dev, 'ingress', { ...opts, mode: 'clsact' }).progId).toBe(0);
    expect(queryTc(dev, 'ingress', opts).mechanism).toBe('tcx');
    attachTc(dev, 'ingress', progA, { ...opts, mode: 'clsact' });
    expect(existsSync(pinPath)).toBe(false);
    expect(listTcx(dev, 'ingress', opts).programs).toEqual([]);
    expect(queryTc(dev, 'ingress', opts).mechanism).toBe('clsact');
  });

  it('auto without a pin path uses clsact; tcx without one (or without kernel support) refuses', (ctx) => {
    privileged(ctx);
    const dev = veth();
    expect(attachTc(dev, 'ingress', progA, { netns: ns!.path, mode: 'auto' }).mechanism).toBe('clsact');
    if (!tcxSupported()) {
      // A kernel without tcx (6.1): auto means clsact, and asking for tcx says why it cannot.
      expect(resolveTcMechanism('auto')).toBe('clsact');
      expect(() => resolveTcMechanism('tcx')).toThrow(expect.objectContaining({ code: 'ENOTSUP' }));
      const pinPath = join(pinRoot, 'links', `nope-${dev}`);
      expect(() => attachTc(dev, 'egress', progA, { netns: ns!.path, mode: 'tcx', pinPath })).toThrow(
        /no tcx/,
      );
      expect(attachTc(dev, 'egress', progA, { netns: ns!.path, pinPath }).mechanism).toBe('clsact');
      return;
    }
    expect(resolveTcMechanism('auto')).toBe('tcx');
    expect(() => attachTc(dev, 'egress', progA, { netns: ns!.path, mode: 'tcx' })).toThrow(
      /needs opts.pinPath/,
    );
  });

  it('tcx: a pin that is not a link is never replaced; a stale link at the pin is', (ctx) => {
    privileged(ctx);
    if (!tcxSupported()) return noTcx(ctx);
    const dev = veth();
    const progPin = join(pinRoot, `prog-${dev}`);
    progA.pin(progPin);
    expect(() => attachTc(dev, 'ingress', progA, { netns: ns!.path, pinPath: progPin, mode: 'tcx' })).toThrow(
      expect.objectContaining({ code: 'EEXIST' }),
    );
    expect(existsSync(progPin)).toBe(true);

    // The pin's link was on a device that is gone (the pod's veth deleted, the endpoint re-added).
    const gone = veth();
    const pinPath = join(pinRoot, 'links', `moved-${dev}`);
    const old = attachTc(gone, 'ingress', progA, { netns: ns!.path, pinPath, mode: 'tcx' });
    sh('ip', 'link', 'del', gone);
    const moved = attachTc(dev, 'ingress', progA, { netns: ns!.path, pinPath, mode: 'tcx' });
    expect(moved.linkId).not.toBe(old.linkId);
    expect(tcxLinkInfo(pinPath)).toMatchObject({
      linkId: moved.linkId,
      ifindex: moved.ifindex,
      direction: 'ingress',
    });
    detachTc(dev, 'ingress', { netns: ns!.path, pinPath });
  });

  it('tcx: the link outlives the process that made it (pinned)', (ctx) => {
    privileged(ctx);
    if (!tcxSupported()) return noTcx(ctx);
    const dev = veth();
    const pinPath = join(pinRoot, 'links', `child-${dev}`);
    const progPin = join(pinRoot, `child-prog-${dev}`);
    progA.pin(progPin);
    const script = join(pinRoot.replace('/sys/fs/bpf/', '/tmp/'), 'child.cjs');
    execFileSync('mkdir', ['-p', join(script, '..')]);
    writeFileSync(
      script,
      `const n = require(${JSON.stringify(require.resolve('../../native/build/Release/weft_native.node'))});
       const fs = require('fs');
       const fd = fs.openSync(${JSON.stringify(ns!.path)}, 'r');
       n.bpfTcxAttach({ ifname: ${JSON.stringify(dev)}, netnsFd: fd }, 'ingress', n.bpfObjGet(${JSON.stringify(progPin)}), { pinPath: ${JSON.stringify(pinPath)} });`,
    );
    execFileSync(process.execPath, [script]); // exits: its fds close
    rmSync(join(script, '..'), { recursive: true, force: true });
    expect(queryTc(dev, 'ingress', { netns: ns!.path, pinPath })).toMatchObject({
      mechanism: 'tcx',
      progId: progA.info().id,
    });
    expect(detachTc(dev, 'ingress', { netns: ns!.path, pinPath })).toBe(true);
  });
});
