import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  constants,
  fsyncSync,
  lstatSync,
  openSync,
  readFileSync,
  readSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeSync,
  chmodSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A unique temporary name beside `path` (same directory, so rename(2) is atomic). */
export function tempBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes a complete file under a temporary name, fsyncs it and renames it over `path`. */
export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644): void {
  const tmp = tempBeside(path);
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, mode); // the umask must not decide an executable's mode
    renameSync(tmp, path);
    fsyncDir(dirname(path));
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Copies `from` to `path` via a temporary file + rename: readers see the old or the new file, whole. */
export function copyFileAtomic(from: string, path: string, mode: number): void {
  const tmp = tempBeside(path);
  try {
    copyFileSync(from, tmp, constants.COPYFILE_FICLONE);
    const fd = openSync(tmp, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, mode);
    renameSync(tmp, path);
    fsyncDir(dirname(path));
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Makes `path` a symlink to `target`, replacing whatever is there in one rename. */
export function symlinkAtomic(target: string, path: string): void {
  const tmp = tempBeside(path);
  try {
    symlinkSync(target, tmp);
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

export function sha256File(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** What is at `path`, without following a final symlink. */
export type PathState =
  | { kind: 'absent' }
  | { kind: 'file'; size: number }
  | { kind: 'symlink'; target: string }
  | { kind: 'other' };

export function pathState(path: string): PathState {
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    throw err;
  }
  if (st.isSymbolicLink()) return { kind: 'symlink', target: readlinkSync(path) };
  if (st.isFile()) return { kind: 'file', size: st.size };
  return { kind: 'other' };
}

export function readTextIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
