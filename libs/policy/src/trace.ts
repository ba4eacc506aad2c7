import type { PolicyVerdict, TrafficDirection } from '@weft/datapath';
import type { CompiledPart, CompiledPolicy, CompiledPort, CompiledRule } from './compile';
import { protocolNumber } from './compile';
import { PolicyEngineError } from './errors';
import { cidrContainsIp, formatIp, parseIp, type Cidr, type IpAddress } from './ip';
import { cidrLabel, podIdentityLabels, reservedLabel, type LabelMap } from './labels';
import { podKey, type Namespace, type Pod } from './model';

/**
 * Trace evaluates the compiled policies directly against the two parties' labels, concrete
 * addresses and concrete container ports. It shares no code with entry generation, identity
 * allocation or the ipcache, which makes it a useful oracle for them.
 */
export interface TraceView {
  pod(key: string): Pod | undefined;
  podByIp(ip: string): Pod | undefined;
  namespace(name: string): Namespace | undefined;
  policies(): Iterable<CompiledPolicy>;
  prefixes(): Array<{ text: string; cidr: Cidr; matchesPods: boolean }>;
}

export interface TraceRuleMatch {
  policy: string;
  /** e.g. `spec.ingress[0]` */
  rule: string;
  /** The peer that matched (`spec.ingress[0].from[1]`), or `any`. */
  peer: string;
  verdict: PolicyVerdict;
  /** The rule has L7 parts: only its L4 part was applied. */
  l7NotEnforced: boolean;
}

export type TraceReason =
  'no-policy-selects' | 'allowed-by-rule' | 'denied-by-rule' | 'default-deny' | 'not-an-endpoint';

export interface TraceStep {
  direction: TrafficDirection;
  verdict: PolicyVerdict;
  reason: TraceReason;
  /** Policies selecting the endpoint for this direction (they turn default-deny on). */
  enforcedBy: string[];
  matches: TraceRuleMatch[];
  explanation: string;
}

export interface TraceParty {
  /** `namespace/name`, or the address for parties outside the cluster. */
  name: string;
  ip?: string;
  pod?: string;
}

export interface TraceResult {
  verdict: PolicyVerdict;
  from: TraceParty;
  to: TraceParty;
  /** Egress of the source, then ingress of the destination: both must allow. */
  egress: TraceStep;
  ingress: TraceStep;
  explanation: string;
}

interface Party {
  spec: string;
  pod?: Pod;
  addr?: IpAddress;
  labels: LabelMap;
}

function resolve(view: TraceView, spec: string, family: 4 | 6 | undefined): Omit<Party, 'labels'> {
  const addr = parseIp(spec);
  if (addr) {
    const pod = view.podByIp(formatIp(addr));
    return pod ? { spec, pod, addr } : { spec, addr };
  }
  const pod = view.pod(spec);
  if (!pod)
    throw new PolicyEngineError(
      'UNKNOWN_ENDPOINT',
      `no pod ${JSON.stringify(spec)} (give namespace/name or an IP address)`,
    );
  const addrs = pod.ips.map((ip) => parseIp(ip)!);
  const chosen = addrs.find((a) => family === undefined || a.family === family) ?? addrs[0];
  return chosen ? { spec, pod, addr: chosen } : { spec, pod };
}

function labelsFor(view: TraceView, p: Omit<Party, 'labels'>): LabelMap {
  const prefixes = view.prefixes();
  const inside = (podsOnly: boolean) =>
    p.addr
      ? prefixes
          .filter((x) => (!podsOnly || x.matchesPods) && cidrContainsIp(x.cidr, p.addr!))
          .map((x) => cidrLabel(x.text))
      : [];
  if (p.pod && !p.pod.hostNetwork)
    return podIdentityLabels(p.pod, view.namespace(p.pod.namespace), inside(true));
  const labels = new Map<string, string>([[reservedLabel('world'), '']]);
  for (const l of inside(false)) labels.set(l, '');
  return labels;
}

function portMatches(
  port: CompiledPort,
  protocol: number,
  number: number,
  destination: Pod | undefined,
): boolean {
  if (port.protocol !== 0 && port.protocol !== protocol) return false;
  if (port.name !== undefined) {
    return (destination?.ports ?? []).some(
      (cp) =>
        cp.name === port.name && protocolNumber(cp.protocol) === protocol && cp.containerPort === number,
    );
  }
  return (port.portLow === 0 && port.portHigh === 0) || (number >= port.portLow && number <= port.portHigh);
}

function ruleMatch(
  rule: CompiledRule,
  peer: Party,
  protocol: number,
  port: number,
  destination: Pod | undefined,
): TraceRuleMatch | undefined {
  let peerPath: string | undefined;
  if (rule.anyPeer) peerPath = 'any';
  else peerPath = rule.peers.find((p) => p.selector.matches(peer.labels))?.path;
  if (peerPath === undefined) return undefined;
  let l7 = false;
  if (rule.ports !== null) {
    const hit = rule.ports.filter((p) => portMatches(p, protocol, port, destination));
    if (hit.length === 0) return undefined;
    l7 = hit.some((p) => p.l7 === true);
  }
  return { policy: rule.policy, rule: rule.path, peer: peerPath, verdict: rule.verdict, l7NotEnforced: l7 };
}

function step(
  view: TraceView,
  direction: TrafficDirection,
  subject: Party,
  peer: Party,
  destination: Pod | undefined,
  protocol: number,
  port: number,
): TraceStep {
  const who = subject.pod ? podKey(subject.pod) : subject.spec;
  if (!subject.pod || subject.pod.hostNetwork) {
    return {
      direction,
      verdict: 'allow',
      reason: 'not-an-endpoint',
      enforcedBy: [],
      matches: [],
      explanation: `${direction} of ${who}: not a pod endpoint, no policy applies`,
    };
  }
  const parts: CompiledPart[] = [];
  for (const policy of view.policies())
    for (const part of policy.parts) if (part.subject.matches(subject.labels)) parts.push(part);
  const enforcedBy = [...new Set(parts.filter((p) => p.enforce[direction]).map((p) => p.policy))].sort();
  const matches: TraceRuleMatch[] = [];
  for (const part of parts) {
    for (const rule of part.rules) {
      if (rule.direction !== direction) continue;
      const m = ruleMatch(rule, peer, protocol, port, destination);
      if (m) matches.push(m);
    }
  }
  const denies = matches.filter((m) => m.verdict === 'deny');
  const allows = matches.filter((m) => m.verdict === 'allow');
  const cite = (m: TraceRuleMatch) =>
    `${m.policy} ${m.rule} (peer ${m.peer})${m.l7NotEnforced ? ' [L7 rules not enforced, L4 only]' : ''}`;
  if (denies.length > 0) {
    return {
      direction,
      verdict: 'deny',
      reason: 'denied-by-rule',
      enforcedBy,
      matches,
      explanation: `${direction} of ${who}: denied by ${denies.map(cite).join('; ')}`,
    };
  }
  if (allows.length > 0) {
    return {
      direction,
      verdict: 'allow',
      reason: 'allowed-by-rule',
      enforcedBy,
      matches,
      explanation: `${direction} of ${who}: allowed by ${allows.map(cite).join('; ')}`,
    };
  }
  if (enforcedBy.length > 0) {
    return {
      direction,
      verdict: 'deny',
      reason: 'default-deny',
      enforcedBy,
      matches,
      explanation: `${direction} of ${who}: default deny, selected for ${direction} by ${enforcedBy.join(', ')} and no rule allows it`,
    };
  }
  return {
    direction,
    verdict: 'allow',
    reason: 'no-policy-selects',
    enforcedBy,
    matches,
    explanation: `${direction} of ${who}: allowed, no policy selects it for ${direction}`,
  };
}

export function traceFlow(
  view: TraceView,
  from: string,
  to: string,
  port: number,
  protocol: number,
): TraceResult {
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new PolicyEngineError('BAD_ARGUMENT', `port ${port} is not 0..65535`);
  const srcBase = resolve(view, from, undefined);
  const dstBase = resolve(view, to, srcBase.addr?.family);
  const src: Party = { ...srcBase, labels: labelsFor(view, srcBase) };
  const dst: Party = { ...dstBase, labels: labelsFor(view, dstBase) };
  const egress = step(view, 'egress', src, dst, dst.pod, protocol, port);
  const ingress = step(view, 'ingress', dst, src, dst.pod, protocol, port);
  const verdict: PolicyVerdict = egress.verdict === 'allow' && ingress.verdict === 'allow' ? 'allow' : 'deny';
  const party = (p: Party): TraceParty => ({
    name: p.pod ? podKey(p.pod) : p.spec,
    ...(p.addr && { ip: formatIp(p.addr) }),
    ...(p.pod && { pod: podKey(p.pod) }),
  });
  return {
    verdict,
    from: party(src),
    to: party(dst),
    egress,
    ingress,
    explanation: `${verdict.toUpperCase()}: ${egress.explanation}; ${ingress.explanation}`,
  };
}
