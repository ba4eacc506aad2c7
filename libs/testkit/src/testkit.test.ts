import { describe, expect, it } from 'vitest';
import { scratchName } from './scratch-netns';
import { privileged, ScratchNetns } from './index';

describe('testkit', () => {
  it('makes short unique names', () => {
    const a = scratchName('wtabc');
    expect(a.length).toBeLessThanOrEqual(15);
    expect(a).not.toEqual(scratchName('wtabc'));
  });
  it('creates and removes a scratch netns', (ctx) => {
    privileged(ctx);
    const ns = new ScratchNetns('wtk');
    expect(ns.exec('ip', '-o', 'link', 'show', 'lo')).toContain('LOOPBACK');
    ns.remove();
  });
});
