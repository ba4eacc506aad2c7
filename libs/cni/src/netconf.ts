import { CniError, CNI_ERR_DECODE, CNI_ERR_INCOMPATIBLE_VERSION, CNI_ERR_INVALID_NETCONF } from './errors';
import { parseDns, parseResult, short } from './result';
import { assertSupportedVersion, CNI_SPEC_VERSIONS, highestCommonVersion } from './versions';
import type { CniResult, GcAttachment, NetConf, NetConfList, PluginConf } from './types';

/** Largest network config we read (stdin, files): larger input is refused with error 6. */
export const MAX_CONF_BYTES = 1024 * 1024;

/** The spec's pattern for a network name. */
export const NETWORK_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

type Obj = Record<string, unknown>;

function invalid(key: string, value: unknown, expected: string): never {
  throw new CniError(
    CNI_ERR_INVALID_NETCONF,
    `invalid network config: ${key} ${short(value)} (expected ${expected})`,
  );
}

/** Bytes → one JSON object, or error 6 saying why (empty, too large, not JSON, not an object). */
export function decodeJsonObject(bytes: Buffer | Uint8Array | string, what = 'network config'): Obj {
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength;
  if (size > MAX_CONF_BYTES) {
    throw new CniError(CNI_ERR_DECODE, `${what} is too large: ${size} bytes (limit ${MAX_CONF_BYTES})`);
  }
  const text = (typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8')).trim();
  if (text === '') throw new CniError(CNI_ERR_DECODE, `${what} is empty (expected a JSON object on stdin)`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CniError(CNI_ERR_DECODE, `${what} is not valid JSON`, (err as Error).message);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const kind = Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value;
    throw new CniError(CNI_ERR_DECODE, `${what} must be a JSON object, got ${kind}`);
  }
  return value as Obj;
}

function checkVersion(o: Obj, key = 'cniVersion'): string {
  const v = o[key];
  if (v === undefined) {
    // libcni reads a missing cniVersion as 0.1.0, which nobody supports any more: error 1 like skel.
    throw new CniError(
      CNI_ERR_INCOMPATIBLE_VERSION,
      `incompatible CNI version: ${key} is missing (means 0.1.0)`,
      `supported versions: ${CNI_SPEC_VERSIONS.join(', ')}`,
    );
  }
  if (typeof v !== 'string') invalid(key, v, 'a version string');
  return assertSupportedVersion(v, key);
}

function checkName(o: Obj): string {
  const name = o.name;
  if (typeof name !== 'string' || !NETWORK_NAME_PATTERN.test(name)) {
    invalid('name', name, `a string matching ${NETWORK_NAME_PATTERN.source}`);
  }
  return name;
}

function optBool(o: Obj, key: string, path = key): void {
  if (o[key] !== undefined && typeof o[key] !== 'boolean') invalid(path, o[key], 'true or false');
}

function optObject(o: Obj, key: string, path = key): Obj | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) invalid(path, v, 'an object');
  return v as Obj;
}

/** Checks the keys a plugin config object (standalone or inside a conflist) may carry. */
function checkPluginKeys(o: Obj, prefix: string): void {
  const type = o.type;
  if (typeof type !== 'string' || type === '') invalid(`${prefix}type`, type, 'a non-empty string');
  const caps = optObject(o, 'capabilities', `${prefix}capabilities`);
  if (caps) {
    for (const [k, v] of Object.entries(caps)) {
      if (typeof v !== 'boolean') invalid(`${prefix}capabilities.${k}`, v, 'true or false');
    }
  }
  optBool(o, 'ipMasq', `${prefix}ipMasq`);
  const ipam = optObject(o, 'ipam', `${prefix}ipam`);
  // An empty ipam object is how some configs say "no IPAM"; a non-empty one must name its plugin.
  if (ipam && Object.keys(ipam).length > 0 && (typeof ipam.type !== 'string' || ipam.type === '')) {
    invalid(`${prefix}ipam.type`, ipam.type, 'a non-empty string');
  }
  if (o.dns !== undefined) parseDns(o.dns, CNI_ERR_INVALID_NETCONF, `${prefix}dns`, 'network config: ');
  optObject(o, 'args', `${prefix}args`);
  optObject(o, 'runtimeConfig', `${prefix}runtimeConfig`);
  if (
    o.mtu !== undefined &&
    (typeof o.mtu !== 'number' || !Number.isInteger(o.mtu) || o.mtu < 68 || o.mtu > 65535)
  ) {
    invalid(`${prefix}mtu`, o.mtu, 'an integer between 68 and 65535');
  }
  for (const key of ['logFile', 'logLevel']) {
    if (o[key] !== undefined && typeof o[key] !== 'string') invalid(`${prefix}${key}`, o[key], 'a string');
  }
}

function checkAttachments(o: Obj, key: string): void {
  const v = o[key];
  if (v === undefined) return;
  if (!Array.isArray(v)) invalid(key, v, 'an array of {containerID, ifname}');
  v.forEach((a, i) => {
    if (
      typeof a !== 'object' ||
      a === null ||
      typeof a.containerID !== 'string' ||
      typeof a.ifname !== 'string'
    ) {
      invalid(`${key}[${i}]`, a, 'an object {containerID: string, ifname: string}');
    }
  });
}

/**
 * Parses and validates a plugin's network config (stdin). Errors: 6 for bytes that are not one
 * JSON object, 1 for a missing/unsupported cniVersion or a prevResult of another version,
 * 7 (naming the key and value) for a bad name or a known key of the wrong type.
 * Unknown keys are kept: they belong to the plugin.
 */
export function parseNetConf(bytes: Buffer | Uint8Array | string): NetConf {
  const o = decodeJsonObject(bytes);
  checkVersion(o);
  checkName(o);
  checkPluginKeys(o, '');
  optBool(o, 'disableCheck');
  optBool(o, 'disableGC');
  checkAttachments(o, 'cni.dev/valid-attachments');
  checkAttachments(o, 'cni.dev/attachments');
  if (o.prevResult !== undefined) parsePrevResult(o as NetConf);
  return o as NetConf;
}

/**
 * The conf's prevResult in internal form, or undefined when there is none. A prevResult must be
 * in the conf's version (the runtime converts it): one that says otherwise is error 1.
 */
export function parsePrevResult(conf: NetConf): CniResult | undefined {
  const raw = conf.prevResult as unknown;
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'object' || Array.isArray(raw)) invalid('prevResult', raw, 'an object');
  const own = (raw as Obj).cniVersion;
  if (own !== undefined && own !== conf.cniVersion) {
    throw new CniError(
      CNI_ERR_INCOMPATIBLE_VERSION,
      `prevResult.cniVersion ${short(own)} differs from the config's cniVersion ${short(conf.cniVersion)}`,
      'the runtime must convert prevResult to the version of the config',
    );
  }
  return parseResult(raw, {
    defaultVersion: conf.cniVersion,
    errorCode: CNI_ERR_INVALID_NETCONF,
    what: 'prevResult',
  });
}

/**
 * Parses and validates a network configuration list (.conflist). Same error codes as
 * parseNetConf; `plugins` must be a non-empty array of objects with a `type`.
 */
export function parseNetConfList(bytes: Buffer | Uint8Array | string): NetConfList {
  const o = decodeJsonObject(bytes, 'network config list');
  if (o.cniVersions !== undefined) {
    if (!Array.isArray(o.cniVersions) || o.cniVersions.some((v) => typeof v !== 'string')) {
      invalid('cniVersions', o.cniVersions, 'an array of version strings');
    }
  }
  // With cniVersions (1.1.0) the runtime picks from that list; cniVersion then only has to be a string.
  if (o.cniVersions === undefined) checkVersion(o);
  else if (o.cniVersion !== undefined && typeof o.cniVersion !== 'string')
    invalid('cniVersion', o.cniVersion, 'a string');
  checkName(o);
  optBool(o, 'disableCheck');
  optBool(o, 'disableGC');
  if (!Array.isArray(o.plugins) || o.plugins.length === 0) invalid('plugins', o.plugins, 'a non-empty array');
  o.plugins.forEach((p: unknown, i: number) => {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) invalid(`plugins[${i}]`, p, 'an object');
    checkPluginKeys(p as Obj, `plugins[${i}].`);
  });
  const list = o as NetConfList;
  negotiateConfListVersion(list);
  return list;
}

/**
 * The version to run a conflist with: the highest of `cniVersions` (1.1.0) that we support,
 * else `cniVersion`. Error 1 when none is supported.
 */
export function negotiateConfListVersion(
  list: Pick<NetConfList, 'cniVersion' | 'cniVersions'>,
  supported: readonly string[] = CNI_SPEC_VERSIONS,
): string {
  const offered = [...(list.cniVersions ?? []), ...(list.cniVersion ? [list.cniVersion] : [])];
  const best = highestCommonVersion(list.cniVersions?.length ? list.cniVersions : offered, supported);
  if (best === undefined) {
    throw new CniError(
      CNI_ERR_INCOMPATIBLE_VERSION,
      `incompatible CNI version: none of ${short(offered)} is supported`,
      `supported versions: ${supported.join(', ')}`,
    );
  }
  return best;
}

/**
 * Builds the config a runtime hands to one plugin of a list (spec section 3): the plugin's own
 * object plus `cniVersion` and `name` from the list, and `prevResult` when given.
 */
export function pluginConfFromList(
  list: NetConfList,
  index: number,
  cniVersion: string = negotiateConfListVersion(list),
  prevResult?: Record<string, unknown>,
): NetConf {
  const plugin: PluginConf | undefined = list.plugins[index];
  if (!plugin) throw new CniError(CNI_ERR_INVALID_NETCONF, `conflist ${list.name} has no plugin #${index}`);
  const conf: NetConf = { ...plugin, cniVersion, name: list.name };
  if (prevResult) conf.prevResult = prevResult;
  return conf;
}

/** `cni.dev/valid-attachments` of a GC request (falling back to the older `cni.dev/attachments`). */
export function validAttachments(conf: NetConf): GcAttachment[] {
  return conf['cni.dev/valid-attachments'] ?? conf['cni.dev/attachments'] ?? [];
}
