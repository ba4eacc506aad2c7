/**
 * The host-local operations, callable in-process (delegated IPAM without a fork) or from the
 * weft-host-local executable. Every one validates the whole config before touching the disk and
 * serializes on the store's flock, so it can run beside the reference plugin on one data dir.
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import {
  CniError,
  CNI_ERR_INVALID_ENV,
  CNI_ERR_IO,
  CNI_ERR_PLUGIN_NOT_AVAILABLE,
  CNI_ERR_TRY_AGAIN_LATER,
  type CniIpConfig,
  type CniResult,
  type GcAttachment,
} from '@weft/cni';
import { loadConfig, type IpamArgs, type HostLocalConfig } from './config';
import { LockTimeoutError } from './file-lock';
import { formatIp, ipEquals, parseCidr, type Ip } from './ip';
import { readResolvConf } from './resolv-conf';
import type { RangeSet } from './range';
import { DiskStore, ownedBy, type Reservation } from './store';

/** Plugin-specific error codes (the spec leaves 100 and up to plugins). */
export const HOST_LOCAL_ERR_NO_ADDRESS = 100;
export const HOST_LOCAL_ERR_REQUESTED_ADDRESS = 101;
export const HOST_LOCAL_ERR_NOT_RECORDED = 102;

export interface Attachment {
  containerId: string;
  ifname: string;
  /** CNI_ARGS; `IP=<addr>` asks for a specific address. */
  args?: IpamArgs;
}

export interface CheckAttachment extends Attachment {
  /** The ADD result being checked; its addresses in our ranges must still be recorded. */
  prevResult?: { ips?: Array<{ address: string }> };
}

export interface HostLocalOptions {
  /** How long to wait for the store's lock before failing with code 11 (default 30 s). */
  lockTimeoutMs?: number;
}

const DEFAULT_LOCK_TIMEOUT_MS = 30_000;

/** Hands out one address per range set to (containerId, ifname); a repeated ADD gets the same ones. */
export async function allocate(
  conf: unknown,
  attachment: Attachment,
  options: HostLocalOptions = {},
): Promise<CniResult> {
  const config = loadConfig(conf, attachment.args);
  const { containerId, ifname } = checkAttachment(attachment);
  const dns =
    config.resolvConf === undefined
      ? undefined
      : io(() => readResolvConf(config.resolvConf!), 'cannot read resolvConf');
  const store = openStore(config, true)!;
  const ips = await underLock(store, options, () => allocateLocked(store, config, containerId, ifname));
  const result: CniResult = { cniVersion: config.cniVersion, ips };
  if (config.routes.length > 0) result.routes = config.routes;
  if (dns) result.dns = dns;
  return result;
}

function allocateLocked(
  store: DiskStore,
  config: HostLocalConfig,
  containerId: string,
  ifname: string,
): CniIpConfig[] {
  const held = store.reservations().filter((r) => ownedBy(r.owner, containerId, ifname, true));
  const taken = store.takenNames();
  const requested = [...config.requestedIps];
  const reservedNow: Ip[] = [];
  const reserve = (ip: Ip, rangeSetIndex: number): boolean => {
    const ok = store.reserve(containerId, ifname, ip, rangeSetIndex);
    if (ok) reservedNow.push(ip);
    return ok;
  };
  try {
    const ips = config.rangeSets.map((set, index): CniIpConfig => {
      const fail = (code: number, why: string): never => {
        throw new CniError(code, `failed to allocate for range ${index}: ${why}`);
      };
      const wanted = requested.findIndex((ip) => set.contains(ip));
      const request = wanted >= 0 ? requested.splice(wanted, 1)[0] : undefined;
      const ip = request
        ? takeRequested(set, request, held, () => reserve(request, index), fail)
        : takeNext(
            set,
            held,
            taken,
            store.lastReservedIp(index),
            (candidate) => reserve(candidate, index),
            fail,
          );
      const range = set.rangeFor(ip)!;
      return { address: `${formatIp(ip)}/${range.prefix}`, gateway: formatIp(range.gateway) };
    });
    if (requested.length > 0) {
      throw new CniError(
        HOST_LOCAL_ERR_REQUESTED_ADDRESS,
        `failed to allocate all requested IPs: ${requested.map(formatIp).join(' ')}`,
      );
    }
    return ips;
  } catch (err) {
    for (const ip of reservedNow) store.release(ip); // all or nothing
    throw err;
  }
}

type Fail = (code: number, why: string) => never;

function takeRequested(
  set: RangeSet,
  request: Ip,
  held: Reservation[],
  reserve: () => boolean,
  fail: Fail,
): Ip {
  const range = set.rangeFor(request)!;
  if (ipEquals(request, range.gateway))
    fail(HOST_LOCAL_ERR_REQUESTED_ADDRESS, `requested ip ${formatIp(request)} is subnet's gateway`);
  if (range.isReserved(request)) {
    fail(
      HOST_LOCAL_ERR_REQUESTED_ADDRESS,
      `requested ip ${formatIp(request)} is not a host address of ${range.subnetString()}`,
    );
  }
  if (!held.some((r) => ipEquals(r.ip, request)) && !reserve()) {
    fail(
      HOST_LOCAL_ERR_REQUESTED_ADDRESS,
      `requested IP address ${formatIp(request)} is not available in range set ${set}`,
    );
  }
  return request;
}

function takeNext(
  set: RangeSet,
  held: Reservation[],
  taken: Set<string>,
  lastReserved: Ip | undefined,
  reserve: (ip: Ip) => boolean,
  fail: Fail,
): Ip {
  // The spec forbids a second ADD without DEL; answering one with the address already held keeps
  // a retried ADD from leaking another (the reference refuses it instead).
  const already = held.find((r) => set.contains(r.ip));
  if (already) return already.ip;
  for (const { ip } of set.candidates(lastReserved)) {
    if (!taken.has(formatIp(ip)) && reserve(ip)) return ip;
  }
  return fail(HOST_LOCAL_ERR_NO_ADDRESS, `no IP addresses available in range set: ${set}`);
}

/** Frees what (containerId, ifname) holds; nothing held (or no store at all) is a success. */
export async function release(
  conf: unknown,
  attachment: Attachment,
  options: HostLocalOptions = {},
): Promise<string[]> {
  const config = loadConfig(conf, attachment.args);
  const { containerId, ifname } = checkAttachment(attachment);
  const store = openStore(config, false);
  if (!store) return [];
  return underLock(store, options, () => {
    const mine = store.findByOwner(containerId, ifname);
    for (const r of mine) store.release(r.ip);
    return mine.map((r) => formatIp(r.ip));
  });
}

/** Succeeds when (containerId, ifname) still holds an address, and every prevResult address of ours. */
export async function check(
  conf: unknown,
  attachment: CheckAttachment,
  options: HostLocalOptions = {},
): Promise<void> {
  const config = loadConfig(conf, attachment.args);
  const { containerId, ifname } = checkAttachment(attachment);
  const notFound = (): never => {
    throw new CniError(
      HOST_LOCAL_ERR_NOT_RECORDED,
      `host-local: Failed to find address added by container ${containerId}`,
    );
  };
  const store = openStore(config, false) ?? notFound();
  const held = await underLock(store, options, () => store.findByOwner(containerId, ifname));
  if (held.length === 0) notFound();
  for (const entry of attachment.prevResult?.ips ?? []) {
    const ip = parseCidr(entry.address)?.ip;
    if (!ip || !config.rangeSets.some((s) => s.contains(ip))) continue; // another IPAM's address
    if (!held.some((r) => ipEquals(r.ip, ip))) {
      throw new CniError(
        HOST_LOCAL_ERR_NOT_RECORDED,
        `host-local: address ${formatIp(ip)} of container ${containerId} interface ${ifname} is no longer recorded`,
      );
    }
  }
}

/**
 * Spec 1.1.0 GC: frees every address not held by one of `validAttachments`. An old ID-only
 * reservation stays when any valid attachment has its container ID. Returns what was freed.
 */
export async function gc(
  conf: unknown,
  validAttachments: readonly GcAttachment[],
  options: HostLocalOptions = {},
): Promise<string[]> {
  const config = loadConfig(conf);
  const store = openStore(config, false);
  if (!store) return [];
  const isValid = (r: Reservation): boolean =>
    validAttachments.some((a) => ownedBy(r.owner, a.containerID, a.ifname, true));
  return underLock(store, options, () => {
    const stale = store.reservations().filter((r) => !isValid(r));
    for (const r of stale) store.release(r.ip);
    return stale.map((r) => formatIp(r.ip));
  });
}

export interface RangeSetUsage {
  /** The range set as the reference prints it: `start-end,start-end`. */
  rangeSet: string;
  capacity: bigint;
  used: bigint;
}

/** Addresses free and used per range set (a snapshot read without the lock). */
export function usage(conf: unknown): RangeSetUsage[] {
  const config = loadConfig(conf);
  const store = io(() => openStore(config, false), 'cannot read the data dir');
  const held = store ? io(() => store.reservations(), 'cannot read the data dir') : [];
  return config.rangeSets.map((set) => {
    let capacity = 0n;
    let used = 0n;
    for (const range of set.ranges) {
      capacity += range.capacity();
      used += BigInt(held.filter((r) => range.contains(r.ip) && !range.isReserved(r.ip)).length);
    }
    return { rangeSet: set.toString(), capacity, used };
  });
}

/** Spec 1.1.0 STATUS: error 50 (cannot serve ADD) when a range set is full or the store is not writable. */
export async function status(conf: unknown): Promise<void> {
  const config = loadConfig(conf);
  for (const dir of [join(config.dataDir, config.network), config.dataDir]) {
    try {
      accessSync(dir, constants.W_OK);
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue; // created on first ADD; check its parent instead
      throw new CniError(CNI_ERR_PLUGIN_NOT_AVAILABLE, `host-local: data dir ${dir} is not writable`, code);
    }
  }
  for (const u of usage(conf)) {
    if (u.used >= u.capacity) {
      throw new CniError(
        CNI_ERR_PLUGIN_NOT_AVAILABLE,
        `no IP addresses available in range set: ${u.rangeSet}`,
      );
    }
  }
}

function checkAttachment(a: Attachment): { containerId: string; ifname: string } {
  // The store writes "<id>\r\n<ifname>": a line break in either would forge another owner.
  if (typeof a.containerId !== 'string' || a.containerId.trim() === '' || /[\r\n]/.test(a.containerId)) {
    throw new CniError(CNI_ERR_INVALID_ENV, `invalid container ID ${JSON.stringify(a.containerId)}`);
  }
  if (
    typeof a.ifname !== 'string' ||
    !/^[^\s/:]{1,15}$/.test(a.ifname) ||
    a.ifname === '.' ||
    a.ifname === '..'
  ) {
    throw new CniError(CNI_ERR_INVALID_ENV, `invalid interface name ${JSON.stringify(a.ifname)}`);
  }
  return { containerId: a.containerId, ifname: a.ifname };
}

function openStore(config: HostLocalConfig, create: boolean): DiskStore | undefined {
  return io(
    () => DiskStore.open(config.dataDir, config.network, create),
    `cannot open data dir ${config.dataDir}/${config.network}`,
  );
}

function io<T>(fn: () => T, what: string): T {
  try {
    return fn();
  } catch (err) {
    throw asCniError(err, what);
  }
}

async function underLock<T>(store: DiskStore, options: HostLocalOptions, fn: () => T): Promise<T> {
  try {
    return await store.locked(options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS, fn);
  } catch (err) {
    throw asCniError(err, `host-local store ${store.dir}`);
  }
}

function asCniError(err: unknown, what: string): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof LockTimeoutError)
    return new CniError(CNI_ERR_TRY_AGAIN_LATER, err.message, undefined, { cause: err });
  return new CniError(CNI_ERR_IO, `${what}: ${err instanceof Error ? err.message : String(err)}`, undefined, {
    cause: err,
  });
}
