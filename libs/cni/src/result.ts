import { isIP } from 'node:net';
import { CniError, CNI_ERR_DECODE, CNI_ERR_INCOMPATIBLE_VERSION } from './errors';
import { assertSupportedVersion, versionAtLeast } from './versions';
import type { CniDns, CniInterface, CniIpConfig, CniResult, CniRoute, VersionedResult } from './types';

export interface ParseResultOptions {
  /** Version to assume when the document carries no `cniVersion`. */
  defaultVersion?: string;
  /** Error code for a malformed document: 6 (decode) for plugin output, 7 for a conf's prevResult. */
  errorCode?: number;
  /** Path used in messages, e.g. "prevResult". */
  what?: string;
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

class Checker {
  constructor(
    private readonly code: number,
    private readonly base: string,
  ) {}

  fail(path: string, value: unknown, expected: string): never {
    throw new CniError(this.code, `invalid ${this.base}${path} ${short(value)} (expected ${expected})`);
  }
  obj(v: unknown, path: string): Obj {
    if (!isObject(v)) this.fail(path, v, 'an object');
    return v;
  }
  arr(v: unknown, path: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, v, 'an array');
    return v;
  }
  optStr(o: Obj, key: string, path: string): string | undefined {
    const v = o[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') this.fail(`${path}.${key}`, v, 'a string');
    return v;
  }
  optInt(o: Obj, key: string, path: string, min = 0): number | undefined {
    const v = o[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
      this.fail(`${path}.${key}`, v, `an integer >= ${min}`);
    return v;
  }
  strList(v: unknown, path: string): string[] {
    const a = this.arr(v, path);
    a.forEach((s, i) => typeof s === 'string' || this.fail(`${path}[${i}]`, s, 'a string'));
    return a as string[];
  }
}

/** "value" shortened for error messages so that a hostile document cannot flood the output. */
export function short(value: unknown): string {
  let s: string;
  try {
    s = value === undefined ? 'undefined' : JSON.stringify(value);
  } catch {
    s = String(value);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** True for "addr/prefix" with a valid IPv4/IPv6 address and prefix length. */
export function isCidr(s: string): boolean {
  const slash = s.lastIndexOf('/');
  if (slash < 0) return false;
  const family = isIP(s.slice(0, slash));
  const prefix = s.slice(slash + 1);
  if (!family || !/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}

/** Validates a `dns` object (network config and result share the shape). */
export function parseDns(v: unknown, code: number, path: string, base = ''): CniDns {
  const c: Checker = new Checker(code, base);
  const o = c.obj(v, path);
  const dns: CniDns = {};
  if (o.nameservers !== undefined) dns.nameservers = [...c.strList(o.nameservers, `${path}.nameservers`)];
  const domain = c.optStr(o, 'domain', path);
  if (domain !== undefined) dns.domain = domain;
  if (o.search !== undefined) dns.search = [...c.strList(o.search, `${path}.search`)];
  if (o.options !== undefined) dns.options = [...c.strList(o.options, `${path}.options`)];
  return dns;
}

/**
 * Reads a result of any supported version into the internal form, checking every field's type.
 * 0.1.0/0.2.0 (and unknown versions) give error 1.
 */
export function parseResult(raw: unknown, options: ParseResultOptions = {}): CniResult {
  const code = options.errorCode ?? CNI_ERR_DECODE;
  const what = options.what ?? 'result';
  const c: Checker = new Checker(code, what);
  const o = c.obj(raw, '');
  const rawVersion = o.cniVersion ?? options.defaultVersion;
  if (rawVersion !== undefined && typeof rawVersion !== 'string')
    c.fail('.cniVersion', rawVersion, 'a string');
  const cniVersion = assertSupportedVersion(rawVersion, `${what}.cniVersion`);
  const old = !versionAtLeast(cniVersion, '1.0.0');
  const result: CniResult = { cniVersion };

  if (o.interfaces !== undefined && o.interfaces !== null) {
    result.interfaces = c.arr(o.interfaces, '.interfaces').map((v, i) => {
      const p = `.interfaces[${i}]`;
      const io = c.obj(v, p);
      const name = c.optStr(io, 'name', p);
      if (name === undefined) c.fail(`${p}.name`, undefined, 'a string');
      const intf: CniInterface = { name };
      for (const key of ['mac', 'sandbox', 'sandboxID', 'socketPath', 'pciID'] as const) {
        const s = c.optStr(io, key, p);
        if (s !== undefined) intf[key] = s;
      }
      const mtu = c.optInt(io, 'mtu', p);
      if (mtu !== undefined) intf.mtu = mtu;
      return intf;
    });
  }

  if (o.ips !== undefined && o.ips !== null) {
    result.ips = c.arr(o.ips, '.ips').map((v, i) => {
      const p = `.ips[${i}]`;
      const io = c.obj(v, p);
      const address = c.optStr(io, 'address', p);
      if (address === undefined || !isCidr(address))
        c.fail(`${p}.address`, address, 'an IP address in CIDR notation');
      const ip: CniIpConfig = { address };
      const gateway = c.optStr(io, 'gateway', p);
      if (gateway !== undefined) {
        if (!isIP(gateway)) c.fail(`${p}.gateway`, gateway, 'an IP address');
        ip.gateway = gateway;
      }
      const intf = c.optInt(io, 'interface', p);
      if (intf !== undefined) ip.interface = intf;
      // 0.x results name the family; a wrong one is a broken document, not something to guess.
      if (old && io.version !== undefined) {
        const family = String(isIP(address.slice(0, address.lastIndexOf('/'))));
        if (io.version !== family) c.fail(`${p}.version`, io.version, `"${family}" for address ${address}`);
      }
      return ip;
    });
  }

  if (o.routes !== undefined && o.routes !== null) {
    result.routes = c.arr(o.routes, '.routes').map((v, i) => {
      const p = `.routes[${i}]`;
      const ro = c.obj(v, p);
      const dst = c.optStr(ro, 'dst', p);
      if (dst === undefined || !isCidr(dst)) c.fail(`${p}.dst`, dst, 'a destination in CIDR notation');
      const route: CniRoute = { dst };
      const gw = c.optStr(ro, 'gw', p);
      if (gw !== undefined) {
        if (!isIP(gw)) c.fail(`${p}.gw`, gw, 'an IP address');
        route.gw = gw;
      }
      for (const key of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
        const n = c.optInt(ro, key, p);
        if (n !== undefined) route[key] = n;
      }
      return route;
    });
  }

  if (o.dns !== undefined && o.dns !== null) {
    const dns = parseDns(o.dns, code, '.dns', what);
    if (Object.keys(dns).length > 0) result.dns = dns;
  }
  return result;
}

function dnsOut(dns: CniDns | undefined): CniDns | undefined {
  if (!dns) return undefined;
  const out: CniDns = {};
  if (dns.nameservers?.length) out.nameservers = [...dns.nameservers];
  if (dns.domain) out.domain = dns.domain;
  if (dns.search?.length) out.search = [...dns.search];
  if (dns.options?.length) out.options = [...dns.options];
  return Object.keys(out).length ? out : undefined;
}

/** Copies only the listed keys that are set, in the listed order (stable JSON for goldens). */
function pick<T extends object>(from: T, keys: readonly (keyof T)[]): Partial<T> {
  const out: Partial<T> = {};
  for (const k of keys) if (from[k] !== undefined) out[k] = from[k];
  return out;
}

const IFACE_KEYS_V1 = ['name', 'mac', 'sandbox'] as const;
const IFACE_KEYS_V11 = ['name', 'mac', 'mtu', 'sandbox', 'sandboxID', 'socketPath', 'pciID'] as const;
const ROUTE_KEYS_V1 = ['dst', 'gw'] as const;
const ROUTE_KEYS_V11 = ['dst', 'gw', 'mtu', 'advmss', 'priority', 'table', 'scope'] as const;

/**
 * Writes an internal result in `toVersion`'s format. Upgrades lose nothing; downgrades drop what
 * the older version cannot say (1.1.0 interface/route fields; 0.x regains ips[].version).
 * Converting to 0.1.0/0.2.0 (or anything unknown) is error 1.
 */
export function convertResult(result: CniResult, toVersion: string): VersionedResult {
  if (!['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'].includes(toVersion)) {
    throw new CniError(
      CNI_ERR_INCOMPATIBLE_VERSION,
      `cannot convert a result to CNI version ${JSON.stringify(toVersion)}`,
      'supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0',
    );
  }
  const v11 = toVersion === '1.1.0';
  const old = !versionAtLeast(toVersion, '1.0.0');
  const out: Record<string, unknown> = { cniVersion: toVersion };
  if (result.interfaces?.length) {
    out.interfaces = result.interfaces.map((i) => pick(i, v11 ? IFACE_KEYS_V11 : IFACE_KEYS_V1));
  }
  if (result.ips?.length) {
    out.ips = result.ips.map((ip) => {
      const o: Record<string, unknown> = {};
      if (old) o.version = isIP(ip.address.slice(0, ip.address.lastIndexOf('/'))) === 6 ? '6' : '4';
      if (ip.interface !== undefined) o.interface = ip.interface;
      o.address = ip.address;
      if (ip.gateway !== undefined) o.gateway = ip.gateway;
      return o;
    });
  }
  if (result.routes?.length) {
    out.routes = result.routes.map((r) => pick(r, v11 ? ROUTE_KEYS_V11 : ROUTE_KEYS_V1));
  }
  const dns = dnsOut(result.dns);
  if (dns) out.dns = dns;
  return out as unknown as VersionedResult;
}

/** parseResult + convertResult: any supported version in, `toVersion` out. */
export function convertResultJson(
  raw: unknown,
  toVersion: string,
  options?: ParseResultOptions,
): VersionedResult {
  return convertResult(parseResult(raw, options), toVersion);
}
