/**
 * The one reader of the datapath's events ring (a ring has one consumer: two readers would split
 * its records). Counts drops for the metrics, keeps the last events for `weft observe`, and fans
 * live events out to followers. Policy-verdict events are switched on in the datapath only while
 * a follower asked for them (they cost a ring record per new flow).
 */
import type { EventsQuery, FlowEvent } from '@weft/agent-api';
import type { DatapathEvent } from '@weft/datapath';
import type { Logger } from 'pino';
import type { AgentDatapath, EventStream } from './datapath/agent-datapath';
import type { AgentMetrics } from './metrics';

const PROTOCOLS: Record<number, string> = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP' };

export interface EventEnricher {
  endpointName(endpointId: number): string | undefined;
  identityLabels(identity: number): string[] | undefined;
}

interface Follower {
  query: EventsQuery;
  send(e: FlowEvent): void;
}

export class EventsHub {
  private stream?: EventStream;
  private readonly kept: FlowEvent[] = [];
  private readonly followers = new Set<Follower>();
  private verdictFollowers = 0;
  private running = false;

  constructor(
    private readonly datapath: AgentDatapath,
    private readonly enrich: EventEnricher,
    private readonly metrics: AgentMetrics,
    private readonly logger: Logger,
    private readonly keep = 1000,
  ) {}

  start(): void {
    try {
      this.stream = this.datapath.events({ ref: false });
    } catch (err) {
      this.logger.error({ err }, 'cannot open the datapath events ring; no drop metrics or observe');
      return;
    }
    this.running = true;
    void this.pump(this.stream);
  }

  stop(): void {
    this.running = false;
    this.stream?.close();
    this.stream = undefined;
    if (this.verdictFollowers > 0) this.setVerdicts(false);
  }

  /** Kept events, oldest first (last N, optionally one type). */
  recent(last: number, type?: FlowEvent['type']): FlowEvent[] {
    const list = type ? this.kept.filter((e) => e.type === type) : this.kept;
    return last <= 0 ? [] : list.slice(-last);
  }

  follow(query: EventsQuery, send: (e: FlowEvent) => void): () => void {
    const f: Follower = { query, send };
    this.followers.add(f);
    if (query.verdicts && this.verdictFollowers++ === 0) this.setVerdicts(true);
    return () => {
      if (!this.followers.delete(f)) return;
      if (query.verdicts && --this.verdictFollowers === 0) this.setVerdicts(false);
    };
  }

  private setVerdicts(on: boolean): void {
    try {
      this.datapath.setEventConfig({ verdicts: on });
    } catch (err) {
      this.logger.warn({ err }, 'cannot switch policy-verdict events');
    }
  }

  private async pump(stream: EventStream): Promise<void> {
    try {
      for await (const ev of stream) {
        if (!this.running) break;
        this.handle(ev);
      }
    } catch (err) {
      if (this.running) this.logger.error({ err }, 'reading the datapath events ring failed');
    }
  }

  /** Public for the datapath-less paths (tests feed decoded events through it too). */
  handle(ev: DatapathEvent): void {
    this.metrics.events.inc({ type: ev.type });
    if (ev.type === 'drop') this.metrics.drops.inc({ reason: ev.reason, direction: ev.direction });
    const lost = (this.stream as { lost?: number } | undefined)?.lost;
    if (typeof lost === 'number') this.metrics.eventsLost.set(lost);
    const flow = this.toFlow(ev);
    this.kept.push(flow);
    if (this.kept.length > this.keep) this.kept.splice(0, this.kept.length - this.keep);
    for (const f of this.followers) {
      if (f.query.type && f.query.type !== flow.type) continue;
      f.send(flow);
    }
  }

  private toFlow(ev: DatapathEvent): FlowEvent {
    const ageMs = Number(process.hrtime.bigint() - ev.timestampNs) / 1e6;
    const endpoint = this.enrich.endpointName(ev.endpointId);
    const peerLabels = this.enrich.identityLabels(ev.peerIdentity);
    const protocolName = PROTOCOLS[ev.protocol];
    return {
      time: new Date(Date.now() - Math.max(0, ageMs)).toISOString(),
      type: ev.type,
      reason: ev.reason,
      verdict: ev.verdict,
      direction: ev.direction,
      ctStatus: ev.ctStatus,
      endpointId: ev.endpointId,
      ...(endpoint !== undefined && { endpoint }),
      peerIdentity: ev.peerIdentity,
      ...(peerLabels !== undefined && { peerLabels }),
      protocol: ev.protocol,
      ...(protocolName !== undefined && { protocolName }),
      source: ev.source,
      sourcePort: ev.sourcePort,
      destination: ev.destination,
      destinationPort: ev.destinationPort,
      length: ev.length,
      ifindex: ev.ifindex,
      timestampNs: ev.timestampNs.toString(),
    };
  }
}
