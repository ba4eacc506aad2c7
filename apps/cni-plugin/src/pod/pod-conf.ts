/**
 * weft-cni's own network-config keys, validated once per invocation. Every refusal is error 7
 * naming the key and the value, and happens before anything on the host is touched.
 */
import { CniError, CNI_ERR_INVALID_NETCONF, type IpamConf, type NetConf } from '@weft/cni';
import { DEFAULT_AGENT_QUEUE_DIR, DEFAULT_AGENT_SOCKET } from '@weft/agent-api';

export const DEFAULT_STATE_DIR = '/var/lib/weft';
export const DEFAULT_PIN_ROOT = '/sys/fs/bpf/weft';
export const DEFAULT_MTU = 1500;
export const IPVLAN_MODES = ['l2', 'l3', 'l3s'] as const;
export type IpvlanMode = (typeof IPVLAN_MODES)[number];

export interface WeftConf {
  network: string;
  mtu: number;
  /** The agent down: ADD proceeds (datapath attached locally, registration queued). */
  degraded: boolean;
  agentSocket: string;
  agentTimeoutMs: number;
  queueDir: string;
  /** Attachment records (cni/<network>/...) and the datapath's endpoint records (datapath/). */
  stateDir: string;
  pinRoot: string;
  ipam?: IpamConf;
  master?: string;
  ipvlanMode: IpvlanMode;
  /** How weft-cni attaches the datapath itself (degraded mode); the agent has its own --tc-mode. */
  tcMode?: 'auto' | 'tcx' | 'clsact';
}

function invalid(key: string, value: unknown, expected: string): never {
  throw new CniError(
    CNI_ERR_INVALID_NETCONF,
    `invalid network config: ${key} ${JSON.stringify(value)} (expected ${expected})`,
  );
}

function optionalString(conf: NetConf, key: string): string | undefined {
  const v = conf[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') invalid(key, v, 'a non-empty string');
  return v;
}

function absolutePath(conf: NetConf, key: string, fallback: string): string {
  const v = optionalString(conf, key) ?? fallback;
  if (!v.startsWith('/') || v.split('/').includes('..')) invalid(key, v, 'an absolute path without ".."');
  return v;
}

export function parseWeftConf(conf: NetConf): WeftConf {
  const mtu = conf.mtu ?? DEFAULT_MTU;
  if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535) invalid('mtu', conf.mtu, 'an integer 576..65535');
  const timeout = conf.agentTimeoutMs ?? 5000;
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1 || timeout > 120_000)
    invalid('agentTimeoutMs', conf.agentTimeoutMs, 'an integer 1..120000');
  if (conf.degraded !== undefined && typeof conf.degraded !== 'boolean')
    invalid('degraded', conf.degraded, 'true or false');
  const ipvlanMode = conf.ipvlanMode ?? 'l2';
  if (!(IPVLAN_MODES as readonly unknown[]).includes(ipvlanMode))
    invalid('ipvlanMode', ipvlanMode, IPVLAN_MODES.join(', '));
  const master = optionalString(conf, 'master');
  if (master !== undefined && (Buffer.byteLength(master) > 15 || /[\s/:]/.test(master)))
    invalid('master', master, 'an interface name of at most 15 bytes without "/", ":" or spaces');
  const stateDir = absolutePath(conf, 'stateDir', DEFAULT_STATE_DIR);
  return {
    network: conf.name,
    mtu,
    degraded: conf.degraded === true,
    agentSocket: absolutePath(conf, 'agentSocket', DEFAULT_AGENT_SOCKET),
    agentTimeoutMs: timeout,
    queueDir: absolutePath(conf, 'queueDir', stateDir === DEFAULT_STATE_DIR ? DEFAULT_AGENT_QUEUE_DIR : `${stateDir}/queue`),
    stateDir,
    pinRoot: absolutePath(conf, 'pinRoot', DEFAULT_PIN_ROOT),
    ipam: conf.ipam,
    master,
    ipvlanMode: ipvlanMode as IpvlanMode,
    ...(conf.tcMode !== undefined && { tcMode: conf.tcMode as 'auto' | 'tcx' | 'clsact' }),
  };
}

/** weft's own modes need an IPAM section; chained modes take addresses from the previous plugin. */
export function requireIpam(w: WeftConf): IpamConf {
  if (!w.ipam)
    throw new CniError(
      CNI_ERR_INVALID_NETCONF,
      'invalid network config: no "ipam" section (weft-cni needs one to get addresses, e.g. {"type": "weft-host-local", "ranges": [...]})',
    );
  return w.ipam;
}
