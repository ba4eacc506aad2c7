import type {
  EndpointPolicy,
  IpcacheEntry,
  PolicyEntry,
  PolicyVerdict,
  TrafficDirection,
} from '@weft/datapath';
import { RESERVED_IDENTITY } from './identity';
import { cidrContainsIp, formatIp, parseCidr, parseIp, type Cidr } from './ip';

/**
 * Reference evaluator: what the datapath must do with the engine's output, written plainly so
 * that datapath tests and the e2e suite can compare the kernel against it.
 *
 * Per direction, an entry matches when its identity is the peer's or 0, its protocol is the
 * packet's or 0, and its port range holds the destination port or is 0..0. Then:
 *   any matching deny entry  → deny (deny always wins, whatever its specificity)
 *   else any matching allow  → allow
 *   else enforced            → deny (default deny)
 *   else                     → allow
 * Traffic is allowed when the source endpoint's egress AND the destination endpoint's ingress
 * allow it; a side that is not a local endpoint (no EndpointPolicy) does not filter.
 */

export interface DirectionVerdict {
  verdict: PolicyVerdict;
  /** `entry`: decided by `entry`; `default`: no entry matched. */
  by: 'entry' | 'default' | 'no-endpoint';
  entry?: PolicyEntry;
}

export interface EvaluateResult {
  verdict: PolicyVerdict;
  srcIdentity: number;
  dstIdentity: number;
  egress: DirectionVerdict;
  ingress: DirectionVerdict;
}

export function entryMatches(e: PolicyEntry, peerIdentity: number, protocol: number, port: number): boolean {
  return (
    (e.identity === 0 || e.identity === peerIdentity) &&
    (e.protocol === 0 || e.protocol === protocol) &&
    ((e.portLow === 0 && e.portHigh === 0) || (port >= e.portLow && port <= e.portHigh))
  );
}

/** One direction of one endpoint's policy. */
export function evaluateDirection(
  policy: EndpointPolicy,
  direction: TrafficDirection,
  peerIdentity: number,
  protocol: number,
  port: number,
): DirectionVerdict {
  let allow: PolicyEntry | undefined;
  for (const e of policy.entries) {
    if (e.direction !== direction || !entryMatches(e, peerIdentity, protocol, port)) continue;
    if (e.verdict === 'deny') return { verdict: 'deny', by: 'entry', entry: e };
    allow ??= e;
  }
  if (allow) return { verdict: 'allow', by: 'entry', entry: allow };
  const enforced = direction === 'ingress' ? policy.ingressEnforced : policy.egressEnforced;
  return { verdict: enforced ? 'deny' : 'allow', by: 'default' };
}

/** Longest-prefix-match table, as the kernel's LPM trie answers it. */
export class IpcacheLpm {
  private readonly entries: Array<{ cidr: Cidr; identity: number }>;

  constructor(entries: Iterable<IpcacheEntry>) {
    this.entries = [...entries]
      .map((e) => {
        const cidr = parseCidr(e.cidr);
        if (!cidr) throw new RangeError(`ipcache entry ${JSON.stringify(e.cidr)} is not a CIDR`);
        return { cidr, identity: e.identity };
      })
      .sort((a, b) => b.cidr.bits - a.cidr.bits);
  }

  /** Identity of the longest prefix holding `ip`; world when nothing does. */
  lookup(ip: string): number {
    const addr = parseIp(ip);
    if (!addr) throw new RangeError(`${JSON.stringify(ip)} is not an IP address`);
    for (const e of this.entries) if (cidrContainsIp(e.cidr, addr)) return e.identity;
    return RESERVED_IDENTITY.world;
  }
}

/**
 * Verdict for one packet `srcIp → dstIp` (protocol number, destination port; for ICMP the type).
 * `endpoints` holds the policy of each local endpoint by address (`engine.endpointPoliciesByIp()`).
 */
export function evaluate(
  endpoints: ReadonlyMap<string, EndpointPolicy>,
  ipcache: Iterable<IpcacheEntry> | IpcacheLpm,
  srcIp: string,
  dstIp: string,
  protocol: number,
  port: number,
): EvaluateResult {
  const lpm = ipcache instanceof IpcacheLpm ? ipcache : new IpcacheLpm(ipcache);
  const srcIdentity = lpm.lookup(srcIp);
  const dstIdentity = lpm.lookup(dstIp);
  const key = (ip: string) => formatIp(parseIp(ip)!);
  const srcPolicy = endpoints.get(key(srcIp));
  const dstPolicy = endpoints.get(key(dstIp));
  const egress: DirectionVerdict = srcPolicy
    ? evaluateDirection(srcPolicy, 'egress', dstIdentity, protocol, port)
    : { verdict: 'allow', by: 'no-endpoint' };
  const ingress: DirectionVerdict = dstPolicy
    ? evaluateDirection(dstPolicy, 'ingress', srcIdentity, protocol, port)
    : { verdict: 'allow', by: 'no-endpoint' };
  return {
    verdict: egress.verdict === 'allow' && ingress.verdict === 'allow' ? 'allow' : 'deny',
    srcIdentity,
    dstIdentity,
    egress,
    ingress,
  };
}
