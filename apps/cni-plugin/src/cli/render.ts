/**
 * Human output of the agent verbs, as pure functions of the API's JSON (what `-o json` prints
 * as is), so they are tested without an agent.
 */
import type {
  AgentStatus,
  BpfPolicyEntry,
  EndpointSummary,
  FlowEvent,
  IdentitySummary,
  PolicySummary,
  TraceResponse,
} from '@weft/agent-api';
import { formatDuration, renderTable } from './table';

export function renderStatus(s: AgentStatus): string {
  const state = s.ready ? 'ready' : s.sourceSynced ? 'restoring' : 'waiting for the source to sync';
  const rows: [string, string][] = [
    ['weft-agent', `${state} (version ${s.version}, up ${formatDuration(s.uptimeSeconds)})`],
    ['node', s.nodeName],
    ['source', `${s.source}${s.source === 'none' ? '' : s.sourceSynced ? ' (synced)' : ' (not synced)'}`],
    ['endpoints', String(s.endpoints)],
    ['identities', String(s.identities)],
    ['policies', String(s.policies)],
    [
      'datapath',
      `${s.datapath.pinRoot} (${s.datapath.programsPinned ? 'programs pinned' : 'PROGRAMS NOT PINNED'})`,
    ],
    ['queue', `replayed ${s.queue.replayed}, pending ${s.queue.pending}`],
  ];
  const head = rows.map(([k, v]) => `${`${k}:`.padEnd(13)}${v}`).join('\n');
  if (s.datapath.maps.length === 0) return `${head}\n`;
  const maps = renderTable(
    ['map', 'entries', 'max', 'fill'],
    s.datapath.maps.map((m) => [
      m.name,
      m.entries,
      m.maxEntries,
      `${m.maxEntries ? ((100 * m.entries) / m.maxEntries).toFixed(1) : '0.0'}%`,
    ]),
  );
  return `${head}\n\n${maps}`;
}

const enforced = (b: boolean) => (b ? 'enforced' : '-');

export function renderEndpoints(list: EndpointSummary[]): string {
  if (list.length === 0) return 'no endpoints\n';
  return renderTable(
    ['endpoint', 'identity', 'ingress', 'egress', 'pod', 'ips', 'interface', 'state', 'labels'],
    list.map((e) => [
      e.endpointId,
      e.identity,
      enforced(e.ingressEnforced),
      enforced(e.egressEnforced),
      e.pod ?? '-',
      e.ips,
      e.interface,
      e.l7NotEnforced ? `${e.state} (L7 not enforced)` : e.state,
      e.labels.filter((l) => !l.startsWith('k8s:io.cilium.k8s.namespace.labels.')),
    ]),
  );
}

export function renderIdentities(list: IdentitySummary[]): string {
  return renderTable(
    ['identity', 'labels', 'endpoints'],
    list.map((i) => [i.identity, i.labels, i.reserved && i.endpoints === 0 ? '-' : i.endpoints]),
  );
}

export function renderPolicies(list: PolicySummary[]): string {
  if (list.length === 0) return 'no policies\n';
  return renderTable(
    ['kind', 'namespace', 'name', 'selects', 'warnings'],
    list.map((p) => [
      p.kind,
      p.namespace ?? '-',
      p.name,
      p.selects.length ? p.selects : ['-'],
      p.warnings.length ? p.warnings.map((w) => `${w.code}: ${w.message}`) : ['-'],
    ]),
  );
}

interface TraceStepView {
  direction: string;
  verdict: string;
  reason: string;
  enforcedBy: string[];
  matches: { policy: string; rule: string; peer: string; verdict: string; l7NotEnforced: boolean }[];
  explanation: string;
}
interface TracePartyView {
  name: string;
  ip?: string;
}

export function renderTrace(t: TraceResponse): string {
  const from = t.from as TracePartyView | undefined;
  const to = t.to as TracePartyView | undefined;
  const party = (p?: TracePartyView) =>
    p ? (p.ip && p.ip !== p.name ? `${p.name} (${p.ip})` : p.name) : '?';
  const port = t.port !== undefined ? ` ${String(t.port)}/${String(t.protocol)}` : '';
  const out = [`${party(from)} -> ${party(to)}${port}: ${t.verdict.toUpperCase()}`];
  for (const key of ['egress', 'ingress'] as const) {
    const s = t[key] as TraceStepView | undefined;
    if (!s) continue;
    out.push(
      `  ${s.direction.padEnd(7)} ${s.verdict === 'allow' ? 'allow' : 'DENY '}  ${s.reason}: ${s.explanation}`,
    );
    if (s.enforcedBy.length) out.push(`            enforced by: ${s.enforcedBy.join(', ')}`);
    for (const m of s.matches)
      out.push(
        `            ${m.verdict === 'allow' ? 'allowed' : 'denied'} by ${m.policy} ${m.rule} (peer ${m.peer})${m.l7NotEnforced ? ' [L7 rules not enforced, L4 only]' : ''}`,
      );
  }
  return `${out.join('\n')}\n`;
}

export function renderBpfPolicy(list: BpfPolicyEntry[]): string {
  if (list.length === 0) return 'no policy entries: nothing is enforced on this endpoint\n';
  return renderTable(
    ['verdict', 'direction', 'identity', 'labels', 'port/proto', 'packets', 'bytes'],
    list.map((e) => [
      e.verdict === 'allow' ? 'Allow' : 'Deny',
      e.direction === 'ingress' ? 'Ingress' : 'Egress',
      e.identity === 0 ? 'ANY' : e.identity,
      e.identity === 0 ? ['(any)'] : e.labels,
      e.port,
      e.packets,
      e.bytes,
    ]),
  );
}

const VERDICT_WORD: Record<FlowEvent['type'], (e: FlowEvent) => string> = {
  drop: () => 'DROPPED',
  'policy-verdict': (e) => (e.verdict === 'allow' ? 'ALLOWED' : 'DENIED'),
  trace: () => 'TRACED',
};

/** One line per event, Hubble-like: time, source -> destination, verdict, reason. */
export function renderFlow(e: FlowEvent): string {
  const t = e.time.slice(11, 23);
  const ep = `${e.endpoint ?? `endpoint ${e.endpointId}`}`;
  const peer = `identity ${e.peerIdentity}${e.peerLabels?.length ? ` ${shortLabels(e.peerLabels)}` : ''}`;
  const proto = e.protocolName ?? `proto ${e.protocol}`;
  const hasPorts = e.protocol === 6 || e.protocol === 17 || e.protocol === 132;
  const addr = (ip: string, port: number) => (hasPorts ? `${ip.includes(':') ? `[${ip}]` : ip}:${port}` : ip);
  const [src, dst] =
    e.direction === 'ingress'
      ? [`${addr(e.source, e.sourcePort)} (${peer})`, `${addr(e.destination, e.destinationPort)} (${ep})`]
      : [`${addr(e.source, e.sourcePort)} (${ep})`, `${addr(e.destination, e.destinationPort)} (${peer})`];
  const reason =
    e.type === 'drop'
      ? ` ${e.reason
          .replace(/^WEFT_DROP_/, '')
          .toLowerCase()
          .replace(/_/g, '-')}`
      : '';
  return `${t}  ${src} -> ${dst} ${proto} ${e.direction} ${VERDICT_WORD[e.type](e)}${reason}\n`;
}

function shortLabels(labels: string[]): string {
  const ns = labels.find((l) => l.startsWith('k8s:io.kubernetes.pod.namespace='))?.split('=')[1];
  const own = labels.filter((l) => l.startsWith('k8s:') && !l.startsWith('k8s:io.')).map((l) => l.slice(4));
  if (ns) return `${ns}${own.length ? ` ${own.join(',')}` : ''}`;
  return labels.join(',');
}
