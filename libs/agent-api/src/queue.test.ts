import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { attachmentId, dequeue, parseAttachmentId, queuedFor, queueWork, readQueue } from './index';

const dirs: string[] = [];
const scratch = () => {
  const d = mkdtempSync(join(tmpdir(), 'weft-queue-'));
  dirs.push(d);
  return d;
};
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('agent work queue', () => {
  it('keeps one entry per attachment, the latest winning, oldest first on read', () => {
    const dir = scratch();
    const reg = {
      kind: 'register' as const,
      degradedEndpointId: 7,
      queuedAt: '2026-01-01T00:00:00.000Z',
      registration: {
        containerId: 'c1', ifname: 'eth0', network: 'n', netns: '/x', mode: 'veth' as const,
        ips: ['10.0.0.2'], podIfname: 'eth0', attachInPod: false,
      },
    };
    queueWork(reg, dir);
    queueWork({ kind: 'delete', containerId: 'c0', ifname: 'eth0', network: 'n', queuedAt: '2025-01-01T00:00:00.000Z' }, dir);
    queueWork({ kind: 'delete', containerId: 'c1', ifname: 'eth0', network: 'n', queuedAt: '2026-02-01T00:00:00.000Z' }, dir);
    const q = readQueue(dir);
    expect(q.map((e) => e.work?.kind)).toEqual(['delete', 'delete']);
    expect(q.map((e) => (e.work as { containerId: string }).containerId)).toEqual(['c0', 'c1']);
    expect(queuedFor({ containerId: 'c1', ifname: 'eth0' }, dir)?.kind).toBe('delete');
    dequeue({ containerId: 'c1', ifname: 'eth0' }, dir);
    expect(readdirSync(dir)).toHaveLength(1);
  });

  it('reports unreadable files instead of throwing, and an absent dir as empty', () => {
    const dir = scratch();
    writeFileSync(join(dir, 'junk.json'), '{not json');
    const q = readQueue(dir);
    expect(q).toHaveLength(1);
    expect(q[0]!.error).toMatch(/JSON/);
    expect(readQueue(join(dir, 'absent'))).toEqual([]);
  });

  it('round-trips attachment ids, with colons in the container id', () => {
    expect(parseAttachmentId(attachmentId({ containerId: 'a:b', ifname: 'eth0' }))).toEqual({ containerId: 'a:b', ifname: 'eth0' });
    expect(parseAttachmentId('noifname:')).toBeUndefined();
  });
});
