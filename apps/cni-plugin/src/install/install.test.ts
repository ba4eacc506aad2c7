import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exampleConflist } from './conflist';
import { install, InstallError, LINK_NAMES, MANIFEST_NAME, readManifest, uninstall } from './install';

const scratch = mkdtempSync(join(tmpdir(), 'wi-install-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let n = 0;
/** A fresh root with a fake executable and not-yet-existing bin/conf dirs. */
function fixture(binary = '#!/bin/sh\necho weft v1\n') {
  const root = join(scratch, `case-${n++}`);
  mkdirSync(root);
  const source = join(root, 'weft-src');
  writeFileSync(source, binary);
  chmodSync(source, 0o755);
  return { root, source, binDir: join(root, 'opt/cni/bin'), confDir: join(root, 'etc/cni/net.d') };
}

/** Every path under `dir` (relative), to compare trees before/after. */
function tree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: false }).map(String).sort();
}

describe('weft install', () => {
  it('installs the binary, the name links and an example conflist, and records them', () => {
    const f = fixture();
    const report = install({ source: f.source, binDir: f.binDir, confDir: f.confDir, version: '1' });

    const weft = join(f.binDir, 'weft');
    expect(readFileSync(weft, 'utf8')).toBe(readFileSync(f.source, 'utf8'));
    expect(statSync(weft).mode & 0o777).toBe(0o755);
    for (const name of LINK_NAMES) expect(readlinkSync(join(f.binDir, name))).toBe('weft');
    const conflist = JSON.parse(readFileSync(join(f.confDir, '10-weft.conflist'), 'utf8'));
    expect(conflist.plugins.map((p: { type: string }) => p.type)).toEqual(['weft-cni', 'portmap']);
    expect(conflist.plugins[0]).toMatchObject({
      mode: 'veth',
      ipam: { type: 'weft-host-local', ranges: [[{ subnet: '10.99.0.0/24' }]] },
    });

    const manifest = readManifest(f.binDir)!;
    expect(manifest.state).toBe('complete');
    expect(manifest.entries.map((e) => e.path)).toEqual(
      expect.arrayContaining([weft, join(f.confDir, '10-weft.conflist'), f.binDir, join(f.root, 'opt')]),
    );
    expect(report.changed).toContain(weft);
    expect(tree(f.binDir).filter((p) => p.endsWith('.tmp'))).toEqual([]);
  });

  it('is idempotent: a second run changes nothing', () => {
    const f = fixture();
    install({ source: f.source, binDir: f.binDir, confDir: f.confDir, version: '1' });
    const before = {
      bin: tree(f.binDir),
      conf: tree(f.confDir),
      inode: statSync(join(f.binDir, 'weft')).ino,
      manifest: readFileSync(join(f.binDir, MANIFEST_NAME), 'utf8'),
    };
    const again = install({ source: f.source, binDir: f.binDir, confDir: f.confDir, version: '1' });
    expect(again.changed).toEqual([]);
    expect(tree(f.binDir)).toEqual(before.bin);
    expect(tree(f.confDir)).toEqual(before.conf);
    expect(statSync(join(f.binDir, 'weft')).ino).toBe(before.inode);
    expect(readFileSync(join(f.binDir, MANIFEST_NAME), 'utf8')).toBe(before.manifest);
  });

  it('upgrades its own binary in place and keeps an edited conflist', () => {
    const f = fixture();
    install({ source: f.source, binDir: f.binDir, confDir: f.confDir, version: '1' });
    const conflist = join(f.confDir, '10-weft.conflist');
    writeFileSync(conflist, exampleConflist('10.42.0.0/24'));
    writeFileSync(f.source, '#!/bin/sh\necho weft v2\n');
    const report = install({ source: f.source, binDir: f.binDir, confDir: f.confDir, version: '2' });
    expect(report.changed).toEqual([join(f.binDir, 'weft')]);
    expect(readFileSync(join(f.binDir, 'weft'), 'utf8')).toContain('v2');
    expect(readFileSync(conflist, 'utf8')).toContain('10.42.0.0/24');
    expect(report.notes.join('\n')).toMatch(/10-weft.conflist exists/);
  });

  it('installs the weft-cni shim as a file of its own when there is one, and uninstall removes it', () => {
    const f = fixture();
    const shim = join(f.root, 'shim-src');
    writeFileSync(shim, '#!/bin/sh\necho shim\n');
    chmodSync(shim, 0o644); // installed executable whatever its mode was
    install({ source: f.source, shim, binDir: f.binDir, confDir: f.confDir, version: '1' });
    const cni = join(f.binDir, 'weft-cni');
    expect(lstatSync(cni).isFile()).toBe(true);
    expect(readFileSync(cni, 'utf8')).toBe('#!/bin/sh\necho shim\n');
    expect(statSync(cni).mode & 0o777).toBe(0o755);
    for (const name of LINK_NAMES.filter((n) => n !== 'weft-cni'))
      expect(readlinkSync(join(f.binDir, name))).toBe('weft');
    // Again: nothing to do. A build that has no shim any more turns weft-cni back into a link.
    expect(install({ source: f.source, shim, binDir: f.binDir, confDir: f.confDir }).changed).toEqual([]);
    install({ source: f.source, binDir: f.binDir, confDir: f.confDir });
    expect(readlinkSync(cni)).toBe('weft');
    install({ source: f.source, shim, binDir: f.binDir, confDir: f.confDir });
    uninstall({ binDir: f.binDir });
    expect(existsSync(cni)).toBe(false);
  });

  it('refuses, changing nothing, when our names belong to someone else', () => {
    const f = fixture();
    mkdirSync(f.binDir, { recursive: true });
    writeFileSync(join(f.binDir, 'weft-cni'), 'somebody else');
    const before = tree(f.root);
    expect(() => install({ source: f.source, binDir: f.binDir, confDir: f.confDir })).toThrow(InstallError);
    expect(() => install({ source: f.source, binDir: f.binDir, confDir: f.confDir })).toThrow(
      /weft-cni exists and was not installed by weft.*\n?.*|--force/,
    );
    expect(tree(f.root)).toEqual(before);

    install({ source: f.source, binDir: f.binDir, confDir: f.confDir, force: true });
    expect(readlinkSync(join(f.binDir, 'weft-cni'))).toBe('weft');
  });

  it('leaves a conf dir with another network alone (it would change which network pods get)', () => {
    const f = fixture();
    mkdirSync(f.confDir, { recursive: true });
    writeFileSync(join(f.confDir, '05-flannel.conflist'), '{}');
    const report = install({ source: f.source, binDir: f.binDir, confDir: f.confDir });
    expect(tree(f.confDir)).toEqual(['05-flannel.conflist']);
    expect(report.notes.join('\n')).toMatch(/already holds 05-flannel.conflist/);
  });

  it('rejects bad options before touching anything', () => {
    const f = fixture();
    for (const bad of [
      { conflistName: '../evil.conflist' },
      { conflistName: 'x.conf' },
      { subnet: '10.0.0.0/31' },
      { subnet: 'nope' },
    ]) {
      expect(() => install({ source: f.source, binDir: f.binDir, confDir: f.confDir, ...bad })).toThrow(
        InstallError,
      );
    }
    expect(() => install({ source: join(f.root, 'missing'), binDir: f.binDir, confDir: f.confDir })).toThrow(
      /cannot read and execute/,
    );
    expect(existsSync(f.binDir)).toBe(false);
  });

  it('refuses a conf dir that is not a directory, before making anything', () => {
    const f = fixture();
    mkdirSync(join(f.root, 'etc/cni'), { recursive: true });
    writeFileSync(f.confDir, 'a file where the conf dir should be');
    expect(() => install({ source: f.source, binDir: f.binDir, confDir: f.confDir })).toThrow(
      /net.d is not a directory/,
    );
    expect(existsSync(f.binDir)).toBe(false);
  });
});

describe('weft uninstall', () => {
  it('removes exactly what install added, including the directories it created', () => {
    const f = fixture();
    mkdirSync(join(f.root, 'etc/cni'), { recursive: true }); // exists before: must survive
    install({ source: f.source, binDir: f.binDir, confDir: f.confDir });
    const report = uninstall({ binDir: f.binDir });
    expect(tree(f.root)).toEqual(['etc', 'etc/cni', 'weft-src']);
    expect(report.changed).toContain(join(f.binDir, 'weft'));
  });

  it('keeps files that are not ours or were changed, and dirs that hold them', () => {
    const f = fixture();
    install({ source: f.source, binDir: f.binDir, confDir: f.confDir });
    writeFileSync(join(f.binDir, 'bridge'), 'another plugin');
    writeFileSync(join(f.confDir, '10-weft.conflist'), '{"edited": true}');
    const report = uninstall({ binDir: f.binDir });
    expect(tree(f.binDir)).toEqual(['bridge']);
    expect(tree(f.confDir)).toEqual(['10-weft.conflist']);
    expect(report.notes.join('\n')).toMatch(/10-weft.conflist changed since install/);
    expect(lstatSync(f.binDir).isDirectory()).toBe(true);
  });

  it('is a no-op with nothing installed, and uninstall twice is fine', () => {
    const f = fixture();
    expect(uninstall({ binDir: f.binDir }).notes[0]).toMatch(/nothing installed/);
    install({ source: f.source, binDir: f.binDir, confDir: f.confDir });
    uninstall({ binDir: f.binDir });
    expect(uninstall({ binDir: f.binDir }).changed).toEqual([]);
  });

  it('cleans up after an install that was killed half way (manifest still "installing")', () => {
    const f = fixture();
    install({ source: f.source, binDir: f.binDir, confDir: f.confDir });
    const manifestFile = join(f.binDir, MANIFEST_NAME);
    const m = JSON.parse(readFileSync(manifestFile, 'utf8'));
    writeFileSync(manifestFile, JSON.stringify({ ...m, state: 'installing' }));
    rmSync(join(f.binDir, 'weft-agent')); // never got made
    rmSync(join(f.confDir, '10-weft.conflist'));

    // Re-running install completes it ...
    install({ source: f.source, binDir: f.binDir, confDir: f.confDir });
    expect(readManifest(f.binDir)!.state).toBe('complete');
    expect(readlinkSync(join(f.binDir, 'weft-agent'))).toBe('weft');
    // ... and uninstall of a half install removes what exists.
    writeFileSync(manifestFile, JSON.stringify({ ...m, state: 'installing' }));
    rmSync(join(f.binDir, 'weft-eni'));
    uninstall({ binDir: f.binDir });
    expect(tree(f.root)).toEqual(['weft-src']);
  });
});
