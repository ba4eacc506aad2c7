import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { EndpointRegistration } from '@weft/agent-api';
import { EndpointRegistry, MAX_AGENT_ENDPOINT_ID } from './registry';

const dirs: string[] = [];
const scratch = () => {
  const d = mkdtempSync(join(tmpdir(), 'weft-agent-reg-'));
  dirs.push(d);
  return d;
};
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

const reg = (containerId: string, ifname = 'eth0', ips = ['10.0.0.2']): EndpointRegistration => ({
  containerId,
  ifname,
  network: 'weftnet',
  netns: `/var/run/netns/${containerId}`,
  mode: 'veth',
  ips,
  podIfname: ifname,
  hostIfname: `lxc${containerId}`,
  attachInPod: false,
});

describe('endpoint registry', () => {
  it('gives each attachment a stable id, the same on a repeated upsert and after a reload', () => {
    const dir = scratch();
    const r = new EndpointRegistry(dir);
    r.load();
    const a = r.upsert(reg('aaa'));
    const b = r.upsert(reg('bbb'));
    const a2 = r.upsert(reg('aaa', 'net1'));
    expect([a.entry.endpointId, b.entry.endpointId, a2.entry.endpointId]).toEqual([1, 2, 3]);
    expect(a.created && a.changed).toBe(true);
    expect(r.upsert(reg('aaa'))).toMatchObject({ created: false, changed: false, entry: { endpointId: 1 } });
    // Changed addresses: same id, changed.
    expect(r.upsert(reg('aaa', 'eth0', ['10.0.0.9']))).toMatchObject({
      created: false,
      changed: true,
      entry: { endpointId: 1 },
    });

    const again = new EndpointRegistry(dir);
    const loaded = again.load();
    expect(loaded.map((e) => [e.attachmentId, e.endpointId]).sort()).toEqual([
      ['aaa:eth0', 1],
      ['aaa:net1', 3],
      ['bbb:eth0', 2],
    ]);
    expect(again.get('aaa:eth0')!.registration.ips).toEqual(['10.0.0.9']);
    expect(again.byEndpointId(2)!.attachmentId).toBe('bbb:eth0');
  });

  it('never reuses a removed id (the counter is persisted), also across reloads', () => {
    const dir = scratch();
    const r = new EndpointRegistry(dir);
    r.load();
    r.upsert(reg('a'));
    r.upsert(reg('b'));
    expect(r.remove('b:eth0')!.endpointId).toBe(2);
    expect(r.remove('b:eth0')).toBeUndefined();
    const again = new EndpointRegistry(dir);
    again.load();
    // After a restart ids continue past the persisted lease (1024 ids), never below.
    expect(again.upsert(reg('c')).entry.endpointId).toBe(1025);
    expect(readdirSync(join(dir, 'endpoints')).sort()).toEqual(['a%3Aeth0.json', 'c%3Aeth0.json']);
  });

  it('ignores unreadable records (reported), keeping the rest', () => {
    const dir = scratch();
    const r = new EndpointRegistry(dir);
    r.load();
    r.upsert(reg('a'));
    writeFileSync(join(dir, 'endpoints', 'junk.json'), '{nope');
    writeFileSync(
      join(dir, 'endpoints', 'liar.json'),
      JSON.stringify({ attachmentId: 'x:eth0', endpointId: 1, registration: reg('x') }),
    );
    const again = new EndpointRegistry(dir);
    expect(again.load().map((e) => e.attachmentId)).toEqual(['a:eth0']);
    expect(again.unreadable.map((u) => u.file.split('/').pop()).sort()).toEqual(['junk.json', 'liar.json']);
  });

  it('keeps ids below 2^31 (weft-cni degraded ids have the top bit)', () => {
    expect(MAX_AGENT_ENDPOINT_ID).toBe(0x7fffffff);
    const dir = scratch();
    writeFileSync(join(dir, 'next-endpoint-id'), `${MAX_AGENT_ENDPOINT_ID}\n`);
    const r = new EndpointRegistry(dir);
    r.load();
    expect(r.upsert(reg('a')).entry.endpointId).toBe(MAX_AGENT_ENDPOINT_ID);
    expect(r.upsert(reg('b')).entry.endpointId).toBe(1); // wrapped to the first free id
  });
});
