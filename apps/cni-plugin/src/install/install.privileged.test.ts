import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privileged } from '@weft/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { install, MANIFEST_NAME } from './install';

const scratch = mkdtempSync(join(tmpdir(), 'wi-install-priv-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('weft install (privileged)', () => {
  it('rolls everything back when the last step fails (read-only conf dir)', (ctx) => {
    privileged(ctx); // needs mount(2) for a read-only bind mount: root ignores mode bits
    const source = join(scratch, 'weft-src');
    writeFileSync(source, '#!/bin/sh\n');
    chmodSync(source, 0o755);
    const binDir = join(scratch, 'bin');
    const confDir = join(scratch, 'net.d');
    mkdirSync(binDir);
    mkdirSync(confDir);
    execFileSync('mount', ['--bind', confDir, confDir]);
    try {
      execFileSync('mount', ['-o', 'remount,bind,ro', confDir]);
      // Binary and links are made first, then the conflist write fails with EROFS.
      expect(() => install({ source, binDir, confDir })).toThrow(/rolled back.*EROFS/);
      expect(readdirSync(binDir)).toEqual([]);
      expect(existsSync(join(binDir, MANIFEST_NAME))).toBe(false);

      // An upgrade that fails puts the previous binary and manifest back.
      install({ source, binDir, confDir, writeConflist: false, version: '1' });
      const manifestBefore = readFileSync(join(binDir, MANIFEST_NAME), 'utf8');
      writeFileSync(source, '#!/bin/sh\necho v2\n');
      expect(() => install({ source, binDir, confDir, version: '2' })).toThrow(/rolled back/);
      expect(readFileSync(join(binDir, 'weft'), 'utf8')).toBe('#!/bin/sh\n');
      expect(readFileSync(join(binDir, MANIFEST_NAME), 'utf8')).toBe(manifestBefore);
      expect(readdirSync(binDir).filter((f) => f.startsWith('.') && f !== MANIFEST_NAME)).toEqual([]);
    } finally {
      execFileSync('umount', [confDir]);
    }
  });
});
