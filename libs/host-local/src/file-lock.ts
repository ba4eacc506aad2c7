/**
 * An exclusive flock(2) on a lock file, the lock the reference host-local takes on
 * `<dataDir>/<network>/lock`, so that both plugins serialize against each other.
 */
import { closeSync, constants, openSync } from 'node:fs';
import { isNativeError, native } from '@weft/native';

export class LockTimeoutError extends Error {
  constructor(
    readonly path: string,
    readonly timeoutMs: number,
  ) {
    super(`timed out after ${timeoutMs} ms waiting for the lock on ${path}`);
    this.name = 'LockTimeoutError';
  }
}

// flock excludes other open file descriptions in this process too, but a waiter parks a thread
// of libuv's small pool: queue same-path callers here first so at most one of them waits there.
const inProcessQueues = new Map<string, Promise<void>>();

/** Runs `fn` holding the lock; waits at most `timeoutMs` for it (then LockTimeoutError). */
export async function withFileLock<T>(path: string, timeoutMs: number, fn: () => T | Promise<T>): Promise<T> {
  const previous = inProcessQueues.get(path) ?? Promise.resolve();
  let done!: () => void;
  const mine = new Promise<void>((resolve) => (done = resolve));
  const tail = previous.then(() => mine);
  inProcessQueues.set(path, tail);
  const deadline = Date.now() + timeoutMs;
  try {
    await withTimeout(previous, timeoutMs, path);
    const fd = await acquire(path, Math.max(0, deadline - Date.now()));
    try {
      return await fn();
    } finally {
      release(fd);
    }
  } finally {
    done();
    if (inProcessQueues.get(path) === tail) inProcessQueues.delete(path);
  }
}

async function acquire(path: string, timeoutMs: number): Promise<number> {
  const { flock, flockAsync, flockOps } = native();
  // O_RDONLY|O_CREAT with mode 0750: how the reference (go-filemutex) opens its lock file.
  const fd = openSync(path, constants.O_RDONLY | constants.O_CREAT, 0o750);
  try {
    flock(fd, flockOps.LOCK_EX | flockOps.LOCK_NB);
    return fd;
  } catch (err) {
    if (!isNativeError(err) || err.code !== 'EAGAIN') {
      closeSync(fd);
      throw err;
    }
  }
  // Held elsewhere: wait for it on the thread pool, but not forever.
  const waiting = flockAsync(fd, flockOps.LOCK_EX);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>(
    (resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)),
  );
  try {
    const outcome = await Promise.race([waiting.then(() => 'locked' as const), timedOut]);
    if (outcome === 'locked') return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  } finally {
    clearTimeout(timer);
  }
  // The blocked flock cannot be interrupted: when it finally succeeds, give the lock straight back.
  waiting.then(
    () => release(fd),
    () => closeSync(fd),
  );
  throw new LockTimeoutError(path, timeoutMs);
}

function release(fd: number): void {
  try {
    native().flock(fd, native().flockOps.LOCK_UN);
  } finally {
    closeSync(fd);
  }
}

async function withTimeout(p: Promise<void>, timeoutMs: number, path: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      p,
      new Promise<never>(
        (_, reject) => (timer = setTimeout(() => reject(new LockTimeoutError(path, timeoutMs)), timeoutMs)),
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
