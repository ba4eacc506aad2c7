import { fstatSync } from 'node:fs';
import { native } from '@weft/native';
import { sysctlPath } from './sysctl-path';

/** Misuse of the namespace helper (e.g. async work inside runSync, use after close). */
export class NetnsError extends Error {
  constructor(
    message: string,
    readonly code: 'ERR_NETNS_ASYNC' | 'ERR_NETNS_CLOSED' | 'ERR_NETNS_HOST',
  ) {
    super(message);
    this.name = 'NetnsError';
  }
}

// Closes fds of Netns objects that were dropped without close(), so a long-lived agent cannot leak them.
const leaked = new FinalizationRegistry<number>((fd) => {
  try {
    native().closeNetns(fd);
  } catch {
    /* already closed */
  }
});

let hostNetns: Netns | undefined;

/**
 * An open network namespace. Every operation that must happen inside a pod's namespace goes
 * through here, so the rules live in one place:
 * - syscalls that depend on the caller's namespace (sockets, sysctls) run on a throwaway native
 *   thread that enters the namespace and dies — the main thread and libuv's pool never move;
 * - `runSync` is the one exception: it moves the main thread for a single synchronous call (to
 *   construct libraries that open their socket in a constructor) and always moves it back.
 */
export class Netns {
  readonly path: string;
  #fd: number;
  readonly #isHost: boolean;

  private constructor(path: string, fd: number, isHost: boolean) {
    this.path = path;
    this.#fd = fd;
    this.#isHost = isHost;
    if (!isHost) leaked.register(this, fd, this);
  }

  /** Opens a namespace file (/var/run/netns/x, /proc/<pid>/ns/net); EINVAL if it is not a netns. */
  static open(path: string): Netns {
    // Opening the host first guarantees it is captured while the main thread is at home.
    Netns.host();
    return new Netns(path, native().openNetns(path), false);
  }

  /** Like open(), but undefined when the file does not exist (a DEL for a pod already gone). */
  static tryOpen(path: string): Netns | undefined {
    try {
      return Netns.open(path);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** The namespace this process runs in; opened once and never closed. */
  static host(): Netns {
    if (!hostNetns) {
      const path = '/proc/thread-self/ns/net';
      hostNetns = new Netns(path, native().openNetns(path), true);
    }
    return hostNetns;
  }

  get fd(): number {
    if (this.#fd < 0) throw new NetnsError(`netns ${this.path} is closed`, 'ERR_NETNS_CLOSED');
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Identifies the namespace: two Netns with the same inode are the same namespace. */
  inode(): number {
    return fstatSync(this.fd).ino;
  }

  isSameAs(other: Netns): boolean {
    return this.inode() === other.inode();
  }

  /**
   * Runs `fn` with the main thread inside this namespace and returns its result. Only for
   * synchronous work such as constructing a socket: a returned promise/thenable is refused, since
   * its continuation would run after the thread has switched back.
   */
  runSync<T>(fn: () => T): T {
    Netns.host();
    const result = native().runInNetnsSync(this.fd, fn);
    if (isThenable(result)) {
      // The sync part already ran inside; say so loudly rather than let the rest run outside.
      (result as PromiseLike<unknown>).then(undefined, () => undefined);
      throw new NetnsError(
        `runSync(${this.path}): the callback must be synchronous, it returned a promise`,
        'ERR_NETNS_ASYNC',
      );
    }
    return result;
  }

  /** A socket (O_CLOEXEC fd) created inside this namespace without moving the main thread. */
  socket(domain: number, type: number, protocol = 0): number {
    return native().socketIn(this.fd, domain, type, protocol);
  }

  /** Writes a sysctl as seen inside this namespace: "net.ipv4.ip_forward" or "net/ipv4/conf/eth0.5/rp_filter". */
  writeSysctl(key: string, value: string | number): void {
    native().writeSysctlIn(this.fd, sysctlPath(key), String(value));
  }

  /** Reads a sysctl inside this namespace, without the trailing newline. */
  readSysctl(key: string): string {
    return native().readSysctlIn(this.fd, sysctlPath(key)).replace(/\n$/, '');
  }

  /** ifindex of a link inside this namespace (ENODEV when absent). */
  ifNameToIndex(name: string): number {
    return native().ifNameToIndexIn(this.fd, name);
  }

  /** Closes the fd; idempotent. The host namespace stays open (it is shared). */
  close(): void {
    if (this.#isHost || this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    leaked.unregister(this);
    native().closeNetns(fd);
  }

  toString(): string {
    return `Netns(${this.path})`;
  }
}

function isThenable(value: unknown): boolean {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** True when `path` opens as a network namespace (false for missing files, regular files, other namespaces). */
export function isNetnsPath(path: string): boolean {
  let fd: number;
  try {
    fd = native().openNetns(path);
  } catch {
    return false;
  }
  native().closeNetns(fd);
  return true;
}
