/**
 * The `ipam` section of a network config, read with the reference host-local's keys and rules:
 * `ranges` (list of range sets), the legacy single range (`subnet`, `rangeStart`, `rangeEnd`,
 * `gateway`) prepended to it, `runtimeConfig.ipRanges` prepended before both, `routes`,
 * `dataDir`, `resolvConf`; requested addresses from CNI_ARGS `IP=`, `args.cni.ips` and
 * `runtimeConfig.ips`, in that order.
 */
import {
  CniError,
  CNI_ERR_INVALID_ENV,
  CNI_ERR_INVALID_NETCONF,
  parseCniArgs,
  type CniRoute,
} from '@weft/cni';
import { formatCidr, formatIp, parseCidr, parseIp, type Ip } from './ip';
import { RangeConfigError, RangeSet } from './range';

export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';

/** The spec's pattern for a network name; also keeps `<dataDir>/<name>` inside dataDir. */
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export interface HostLocalConfig {
  /** Network name: the store lives in `<dataDir>/<network>`. */
  network: string;
  cniVersion: string;
  dataDir: string;
  resolvConf?: string;
  /** One address is handed out per range set. */
  rangeSets: RangeSet[];
  routes: CniRoute[];
  /** Specific addresses asked for; each must fall in one range set. */
  requestedIps: Ip[];
}

/** CNI_ARGS as the raw `K=V;K=V` string or already split (e.g. libcni's `CniArgs.values`). */
export type IpamArgs = string | Readonly<Record<string, string>>;

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function invalid(msg: string): never {
  throw new CniError(CNI_ERR_INVALID_NETCONF, msg);
}

export function splitCniArgs(args: IpamArgs | undefined): Readonly<Record<string, string>> {
  if (args === undefined) return {};
  return typeof args === 'string' ? parseCniArgs(args, { allowUnknown: true }).values : args;
}

/** "10.1.2.3" or "10.1.2.3/24" (the prefix is ignored, as the reference's ip.IP does). */
function requestedIp(text: unknown, where: string, code: number): Ip {
  const s = typeof text === 'string' ? text : '';
  const ip = s.includes('/') ? parseCidr(s)?.ip : parseIp(s);
  if (!ip)
    throw new CniError(code, `cannot understand ip: ${where} ${JSON.stringify(text)} is not an IP address`);
  return ip;
}

function parseRoutes(raw: unknown): CniRoute[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) invalid(`invalid ipam.routes: expected an array, got ${JSON.stringify(raw)}`);
  return raw.map((r, i) => {
    if (!isObject(r)) invalid(`invalid ipam.routes[${i}]: expected an object`);
    const dst = typeof r.dst === 'string' ? parseCidr(r.dst) : undefined;
    if (!dst) invalid(`invalid ipam.routes[${i}].dst ${JSON.stringify(r.dst)}: expected a CIDR`);
    const route: CniRoute = { dst: formatCidr(dst) };
    if (r.gw !== undefined && r.gw !== null && r.gw !== '') {
      const gw = typeof r.gw === 'string' ? parseIp(r.gw) : undefined;
      if (!gw) invalid(`invalid ipam.routes[${i}].gw ${JSON.stringify(r.gw)}: expected an IP address`);
      route.gw = formatIp(gw);
    }
    for (const key of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
      const v = r[key];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
        invalid(`invalid ipam.routes[${i}].${key} ${JSON.stringify(v)}`);
      route[key] = v;
    }
    return route;
  });
}

function optionalString(ipam: Obj, key: string): string | undefined {
  const v = ipam[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') invalid(`invalid ipam.${key} ${JSON.stringify(v)}: expected a string`);
  return v;
}

function parseRangeSet(raw: unknown, index: number): RangeSet {
  try {
    return RangeSet.parse(raw);
  } catch (err) {
    if (err instanceof RangeConfigError)
      throw new CniError(err.cniCode, `invalid range set ${index}: ${err.message}`);
    throw err;
  }
}

/**
 * Reads and validates the host-local settings of a network config (already JSON-decoded).
 * Throws CniError 7 (or 2 for an unknown range key, 4 for a bad CNI_ARGS) and touches nothing.
 */
export function loadConfig(conf: unknown, cniArgs?: IpamArgs): HostLocalConfig {
  if (!isObject(conf)) invalid('network config must be a JSON object');
  const ipam = conf.ipam;
  if (!isObject(ipam)) invalid("IPAM config missing 'ipam' key");
  const network = conf.name;
  if (typeof network !== 'string' || !NETWORK_NAME.test(network) || network === '.' || network === '..') {
    invalid(`invalid network name ${JSON.stringify(network)}`);
  }
  const cniVersion = typeof conf.cniVersion === 'string' ? conf.cniVersion : '1.1.0';
  const runtimeConfig = isObject(conf.runtimeConfig) ? conf.runtimeConfig : {};

  const requestedIps: Ip[] = [];
  const envIp = splitCniArgs(cniArgs).IP;
  if (envIp !== undefined && envIp !== '')
    requestedIps.push(requestedIp(envIp, 'CNI_ARGS IP', CNI_ERR_INVALID_ENV));
  const confArgs = isObject(conf.args) && isObject(conf.args.cni) ? conf.args.cni : undefined;
  if (confArgs?.ips !== undefined) {
    if (!Array.isArray(confArgs.ips)) invalid('invalid args.cni.ips: expected an array');
    confArgs.ips.forEach((ip, i) =>
      requestedIps.push(requestedIp(ip, `args.cni.ips[${i}]`, CNI_ERR_INVALID_NETCONF)),
    );
  }
  if (runtimeConfig.ips !== undefined) {
    if (!Array.isArray(runtimeConfig.ips)) invalid('invalid runtimeConfig.ips: expected an array');
    runtimeConfig.ips.forEach((ip, i) =>
      requestedIps.push(requestedIp(ip, `runtimeConfig.ips[${i}]`, CNI_ERR_INVALID_NETCONF)),
    );
  }

  const rawSets: unknown[] = [];
  if (runtimeConfig.ipRanges !== undefined) {
    if (!Array.isArray(runtimeConfig.ipRanges))
      invalid('invalid runtimeConfig.ipRanges: expected an array of range sets');
    rawSets.push(...runtimeConfig.ipRanges);
  }
  if (ipam.subnet !== undefined && ipam.subnet !== null && ipam.subnet !== '') {
    const { subnet, rangeStart, rangeEnd, gateway } = ipam;
    const legacy: Obj = { subnet };
    if (rangeStart !== undefined) legacy.rangeStart = rangeStart;
    if (rangeEnd !== undefined) legacy.rangeEnd = rangeEnd;
    if (gateway !== undefined) legacy.gateway = gateway;
    rawSets.push([legacy]);
  }
  if (ipam.ranges !== undefined && ipam.ranges !== null) {
    if (!Array.isArray(ipam.ranges)) invalid('invalid ipam.ranges: expected an array of range sets');
    rawSets.push(...ipam.ranges);
  }
  if (rawSets.length === 0) invalid('no IP ranges specified');
  const rangeSets = rawSets.map(parseRangeSet);
  for (let i = 0; i < rangeSets.length; i++) {
    for (let j = i + 1; j < rangeSets.length; j++) {
      if (rangeSets[i]!.overlaps(rangeSets[j]!)) invalid(`range set ${i} overlaps with ${j}`);
    }
  }

  const config: HostLocalConfig = {
    network,
    cniVersion,
    dataDir: optionalString(ipam, 'dataDir') ?? DEFAULT_DATA_DIR,
    rangeSets,
    routes: parseRoutes(ipam.routes),
    requestedIps,
  };
  const resolvConf = optionalString(ipam, 'resolvConf');
  if (resolvConf !== undefined) config.resolvConf = resolvConf;
  return config;
}
