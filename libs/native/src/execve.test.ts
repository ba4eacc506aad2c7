import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ADDON = join(__dirname, '..', 'build', 'Release', 'weft_native.node');

/** Runs `code` in a fresh node with the addon as `n` (execve replaces that process, not vitest's). */
function nodeWithAddon(code: string): string {
  return execFileSync(process.execPath, ['-e', `const n = require(${JSON.stringify(ADDON)}); ${code}`], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '' },
  });
}

describe('execve', () => {
  it('replaces the process, same pid, with the argv and environment given', (ctx) => {
    if (!existsSync(ADDON)) ctx.skip(); // built by scripts/build-native.sh
    const out = nodeWithAddon(
      `process.stdout.write(process.pid + '\\n'); n.execve('/bin/sh', ['sh', '-c', 'echo "$$ $0 $GREETING"'], ['GREETING=hello']);`,
    );
    const [pid, after] = out.trim().split('\n');
    expect(after).toBe(`${pid} sh hello`);
  });

  it('throws like a Node system error when the program cannot run, and the process goes on', (ctx) => {
    if (!existsSync(ADDON)) ctx.skip();
    const out = nodeWithAddon(
      `try { n.execve('/nonexistent/program', ['x'], []); } catch (e) { console.log(JSON.stringify([e.code, e.errno, e.syscall, e.path])); }`,
    );
    expect(JSON.parse(out)).toEqual(['ENOENT', -2, 'execve', '/nonexistent/program']);
  });

  it('rejects an empty argv before calling execve', (ctx) => {
    if (!existsSync(ADDON)) ctx.skip();
    const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(ADDON)}).execve('/bin/sh', [], [])`], {
      encoding: 'utf8',
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/TypeError: execve\(path: string, argv: string\[\] \(non-empty\)/);
  });
});
