import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadAddon, materializeAddon, materializeAndLoad, nativeCacheDirs } from './load-addon';

const scratch = mkdtempSync(join(tmpdir(), 'wi-load-addon-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const bytes = Buffer.from('not really an ELF object, but bytes are bytes\n'.repeat(100));
const sha = createHash('sha256').update(bytes).digest('hex');
let n = 0;
const freshDir = () => join(scratch, `cache-${n++}`);

describe('materializeAddon', () => {
  it('writes a content-addressed, owner-only copy into a private directory', () => {
    const dir = freshDir();
    const file = materializeAddon(dir, 'thing', bytes, sha);
    expect(file).toBe(join(dir, `thing-${sha.slice(0, 16)}.node`));
    expect(readFileSync(file).equals(bytes)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o500);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('reuses an intact copy without rewriting it', () => {
    const dir = freshDir();
    const first = materializeAddon(dir, 'thing', bytes, sha);
    const inode = statSync(first).ino;
    expect(statSync(materializeAddon(dir, 'thing', bytes, sha)).ino).toBe(inode);
  });

  it('replaces a truncated, corrupted or loosely-permitted copy', () => {
    const dir = freshDir();
    const file = materializeAddon(dir, 'thing', bytes, sha);
    chmodSync(file, 0o600);
    truncateSync(file, 10);
    materializeAddon(dir, 'thing', bytes, sha);
    expect(readFileSync(file).equals(bytes)).toBe(true);

    const flipped = Buffer.from(bytes);
    flipped[5] = flipped[5]! ^ 1;
    chmodSync(file, 0o600);
    writeFileSync(file, flipped);
    materializeAddon(dir, 'thing', bytes, sha);
    expect(readFileSync(file).equals(bytes)).toBe(true);

    chmodSync(file, 0o777); // same bytes, but anyone could have changed them
    materializeAddon(dir, 'thing', bytes, sha);
    expect(statSync(file).mode & 0o777).toBe(0o500);
  });

  it('refuses a directory others can write to', () => {
    const dir = freshDir();
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(dir, 0o777);
    expect(() => materializeAddon(dir, 'thing', bytes, sha)).toThrow(/writable by group or others/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses a private directory inside one others can write to (they could swap it)', () => {
    const shared = freshDir();
    mkdirSync(shared, { mode: 0o700 });
    chmodSync(shared, 0o777);
    expect(() => materializeAddon(join(shared, 'native'), 'thing', bytes, sha)).toThrow(
      /without the sticky bit/,
    );
    chmodSync(shared, 0o1777); // like /tmp: fine
    expect(materializeAddon(join(shared, 'native'), 'thing', bytes, sha)).toMatch(/thing-/);
  });

  it('leaves no temporary files behind', () => {
    const dir = freshDir();
    for (let i = 0; i < 5; i++) materializeAddon(dir, 'thing', bytes, sha);
    expect(readdirSync(dir)).toEqual([`thing-${sha.slice(0, 16)}.node`]);
  });
});

describe('materializeAndLoad', () => {
  it('falls back past unusable directories and says why each failed', () => {
    const notADir = join(scratch, 'plain-file');
    writeFileSync(notADir, 'x');
    const open = join(freshDir());
    mkdirSync(open, { mode: 0o700 });
    chmodSync(open, 0o757);
    const good = freshDir();
    const seen: string[] = [];
    const { file } = materializeAndLoad([join(notADir, 'native'), open, good], 'thing', bytes, sha, (f) =>
      seen.push(f),
    );
    expect(file.startsWith(good)).toBe(true);
    expect(seen).toEqual([file]);
  });

  it('tries the next directory when loading the written file fails (noexec mount)', () => {
    const [a, b] = [freshDir(), freshDir()];
    const { file } = materializeAndLoad([a, b], 'thing', bytes, sha, (f) => {
      if (f.startsWith(a)) throw new Error('failed to map segment from shared object');
      return f;
    });
    expect(file.startsWith(b)).toBe(true);
  });

  it('reports every directory when none works', () => {
    const notADir = join(scratch, 'another-file');
    writeFileSync(notADir, 'x');
    expect(() => materializeAndLoad([join(notADir, 'a'), join(notADir, 'b')], 'thing', bytes, sha)).toThrow(
      /another-file\/a:.*\n.*another-file\/b:/,
    );
  });
});

describe('nativeCacheDirs', () => {
  it('prefers an explicit dir, then /var/lib/weft, then /run, then a per-user temp dir', () => {
    const dirs = nativeCacheDirs({ WEFT_NATIVE_CACHE_DIR: '/x/y' });
    expect(dirs.slice(0, 3)).toEqual(['/x/y', '/var/lib/weft/native', '/run/weft/native']);
    expect(dirs[3]).toMatch(new RegExp(`weft-native-${process.geteuid?.() ?? 0}$`));
    expect(nativeCacheDirs({})[0]).toBe('/var/lib/weft/native');
  });
});

describe('loadAddon outside a single executable', () => {
  it('loads the netlink prebuilt binding from node_modules', () => {
    const binding = loadAddon<Record<string, unknown>>('netlink');
    expect(Object.values(binding).some((v) => typeof v === 'function')).toBe(true);
    expect(loadAddon('netlink')).toBe(binding); // once per process
  });

  it('loads weft_native from the build folder when it has been built', (ctx) => {
    if (!existsSync(join(__dirname, '..', 'build', 'Release', 'weft_native.node'))) {
      console.log(
        'SKIPPED: libs/native/build/Release/weft_native.node is not built (scripts/build-native.sh)',
      );
      ctx.skip();
    }
    const addon = loadAddon<Record<string, unknown>>('weft_native');
    expect(Object.keys(addon).length).toBeGreaterThan(0);
  });

  it('names the places it looked when an addon does not exist', () => {
    expect(() => loadAddon('no_such_addon')).toThrow(/no_such_addon not found.*looked in/);
  });
});
