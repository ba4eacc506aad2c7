/**
 * Validation of what clients send. Strict: unknown fields and wrong types are refused naming the
 * field, so a client/agent version mismatch shows up as a clear 400 instead of half-applied state.
 * Returns canonical copies (fixed field order, addresses in canonical form), which is also what
 * the registry compares to tell a repeated PUT from a changed one.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { EndpointMode, EndpointRegistration, TraceRequest } from '@weft/agent-api';
import { BadRequestError } from '../errors';

const MODES: readonly EndpointMode[] = ['veth', 'ipvlan', 'eni', 'generic-veth', 'terway'];
const REGISTRATION_KEYS = new Set([
  'containerId',
  'ifname',
  'network',
  'netns',
  'mode',
  'podNamespace',
  'podName',
  'podUid',
  'labels',
  'ips',
  'podIfname',
  'podMac',
  'hostIfname',
  'hostIfindex',
  'attachInPod',
  'parentDevice',
]);

type Obj = Record<string, unknown>;

function invalid(code: string, field: string, reason: string): never {
  throw new BadRequestError(code, `${field}: ${reason}`);
}

function object(v: unknown, code: string, field: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) invalid(code, field, 'must be an object');
  return v as Obj;
}

function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function str(o: Obj, key: string, code: string, max: number, pattern?: RegExp, what?: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0) invalid(code, key, 'must be a non-empty string');
  if (v.length > max) invalid(code, key, `longer than ${max} characters`);
  if (hasControl(v)) invalid(code, key, 'contains control characters');
  if (pattern && !pattern.test(v)) invalid(code, key, `${JSON.stringify(v)} is not ${what}`);
  return v;
}

function optStr(o: Obj, key: string, code: string, max: number, pattern?: RegExp, what?: string) {
  return o[key] === undefined ? undefined : str(o, key, code, max, pattern, what);
}

// CNI spec: container ids are alphanumeric plus _ . -; interface names are what Linux accepts.
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const IFNAME = /^(?!\.{1,2}$)[^/:\s]{1,15}$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;

/** The canonical text of an address (IPv6 compressed and lower-case), or undefined. */
export function canonicalIp(text: string): string | undefined {
  if (isIPv4(text)) return text.split('.').map(Number).join('.');
  if (isIPv6(text)) {
    if (text.includes('%')) return undefined; // zone ids are not pod addresses
    return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  }
  return undefined;
}

export function validateRegistration(body: unknown): EndpointRegistration {
  const C = 'INVALID_REGISTRATION';
  const o = object(body, C, 'body');
  for (const k of Object.keys(o)) if (!REGISTRATION_KEYS.has(k)) invalid(C, k, 'unknown field');
  const containerId = str(o, 'containerId', C, 256, CONTAINER_ID, 'a container id');
  const ifname = str(o, 'ifname', C, 15, IFNAME, 'an interface name');
  const network = str(o, 'network', C, 253);
  const netns = str(o, 'netns', C, 4096, /^\//, 'an absolute path');
  const mode = o.mode as EndpointMode;
  if (!MODES.includes(mode)) invalid(C, 'mode', `one of ${MODES.join(', ')}`);
  const podNamespace = optStr(o, 'podNamespace', C, 63, DNS_LABEL, 'a namespace name');
  const podName = optStr(o, 'podName', C, 253, DNS_SUBDOMAIN, 'a pod name');
  const podUid = optStr(o, 'podUid', C, 128);
  let labels: Record<string, string> | undefined;
  if (o.labels !== undefined) {
    const l = object(o.labels, C, 'labels');
    labels = {};
    for (const k of Object.keys(l).sort()) {
      const v = l[k];
      if (k.length === 0 || k.length > 317 || hasControl(k) || k.includes(' '))
        invalid(C, `labels.${k}`, 'bad label key');
      if (typeof v !== 'string' || v.length > 63 || !/^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/.test(v))
        invalid(C, `labels.${k}`, 'label values are up to 63 of [A-Za-z0-9_.-]');
      labels[k] = v;
    }
  }
  if (!Array.isArray(o.ips) || o.ips.length === 0 || o.ips.length > 16)
    invalid(C, 'ips', 'must be a list of 1..16 addresses');
  const ips: string[] = [];
  o.ips.forEach((ip, i) => {
    const c = typeof ip === 'string' ? canonicalIp(ip) : undefined;
    if (c === undefined)
      invalid(C, `ips[${i}]`, `${JSON.stringify(ip)} is not an IP address (no prefix length)`);
    if (!ips.includes(c)) ips.push(c);
  });
  const podIfname = str(o, 'podIfname', C, 15, IFNAME, 'an interface name');
  const podMac = optStr(o, 'podMac', C, 17, MAC, 'a MAC address')?.toLowerCase();
  const hostIfname = optStr(o, 'hostIfname', C, 15, IFNAME, 'an interface name');
  let hostIfindex: number | undefined;
  if (o.hostIfindex !== undefined) {
    if (
      !Number.isInteger(o.hostIfindex) ||
      (o.hostIfindex as number) < 1 ||
      (o.hostIfindex as number) > 0x7fffffff
    )
      invalid(C, 'hostIfindex', 'must be a positive interface index');
    hostIfindex = o.hostIfindex as number;
  }
  if (typeof o.attachInPod !== 'boolean') invalid(C, 'attachInPod', 'must be true or false');
  const attachInPod = o.attachInPod;
  const parentDevice = optStr(o, 'parentDevice', C, 15, IFNAME, 'an interface name');
  if (!attachInPod && hostIfname === undefined && hostIfindex === undefined)
    invalid(
      C,
      'hostIfname',
      'a host-side interface (hostIfname or hostIfindex) is required unless attachInPod',
    );
  if ((podNamespace === undefined) !== (podName === undefined))
    invalid(
      C,
      podNamespace === undefined ? 'podNamespace' : 'podName',
      'podNamespace and podName go together',
    );
  return {
    containerId,
    ifname,
    network,
    netns,
    mode,
    ...(podNamespace !== undefined && { podNamespace }),
    ...(podName !== undefined && { podName }),
    ...(podUid !== undefined && { podUid }),
    ...(labels !== undefined && { labels }),
    ips,
    podIfname,
    ...(podMac !== undefined && { podMac }),
    ...(hostIfname !== undefined && { hostIfname }),
    ...(hostIfindex !== undefined && { hostIfindex }),
    attachInPod,
    ...(parentDevice !== undefined && { parentDevice }),
  };
}

export function validateTraceRequest(body: unknown): TraceRequest {
  const C = 'INVALID_TRACE_REQUEST';
  const o = object(body, C, 'body');
  for (const k of Object.keys(o))
    if (!['from', 'to', 'port', 'protocol'].includes(k)) invalid(C, k, 'unknown field');
  const from = str(o, 'from', C, 320);
  const to = str(o, 'to', C, 320);
  if (!Number.isInteger(o.port) || (o.port as number) < 0 || (o.port as number) > 65535)
    invalid(C, 'port', 'must be an integer 0..65535');
  const protocol = o.protocol ?? 'TCP';
  if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'SCTP')
    invalid(C, 'protocol', 'TCP, UDP or SCTP');
  return { from, to, port: o.port as number, protocol };
}
