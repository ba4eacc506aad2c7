/**
 * The agent's Prometheus metrics (prom-client, a registry of its own so that several agents in
 * one process, as in tests, do not share counters). Gauges are read from the agent at scrape time.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MapStats } from './datapath/agent-datapath';

export interface MetricsView {
  endpoints(): number;
  identities(): number;
  policies(): number;
  mapStats(): MapStats[];
  queuePending(): number;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly policyComputation: Histogram<'trigger'>;
  readonly datapathWrite: Histogram<'trigger'>;
  readonly drops: Counter<'reason' | 'direction'>;
  readonly events: Counter<'type'>;
  readonly queueReplays: Counter<'kind' | 'result'>;
  readonly apiRequests: Counter<'method' | 'route' | 'code'>;
  readonly eventsLost: Gauge;

  constructor(view: MetricsView, options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics !== false)
      collectDefaultMetrics({ register: this.registry, prefix: 'weft_agent_' });
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    gauge('weft_agent_endpoints', 'Endpoints (CNI attachments) registered with the agent.', () =>
      view.endpoints(),
    );
    gauge('weft_agent_identities', 'Security identities in use (reserved ones included).', () =>
      view.identities(),
    );
    gauge('weft_agent_policies', 'Network policies loaded from the source.', () => view.policies());
    gauge('weft_agent_queue_pending', 'Work items weft-cni queued that are not replayed yet.', () =>
      view.queuePending(),
    );
    // One walk of the maps per scrape: the first of the three gauges collects for all of them.
    const mapMax = new Gauge({
      name: 'weft_bpf_map_max_entries',
      help: 'max_entries of each pinned BPF map.',
      labelNames: ['map'],
      registers: [],
    });
    const mapFill = new Gauge({
      name: 'weft_bpf_map_fill_ratio',
      help: 'entries / max_entries of each pinned BPF map.',
      labelNames: ['map'],
      registers: [],
    });
    const mapEntries = new Gauge({
      name: 'weft_bpf_map_entries',
      help: 'Entries in each pinned BPF map.',
      labelNames: ['map'],
      registers,
      collect() {
        for (const m of view.mapStats()) {
          this.set({ map: m.name }, m.entries);
          mapMax.set({ map: m.name }, m.maxEntries);
          mapFill.set({ map: m.name }, m.maxEntries > 0 ? m.entries / m.maxEntries : 0);
        }
      },
    });
    void mapEntries;
    this.registry.registerMetric(mapMax);
    this.registry.registerMetric(mapFill);
    const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    this.policyComputation = new Histogram({
      name: 'weft_agent_policy_computation_duration_seconds',
      help: 'Time the policy engine took to compute a change (by what triggered it).',
      labelNames: ['trigger'],
      buckets,
      registers,
    });
    this.datapathWrite = new Histogram({
      name: 'weft_agent_datapath_write_duration_seconds',
      help: 'Time spent writing a computed change into the BPF maps.',
      labelNames: ['trigger'],
      buckets,
      registers,
    });
    this.drops = new Counter({
      name: 'weft_datapath_drops_total',
      help: 'Packets the datapath dropped, by reason (counted from the events ring).',
      labelNames: ['reason', 'direction'],
      registers,
    });
    this.events = new Counter({
      name: 'weft_datapath_events_total',
      help: 'Records read from the datapath events ring, by type.',
      labelNames: ['type'],
      registers,
    });
    this.eventsLost = new Gauge({
      name: 'weft_datapath_events_lost',
      help: 'Events dropped because nobody read them fast enough.',
      registers,
    });
    this.queueReplays = new Counter({
      name: 'weft_agent_queue_replays_total',
      help: 'Queued work items replayed (kind: register, delete; result: ok, error, invalid).',
      labelNames: ['kind', 'result'],
      registers,
    });
    this.apiRequests = new Counter({
      name: 'weft_agent_api_requests_total',
      help: 'Agent API requests by route and status code.',
      labelNames: ['method', 'route', 'code'],
      registers,
    });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
