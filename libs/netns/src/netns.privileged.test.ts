import { execFile, execFileSync } from 'node:child_process';
import { promises as fsp, stat, writeFileSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { native } from '@weft/native';
import { privileged, scratchName } from '@weft/testkit';
import { Netns, createNamedNetns, deleteNamedNetns, isNetnsPath, namedNetnsPath } from './index';

const THREAD_NETNS = '/proc/thread-self/ns/net';
const created: string[] = [];

function scratch(): { name: string; ns: Netns } {
  const name = scratchName('wn');
  created.push(name);
  const ns = createNamedNetns(name);
  return { name, ns };
}

afterAll(() => {
  for (const name of created) deleteNamedNetns(name);
});

function hostInode(): number {
  return native().currentNetnsInode();
}

describe('Netns (real namespaces)', () => {
  it('creates a named netns that ip(8) sees, and deletes it idempotently', (ctx) => {
    privileged(ctx);
    const { name, ns } = scratch();
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).toContain(name);
    expect(ns.path).toBe(namedNetnsPath(name));
    expect(ns.inode()).not.toBe(Netns.host().inode());
    expect(isNetnsPath(ns.path)).toBe(true);
    // ip netns exec enters the same namespace we made.
    const inside = execFileSync(
      'ip',
      ['netns', 'exec', name, 'stat', '-L', '-c', '%i', '/proc/self/ns/net'],
      { encoding: 'utf8' },
    );
    expect(Number(inside)).toBe(ns.inode());
    expect(() => createNamedNetns(name)).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    ns.close();
    expect(deleteNamedNetns(name)).toBe(true);
    expect(deleteNamedNetns(name)).toBe(false);
    expect(isNetnsPath(namedNetnsPath(name))).toBe(false);
  });

  it('refuses files that are not network namespaces, naming the path', (ctx) => {
    privileged(ctx);
    const file = `/tmp/${scratchName('wnfile')}`;
    writeFileSync(file, 'x');
    try {
      expect(() => Netns.open(file)).toThrow(expect.objectContaining({ code: 'EINVAL', path: file }));
      expect(() => Netns.open('/proc/self/ns/mnt')).toThrow(/not a network namespace/);
      expect(() => Netns.open('/nonexistent/wn')).toThrow(
        expect.objectContaining({ code: 'ENOENT', syscall: 'open' }),
      );
      expect(Netns.tryOpen('/nonexistent/wn')).toBeUndefined();
      expect(isNetnsPath(file)).toBe(false);
    } finally {
      rmSync(file, { force: true });
    }
  });

  it('runSync runs inside and always returns the main thread home', (ctx) => {
    privileged(ctx);
    const { ns } = scratch();
    const home = hostInode();
    expect(Netns.host().inode()).toBe(home);
    expect(ns.runSync(() => hostInode())).toBe(ns.inode());
    expect(hostInode()).toBe(home);
    expect(() =>
      ns.runSync(() => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(hostInode()).toBe(home);
    // Nested: inner switch saves and restores the outer namespace.
    const { ns: other } = scratch();
    const seen = ns.runSync(() => [hostInode(), other.runSync(() => hostInode()), hostInode()]);
    expect(seen).toEqual([ns.inode(), other.inode(), ns.inode()]);
    expect(hostInode()).toBe(home);
  });

  it('runSync refuses async callbacks (after switching back)', (ctx) => {
    privileged(ctx);
    const { ns } = scratch();
    const home = hostInode();
    expect(() => ns.runSync(async () => 1)).toThrow(expect.objectContaining({ code: 'ERR_NETNS_ASYNC' }));
    expect(() => ns.runSync(() => ({ then: () => undefined }))).toThrow(/must be synchronous/);
    expect(hostInode()).toBe(home);
  });

  it('a socket made in runSync lives in the pod netns; the host cannot reach it', async (ctx) => {
    privileged(ctx);
    const { name, ns } = scratch();
    execFileSync('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
    // listen(port) without a host binds synchronously (with a host Node first does an async lookup,
    // which would run after the switch back — exactly the misuse runSync cannot catch).
    const server: Server = ns.runSync(() => createServer((c) => c.end('hi')).listen(0));
    try {
      const { port } = server.address() as { port: number };
      const fromHost = await new Promise<string>((resolve) => {
        const c = createConnection(port, '127.0.0.1');
        c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
        c.on('connect', () => {
          c.destroy();
          resolve('connected');
        });
      });
      expect(fromHost).toBe('ECONNREFUSED');
      // From inside the namespace the same port answers.
      // (async: the server answering is this very process)
      const inside = await new Promise<string>((resolve, reject) =>
        execFile(
          'ip',
          ['netns', 'exec', name, 'bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${port}; cat <&3`],
          { timeout: 10_000 },
          (e, out) => (e ? reject(e) : resolve(out)),
        ),
      );
      expect(inside).toBe('hi');
    } finally {
      server.close();
    }
  });

  it('async work started during or after runSync never runs in the wrong netns', async (ctx) => {
    privileged(ctx);
    const { ns } = scratch();
    const home = hostInode();
    const poolInode = () => fsp.stat(THREAD_NETNS).then((s) => s.ino);
    const fromPoolDuringSwitch: Promise<number>[] = [];
    const results: Promise<number>[] = [];
    for (let i = 0; i < 200; i++) {
      // libuv pool threads stat their own /proc/thread-self: they must all stay at home...
      results.push(poolInode());
      ns.runSync(() => {
        // ...including work queued while the main thread is switched (it runs on a pool thread).
        fromPoolDuringSwitch.push(
          new Promise((resolve, reject) => stat(THREAD_NETNS, (e, s) => (e ? reject(e) : resolve(s.ino)))),
        );
        expect(hostInode()).toBe(ns.inode());
      });
      expect(hostInode()).toBe(home);
    }
    const all = [...(await Promise.all(results)), ...(await Promise.all(fromPoolDuringSwitch))];
    expect(all).toHaveLength(400);
    expect(new Set(all)).toEqual(new Set([home]));
    // Timers and I/O callbacks after the switches run on the main thread at home.
    await new Promise((r) => setTimeout(r, 5));
    expect(hostInode()).toBe(home);
    expect(Netns.host().inode()).toBe(home);
  });

  it('sysctls, sockets and ifindex lookups happen inside without moving the main thread', (ctx) => {
    privileged(ctx);
    const { name, ns } = scratch();
    const hostForward = Netns.host().readSysctl('net.ipv4.ip_forward');
    const target = hostForward === '1' ? '0' : '1';
    ns.writeSysctl('net.ipv4.ip_forward', target);
    expect(ns.readSysctl('net.ipv4.ip_forward')).toBe(target);
    expect(
      execFileSync('ip', ['netns', 'exec', name, 'cat', '/proc/sys/net/ipv4/ip_forward'], {
        encoding: 'utf8',
      }).trim(),
    ).toBe(target);
    expect(Netns.host().readSysctl('net.ipv4.ip_forward')).toBe(hostForward);
    ns.writeSysctl('net/ipv4/conf/lo/rp_filter', 2);
    expect(ns.readSysctl('net.ipv4.conf.lo.rp_filter')).toBe('2');
    expect(() => ns.readSysctl('net.ipv4.nonexistent_key')).toThrow(
      expect.objectContaining({ code: 'ENOENT' }),
    );
    expect(ns.ifNameToIndex('lo')).toBe(1);
    expect(() => ns.ifNameToIndex('wnmissing0')).toThrow(expect.objectContaining({ code: 'ENODEV' }));
    const fd = ns.socket(16 /* AF_NETLINK */, 3 /* SOCK_RAW */, 0 /* NETLINK_ROUTE */);
    expect(fd).toBeGreaterThan(2);
    expect(() => ns.socket(12345, 1)).toThrow(expect.objectContaining({ syscall: 'socket' }));
    native().closeNetns(fd); // plain close(2)
  });

  it('close() is idempotent and later use says so; host() is never closed', (ctx) => {
    privileged(ctx);
    const { ns } = scratch();
    ns.close();
    ns.close();
    expect(ns.closed).toBe(true);
    expect(() => ns.runSync(() => 1)).toThrow(expect.objectContaining({ code: 'ERR_NETNS_CLOSED' }));
    Netns.host().close();
    expect(Netns.host().closed).toBe(false);
    expect(Netns.host()).toBe(Netns.host());
  });
});
