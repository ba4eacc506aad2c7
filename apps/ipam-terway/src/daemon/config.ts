/**
 * Daemon configuration: weft's own keys (camelCase), plus Terway's `eni_conf` keys where they
 * mean the same thing, so an existing eni-config ConfigMap can be reused as is.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { BackoffOptions } from '../backoff';
import type { EcsAction } from '../cloud/types';
import { DEFAULT_METADATA_ENDPOINT } from '../cloud/metadata';

import { DEFAULT_ENI_SOCKET } from './api';

export const DEFAULT_SOCKET = DEFAULT_ENI_SOCKET;
export const DEFAULT_STATE_DIR = '/var/lib/weft/eni';

export interface EniDaemonConfig {
  socketPath: string;
  stateDir: string;
  ecs: {
    endpoint?: string;
    protocol: 'http' | 'https';
    accessKeyId: string;
    accessKeySecret: string;
    signatureAlgorithm?: 'v2' | 'ACS3-HMAC-SHA256';
    rateLimits?: Partial<Record<EcsAction, number>>;
    burst?: Partial<Record<EcsAction, number>>;
    /** Retry policy for throttling/5xx (default: 200 ms base, 10 s cap, 8 attempts). */
    backoff?: BackoffOptions;
  };
  metadataEndpoint: string;
  /** Idle IPs kept ready (warm pool); allocation tops it up in the background. */
  minPoolSize: number;
  /** Idle IPs above this are given back to the cloud after `idleTimeoutMs`. */
  maxPoolSize: number;
  /** Cap on secondary ENIs (the instance type's limit applies anyway). */
  maxEni?: number;
  /** vSwitches for new ENIs, by zone (Terway's `vswitches`); empty: the instance's own vSwitch. */
  vSwitches: Record<string, string[]>;
  vSwitchSelectionPolicy: 'ordered' | 'random';
  securityGroupIds: string[];
  eniTags: Record<string, string>;
  ipStack: 'ipv4' | 'dual';
  /** Addresses per Assign call (ECS takes at most 10). */
  batchSize: number;
  idleTimeoutMs: number;
  reclaimIntervalMs: number;
  /** How long an ADD waits for an address before failing with code 11. */
  allocateTimeoutMs: number;
  attachTimeoutMs: number;
  /** How long a vSwitch that reported IpNotEnough is skipped. */
  vSwitchCooldownMs: number;
  /** Configure ENI links and policy rules on the node (false: the pool only). */
  configureHost: boolean;
  /** Named netns that plays the node (tests); default: the daemon's own. */
  nodeNetns?: string;
  gcIntervalMs: number;
  /** Publish allocatable IPs as the node extended resource `weft.io/ip`. */
  kubernetes?: { server: string; token?: string; nodeName: string; insecure?: boolean };
}

export function defaultConfig(): EniDaemonConfig {
  return {
    socketPath: DEFAULT_SOCKET,
    stateDir: DEFAULT_STATE_DIR,
    ecs: { protocol: 'https', accessKeyId: '', accessKeySecret: '' },
    metadataEndpoint: DEFAULT_METADATA_ENDPOINT,
    minPoolSize: 2,
    maxPoolSize: 5,
    vSwitches: {},
    vSwitchSelectionPolicy: 'ordered',
    securityGroupIds: [],
    eniTags: {},
    ipStack: 'ipv4',
    batchSize: 10,
    idleTimeoutMs: 5 * 60_000,
    reclaimIntervalMs: 60_000,
    allocateTimeoutMs: 60_000,
    attachTimeoutMs: 60_000,
    vSwitchCooldownMs: 60_000,
    configureHost: true,
    gcIntervalMs: 60_000,
  };
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Terway keys that weft takes with the same meaning. */
const TERWAY_KEYS: Record<string, (c: EniDaemonConfig, v: unknown) => void> = {
  min_pool_size: (c, v) => (c.minPoolSize = count('min_pool_size', v)),
  max_pool_size: (c, v) => (c.maxPoolSize = count('max_pool_size', v)),
  max_eni: (c, v) => (c.maxEni = count('max_eni', v)),
  access_key: (c, v) => (c.ecs.accessKeyId = str('access_key', v)),
  access_secret: (c, v) => (c.ecs.accessKeySecret = str('access_secret', v)),
  vswitches: (c, v) => (c.vSwitches = vswitchMap(v)),
  vswitch_selection_policy: (c, v) => (c.vSwitchSelectionPolicy = policy(v)),
  security_group: (c, v) =>
    (c.securityGroupIds = [...new Set([...c.securityGroupIds, str('security_group', v)])]),
  security_groups: (c, v) =>
    (c.securityGroupIds = [...new Set([...c.securityGroupIds, ...strList('security_groups', v)])]),
  eni_tags: (c, v) => (c.eniTags = strMap('eni_tags', v)),
  ip_stack: (c, v) => (c.ipStack = ipStack(v)),
};

/** Terway keys that do not apply to weft: accepted (so a ConfigMap loads) and reported. */
const TERWAY_IGNORED = new Set([
  'version',
  'service_cidr',
  'prefix',
  'hot_plug',
  'eni_cap_ratio',
  'eni_cap_shift',
  'enable_eip_pool',
  'allow_eip_rob',
  'enable_eni_trunking',
  'min_eni',
  'credential_path',
  'ipam_type',
  'resource_group_id',
  'disable_security_group_check',
  'kube_client_qps',
  'kube_client_burst',
]);

const WEFT_KEYS = new Set(Object.keys(defaultConfig()).concat(['maxEni', 'nodeNetns', 'kubernetes']));

function count(k: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
    throw new ConfigError(`${k} must be a whole number ≥ 0`);
  return v;
}
function str(k: string, v: unknown): string {
  if (typeof v !== 'string') throw new ConfigError(`${k} must be a string`);
  return v;
}
function strList(k: string, v: unknown): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
    throw new ConfigError(`${k} must be a list of strings`);
  return v;
}
function strMap(k: string, v: unknown): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${k} must be a map`);
  return Object.fromEntries(Object.entries(v).map(([a, b]) => [a, str(`${k}.${a}`, b)]));
}
function vswitchMap(v: unknown): Record<string, string[]> {
  if (Array.isArray(v)) return { '*': strList('vswitches', v) };
  if (typeof v !== 'object' || v === null) throw new ConfigError('vswitches must map zone → [vSwitch ids]');
  // Terway accepts one id or a list per zone.
  return Object.fromEntries(
    Object.entries(v).map(([zone, ids]) => [
      zone,
      typeof ids === 'string' ? [ids] : strList(`vswitches.${zone}`, ids),
    ]),
  );
}
function policy(v: unknown): 'ordered' | 'random' {
  if (v === 'ordered' || v === 'random') return v;
  throw new ConfigError(`vswitch_selection_policy must be "ordered" or "random", got ${JSON.stringify(v)}`);
}
function ipStack(v: unknown): 'ipv4' | 'dual' {
  if (v === 'ipv4' || v === 'dual') return v;
  throw new ConfigError(
    `ip_stack must be "ipv4" or "dual" (IPv6-only is not supported), got ${JSON.stringify(v)}`,
  );
}

export interface LoadedConfig {
  config: EniDaemonConfig;
  /** Terway keys accepted but without effect in weft. */
  ignored: string[];
}

/**
 * Reads a JSON or YAML document. It may be weft's config, Terway's eni_conf, or both mixed;
 * a ConfigMap-like `{ eni_conf: "<json>" }` is unwrapped.
 */
export function parseConfig(text: string, base = defaultConfig()): LoadedConfig {
  let doc = parseYaml(text) as Record<string, unknown> | null;
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
    throw new ConfigError('config must be a map');
  if (typeof doc.eni_conf === 'string') {
    const { eni_conf, ...rest } = doc;
    doc = { ...(parseYaml(eni_conf as string) as Record<string, unknown>), ...rest };
  }
  // Terway's older layout nests its keys under `config:`.
  if (doc.config && typeof doc.config === 'object')
    doc = { ...(doc.config as object), ...doc, config: undefined };
  const config = structuredClone(base);
  const ignored: string[] = [];
  for (const [key, value] of Object.entries(doc)) {
    if (value === undefined) continue;
    if (key in TERWAY_KEYS) TERWAY_KEYS[key]!(config, value);
    else if (TERWAY_IGNORED.has(key)) ignored.push(key);
    else if (WEFT_KEYS.has(key))
      (config as unknown as Record<string, unknown>)[key] =
        key === 'ecs' ? { ...config.ecs, ...(value as object) } : value;
    else throw new ConfigError(`unknown config key "${key}"`);
  }
  validate(config);
  return { config, ignored };
}

export function loadConfigFile(path: string): LoadedConfig {
  return parseConfig(readFileSync(path, 'utf8'));
}

function validate(c: EniDaemonConfig): void {
  if (c.minPoolSize > c.maxPoolSize)
    throw new ConfigError(`min_pool_size (${c.minPoolSize}) > max_pool_size (${c.maxPoolSize})`);
  if (!(c.batchSize >= 1 && c.batchSize <= 10))
    throw new ConfigError('batchSize must be 1..10 (ECS assigns at most 10 per call)');
  if (c.securityGroupIds.length === 0)
    throw new ConfigError('no security group: set security_group(s) / securityGroupIds');
  if (!c.socketPath.startsWith('/')) throw new ConfigError('socketPath must be absolute');
}
