/**
 * Shapes of the CNI spec's JSON documents (spec 1.1.0 sections 1 and 5, plus the older result
 * formats). Wire types describe JSON exactly as a given version writes it; `CniResult` is our
 * internal, version-neutral form (a superset: the 1.1.0 shape).
 */

/** `dns` in a network config and in a result. */
export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** `ipam` in a network config: only `type` is defined by the spec. */
export interface IpamConf {
  type: string;
  [key: string]: unknown;
}

/** `capabilities`: which runtimeConfig keys the plugin accepts (CONVENTIONS.md). */
export type Capabilities = Record<string, boolean>;

/** `runtimeConfig`: values the runtime fills in for enabled capabilities (CONVENTIONS.md). */
export interface RuntimeConfig {
  portMappings?: Array<{ hostPort: number; containerPort: number; protocol?: string; hostIP?: string }>;
  ipRanges?: Array<Array<{ subnet: string; rangeStart?: string; rangeEnd?: string; gateway?: string }>>;
  bandwidth?: { ingressRate?: number; ingressBurst?: number; egressRate?: number; egressBurst?: number };
  dns?: CniDns;
  ips?: string[];
  mac?: string;
  infinibandGUID?: string;
  deviceID?: string;
  aliases?: string[];
  cgroupPath?: string;
  [key: string]: unknown;
}

/** `args` in a network config (CONVENTIONS.md): per-invocation values keyed by consumer. */
export type ConfArgs = Record<string, unknown>;

/** An entry of `cni.dev/valid-attachments` (GC input, spec 1.1.0). */
export interface GcAttachment {
  containerID: string;
  ifname: string;
}

/**
 * A plugin's network configuration as it arrives on stdin: the spec keys, plus anything the
 * plugin defines (unknown keys are allowed and kept).
 */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  capabilities?: Capabilities;
  ipMasq?: boolean;
  ipam?: IpamConf;
  dns?: CniDns;
  args?: ConfArgs;
  runtimeConfig?: RuntimeConfig;
  /** The previous plugin's result, raw, exactly as the runtime sent it. */
  prevResult?: Record<string, unknown>;
  /** Conflist-level flags the runtime may copy into each plugin's config. */
  disableCheck?: boolean;
  disableGC?: boolean;
  'cni.dev/valid-attachments'?: GcAttachment[];
  /** Older name of the GC key (libcni sends both). */
  'cni.dev/attachments'?: GcAttachment[];
  /** Common conventions for plugins that create links and write logs. */
  mtu?: number;
  logFile?: string;
  logLevel?: string;
  [key: string]: unknown;
}

/** One entry of a conflist's `plugins`: no cniVersion or name of its own. */
export interface PluginConf {
  type: string;
  capabilities?: Capabilities;
  ipMasq?: boolean;
  ipam?: IpamConf;
  dns?: CniDns;
  args?: ConfArgs;
  [key: string]: unknown;
}

/** A network configuration list (`.conflist`), spec 1.1.0 section 1. */
export interface NetConfList {
  cniVersion: string;
  /** 1.1.0: every version this list may be used with; the runtime picks the highest it supports. */
  cniVersions?: string[];
  name: string;
  disableCheck?: boolean;
  disableGC?: boolean;
  plugins: PluginConf[];
  [key: string]: unknown;
}

// ---- results ------------------------------------------------------------------------------

/** Interface of the internal result; 1.1.0 added mtu, socketPath, pciID (and sandboxID). */
export interface CniInterface {
  name: string;
  mac?: string;
  /** 1.1.0 */
  mtu?: number;
  sandbox?: string;
  /** 1.1.0-only in our model; dropped when writing older versions. */
  sandboxID?: string;
  /** 1.1.0 */
  socketPath?: string;
  /** 1.1.0 */
  pciID?: string;
}

export interface CniIpConfig {
  /** CIDR: address with prefix, e.g. "10.1.2.3/24". */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
  /** 1.1.0 */
  mtu?: number;
  /** 1.1.0 */
  advmss?: number;
  /** 1.1.0 */
  priority?: number;
  /** 1.1.0 */
  table?: number;
  /** 1.1.0 (a Linux route scope number, e.g. 253 for link) */
  scope?: number;
}

/** The internal, version-neutral result. `cniVersion` is the version it was read in / made for. */
export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}

/** 0.3.0, 0.3.1 and 0.4.0 results: ips carry "version" ("4"|"6"); no 1.1.0 fields. */
export interface Result04x {
  cniVersion: '0.3.0' | '0.3.1' | '0.4.0';
  interfaces?: Array<{ name: string; mac?: string; sandbox?: string }>;
  ips?: Array<{ version: '4' | '6'; address: string; gateway?: string; interface?: number }>;
  routes?: Array<{ dst: string; gw?: string }>;
  dns?: CniDns;
}

/** 1.0.0 results: like 0.4.0 without ips[].version. */
export interface Result100 {
  cniVersion: '1.0.0';
  interfaces?: Array<{ name: string; mac?: string; sandbox?: string }>;
  ips?: Array<{ address: string; gateway?: string; interface?: number }>;
  routes?: Array<{ dst: string; gw?: string }>;
  dns?: CniDns;
}

/** 1.1.0 results: 1.0.0 plus interface mtu/socketPath/pciID and route mtu/advmss/priority/table/scope. */
export interface Result110 {
  cniVersion: '1.1.0';
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}

/** A result as written on the wire in any supported version. */
export type VersionedResult = Result04x | Result100 | Result110;

/** Output of VERSION. */
export interface PluginVersionInfo {
  cniVersion: string;
  supportedVersions: string[];
}
