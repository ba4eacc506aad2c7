/**
 * Where the single executable writes its native addons when the default cache is unusable. Runs the
 * binary in a private mount namespace (unshare -m) so the read-only / noexec mounts and the tmpfs
 * on /run never reach the host.
 */
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privileged, requireCommands } from '@weft/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildInto, cannotBuildSea, copyAlone, run } from './sea-fixture';

const scratch = mkdtempSync(join(tmpdir(), 'wi-sea-priv-'));
let weft = '';
const whyNot = cannotBuildSea();

beforeAll(async () => {
  if (whyNot || process.getuid?.() !== 0) return;
  await buildInto(join(scratch, 'dist'));
  weft = copyAlone(join(scratch, 'dist', 'weft'), join(scratch, 'alone'));
  symlinkSync('weft', join(scratch, 'alone', 'weft-host-local'));
}, 120_000);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Runs `weft __selftest-native` after `setup` (shell) in a private mount namespace. */
function selftestIn(setup: string): { status: number | null; stderr: string; mapped: string[] } {
  const script = `set -e; ${setup}; exec "${weft}" __selftest-native`;
  const r = run('/usr/bin/unshare', ['-m', '--propagation', 'private', 'sh', '-c', script]);
  return {
    status: r.status,
    stderr: r.stderr,
    mapped: r.status === 0 ? (JSON.parse(r.stdout) as { mapped: string[] }).mapped : [],
  };
}

describe('native addon cache fallbacks (privileged)', () => {
  function ready(ctx: Parameters<typeof privileged>[0]): void {
    privileged(ctx);
    requireCommands(ctx, 'unshare', 'mount');
    if (whyNot) {
      console.log(`SKIPPED: ${whyNot}`);
      ctx.skip();
    }
  }

  it('uses /var/lib/weft/native by default', (ctx) => {
    ready(ctx);
    const r = selftestIn(
      'mount -t tmpfs tmpfs /var/lib/weft 2>/dev/null || { mkdir -p /var/lib/weft && mount -t tmpfs tmpfs /var/lib/weft; }',
    );
    expect(r.stderr).toBe('');
    expect(r.mapped.every((f) => f.startsWith('/var/lib/weft/native/'))).toBe(true);
    expect(r.mapped).toHaveLength(2);
  });

  it('reuses an intact cache on a read-only /var/lib', (ctx) => {
    ready(ctx);
    expect(selftestIn('true').status).toBe(0); // the host's cache now holds both addons
    const r = selftestIn(
      'mount --bind /var/lib /var/lib; mount -o remount,bind,ro /var/lib; mount -t tmpfs tmpfs /run',
    );
    expect(r.stderr).toBe('');
    expect(r.mapped).toHaveLength(2);
    expect(r.mapped.every((f) => f.startsWith('/var/lib/weft/native/'))).toBe(true);
  });

  it('falls back to /run/weft/native when the state dir is read-only and empty', (ctx) => {
    ready(ctx);
    const r = selftestIn(
      'mkdir -p /var/lib/weft; mount -t tmpfs -o ro tmpfs /var/lib/weft; mount -t tmpfs tmpfs /run',
    );
    expect(r.stderr).toBe('');
    expect(r.mapped.sort()).toEqual([
      expect.stringMatching(/^\/run\/weft\/native\/netlink-/),
      expect.stringMatching(/^\/run\/weft\/native\/weft_native-/),
    ]);
  });

  it('falls back past a noexec cache (dlopen refuses to map it)', (ctx) => {
    ready(ctx);
    const r = selftestIn(
      'mkdir -p /var/lib/weft; mount -t tmpfs -o noexec tmpfs /var/lib/weft; mount -t tmpfs tmpfs /run',
    );
    expect(r.stderr).toBe('');
    // (glibc may leave the refused file's first mapping behind; what matters is that both load from /run)
    expect(r.mapped.filter((f) => f.startsWith('/run/weft/native/'))).toHaveLength(2);
  });

  it('says where it tried when no cache directory is usable', (ctx) => {
    ready(ctx);
    const r = selftestIn(
      // (the binary itself lives under /tmp, so the temp fallback is pointed at the read-only tmpfs instead)
      'mkdir -p /var/lib/weft; mount -t tmpfs -o ro tmpfs /var/lib/weft; mount -t tmpfs -o ro tmpfs /run; export TMPDIR=/var/lib/weft',
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /cannot load native addon weft_native:\n\s+\/var\/lib\/weft\/native: .*\n\s+\/run\/weft\/native: .*\n\s+\/var\/lib\/weft\/weft-native-0: /,
    );
  });
}, 180_000); // the real build, on a machine that may be busy
