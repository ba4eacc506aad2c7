/**
 * The reference host-local's on-disk store, byte for byte, so that it and weft-host-local can
 * share one directory `<dataDir>/<network>/`:
 *   <ip>                  one file per address in use; content `<containerID>\r\n<ifname>`
 *                         (versions before CNI 0.7 wrote only `<containerID>`; both are read)
 *   last_reserved_ip.<n>  the last address handed out from range set n (round-robin cursor)
 *   lock                  flock(2)ed around every read-modify-write
 * All methods except `open` expect the caller to hold the lock (see `locked`).
 */
import {
  closeSync,
  constants,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { withFileLock } from './file-lock';
import { formatIp, parseIp, type Ip } from './ip';

export const LAST_RESERVED_IP_PREFIX = 'last_reserved_ip.';
export const LOCK_FILE = 'lock';
/** What the reference writes between container ID and interface name. */
export const LINE_BREAK = '\r\n';

/** Who holds an address; `ifname` is undefined for reservations written by old versions. */
export interface Owner {
  containerId: string;
  ifname?: string;
}

export interface Reservation {
  ip: Ip;
  owner: Owner;
}

/** Reads a reservation file: `id\r\nifname` (also `id\nifname`), the old `id`, or a JSON key. */
export function parseOwner(content: string): Owner {
  const text = content.trim();
  if (text.startsWith('{')) {
    try {
      const key = JSON.parse(text) as { kind?: unknown; value?: { id?: unknown; if?: unknown } };
      if (key.kind === 'host-local-v1' && typeof key.value?.id === 'string') {
        return { containerId: key.value.id, ifname: typeof key.value.if === 'string' ? key.value.if : '' };
      }
    } catch {
      /* not JSON: an odd container ID, read below */
    }
  }
  const newline = text.search(/\r?\n/);
  if (newline < 0) return { containerId: text };
  const rest = text.slice(newline).replace(/^\r?\n/, '');
  return { containerId: text.slice(0, newline), ifname: rest };
}

export function formatOwner(containerId: string, ifname: string): string {
  return `${containerId.trim()}${LINE_BREAK}${ifname}`;
}

/** Exact (containerID, ifname) match; the old ID-only form matches any interface of that container. */
export function ownedBy(owner: Owner, containerId: string, ifname: string, allowLegacy: boolean): boolean {
  if (owner.containerId !== containerId.trim()) return false;
  if (owner.ifname === undefined) return allowLegacy;
  return owner.ifname === ifname;
}

export class DiskStore {
  private constructor(readonly dir: string) {}

  /** `<dataDir>/<network>`, created (0755) unless `create` is false and it does not exist. */
  static open(dataDir: string, network: string, create = true): DiskStore | undefined {
    const dir = join(dataDir, network);
    if (create) mkdirSync(dir, { recursive: true, mode: 0o755 });
    else {
      try {
        readdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    }
    return new DiskStore(dir);
  }

  /** Runs `fn` under the directory's flock (shared with the reference plugin). */
  locked<T>(timeoutMs: number, fn: () => T | Promise<T>): Promise<T> {
    return withFileLock(join(this.dir, LOCK_FILE), timeoutMs, fn);
  }

  /** Addresses in use: every file named by an IP address (not `lock`, not `last_reserved_ip.*`). */
  reservations(): Reservation[] {
    const out: Reservation[] = [];
    for (const entry of readdirSync(this.dir, { withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const ip = parseIp(entry.name);
      if (!ip) continue;
      let content: string;
      try {
        content = readFileSync(join(this.dir, entry.name), 'utf8');
      } catch {
        continue; // released between readdir and read (by a plugin ignoring the lock)
      }
      out.push({ ip, owner: parseOwner(content) });
    }
    return out;
  }

  /** Names of the address files, for a cheap "is it taken" check before the O_EXCL create. */
  takenNames(): Set<string> {
    return new Set(readdirSync(this.dir).filter((name) => parseIp(name) !== undefined));
  }

  /**
   * Creates `<ip>` exclusively; false when it already exists. Then records the round-robin
   * cursor of range set `rangeId`, as the reference does on every reservation.
   */
  reserve(containerId: string, ifname: string, ip: Ip, rangeId: number): boolean {
    const file = join(this.dir, formatIp(ip));
    let fd: number;
    try {
      fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
    try {
      writeSync(fd, formatOwner(containerId, ifname));
      closeSync(fd);
    } catch (err) {
      try {
        closeSync(fd);
      } catch {
        /* already closed */
      }
      unlinkSync(file);
      throw err;
    }
    writeFileSync(join(this.dir, LAST_RESERVED_IP_PREFIX + rangeId), formatIp(ip), { mode: 0o644 });
    return true;
  }

  lastReservedIp(rangeId: number): Ip | undefined {
    try {
      return parseIp(readFileSync(join(this.dir, LAST_RESERVED_IP_PREFIX + rangeId), 'utf8').trim());
    } catch {
      return undefined; // missing or unreadable: we only lose round-robin once, like the reference
    }
  }

  release(ip: Ip): void {
    try {
      unlinkSync(join(this.dir, formatIp(ip)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /**
   * The addresses of (containerID, ifname): exact matches, or, only when there are none, the
   * old ID-only reservations of that container (the reference's fallback order).
   */
  findByOwner(containerId: string, ifname: string): Reservation[] {
    const all = this.reservations();
    const exact = all.filter((r) => ownedBy(r.owner, containerId, ifname, false));
    if (exact.length > 0) return exact;
    return all.filter((r) => r.owner.ifname === undefined && ownedBy(r.owner, containerId, ifname, true));
  }
}
