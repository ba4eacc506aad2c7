/**
 * One phase of the agent benchmark, in a process of its own (bundled and started by
 * agent.bench.ts) so that RSS is the agent's alone:
 *   populate DIR   start an agent on DIR/manifests, register every pod through the real API
 *                  socket (as weft-cni does), stop
 *   restart  DIR   start an agent on the state populate left: the restore is the full policy
 *                  computation; then single pod label changes; RSS
 *   engine   DIR   the policy engine alone on the same inputs (the reference)
 * Prints one JSON object on stdout.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentClient } from '@weft/agent-api';
import { PolicyEngine, type Pod } from '@weft/policy';
import { Agent } from '../src/agent';
import { silentLogger } from '../src/logger';
import { ManifestsSource } from '../src/sources/manifests-source';
import { parseManifestText } from '../src/sources/manifest-objects';
import { applyAgentV8Flags } from '../src/v8-tuning';
import { RecordingDatapath } from './recording-datapath';

interface Shape {
  namespaces: number;
  podsPerNamespace: number;
  policiesPerNamespace: number;
  labelRuns: number;
}

const [phase, dir] = process.argv.slice(2) as [string, string];
const shape = JSON.parse(readFileSync(join(dir, 'shape.json'), 'utf8')) as Shape;
const APPS = 10;
const NODE = 'bench-node';

export function podIp(ns: number, j: number): string {
  return `10.${ns % 250}.${Math.floor(j / 250)}.${(j % 250) + 1}`;
}

export function benchPod(ns: number, j: number, app = `app-${j % APPS}`): Pod {
  return {
    namespace: `ns-${ns}`,
    name: `pod-${j}`,
    labels: { app, version: `v${j % 3}` },
    ips: [],
    ports: [
      { name: 'http', containerPort: 8080 + (j % 2), protocol: 'TCP' },
      { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
    ],
    nodeName: NODE,
  };
}

const ms = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e6;
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
/**
 * Resident memory from a page-table walk (smaps_rollup). process.memoryUsage().rss reads the
 * kernel's per-mm counters, which on this host's kernel were seen off by up to 60 MiB (both ways)
 * from the walk taken the same instant.
 */
const rssMiB = () => {
  global.gc?.();
  global.gc?.();
  try {
    const kb = /^Rss:\s+(\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
    if (kb) return Number(kb[1]) / 1024;
  } catch {
    /* not Linux, or no smaps_rollup: the counters below */
  }
  return process.memoryUsage().rss / 2 ** 20;
};

function makeAgent(dp: RecordingDatapath): Agent {
  return new Agent({
    nodeName: NODE,
    stateDir: join(dir, 'state'),
    queueDir: join(dir, 'queue'),
    socketPath: join(dir, 'agent.sock'),
    datapath: dp,
    source: new ManifestsSource({
      dir: join(dir, 'manifests'),
      logger: silentLogger(),
      rescanMs: 0,
      debounceMs: 20,
    }),
    logger: silentLogger(),
    gcIntervalMs: 0,
    // The agent's default (60 s) unless the phase asks otherwise (the reference row: 0).
    ...(process.env.BENCH_IDENTITY_RELEASE_DELAY_MS !== undefined && {
      identityReleaseDelayMs: Number(process.env.BENCH_IDENTITY_RELEASE_DELAY_MS),
    }),
    gcOnStart: false, // the registrations' netns paths are made up
    isNetns: () => true,
    events: false,
    defaultMetrics: false,
  });
}

function histogramSum(agent: Agent, name: 'policyComputation' | 'datapathWrite', trigger: string): number {
  const h = agent.metrics[name] as unknown as {
    hashMap: Record<string, { sum: number; count: number; labels: { trigger?: string } }>;
  };
  for (const v of Object.values(h.hashMap)) if (v.labels.trigger === trigger) return v.sum * 1000;
  return NaN;
}

async function populate(): Promise<Record<string, unknown>> {
  const dp = new RecordingDatapath();
  const agent = makeAgent(dp);
  await agent.start();
  await agent.whenReady();
  const client = new AgentClient({ socketPath: join(dir, 'agent.sock'), timeoutMs: 60_000 });
  const jobs: [number, number][] = [];
  for (let i = 0; i < shape.namespaces; i++)
    for (let j = 0; j < shape.podsPerNamespace; j++) jobs.push([i, j]);
  const times: number[] = [];
  const t = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < jobs.length) {
        const [i, j] = jobs[next++]!;
        const t1 = process.hrtime.bigint();
        await client.registerEndpoint({
          containerId: `bench${i}x${j}`,
          ifname: 'eth0',
          network: 'bench',
          netns: `/var/run/netns/bench-${i}-${j}`,
          mode: 'veth',
          podNamespace: `ns-${i}`,
          podName: `pod-${j}`,
          ips: [podIp(i, j)],
          podIfname: 'eth0',
          hostIfname: `lxc${i}x${j}`.slice(0, 15),
          attachInPod: false,
        });
        times.push(ms(t1));
      }
    }),
  );
  const total = ms(t);
  const result = {
    endpoints: jobs.length,
    registerTotalMs: total,
    registerP50Ms: pct(times, 0.5),
    registerP99Ms: pct(times, 0.99),
    entriesWritten: dp.entriesWritten,
    rssMiB: rssMiB(),
  };
  await agent.stop();
  return result;
}

async function restart(): Promise<Record<string, unknown>> {
  const rssBefore = rssMiB();
  const dp = new RecordingDatapath();
  const agent = makeAgent(dp);
  const t = process.hrtime.bigint();
  await agent.start();
  await agent.whenReady();
  const readyMs = ms(t);
  const status = agent.status();
  const restore = {
    readyMs,
    computeMs: histogramSum(agent, 'policyComputation', 'restore'),
    writeMs: histogramSum(agent, 'datapathWrite', 'restore'),
    entries: dp.entriesWritten,
    attaches: dp.attaches,
    endpoints: status.endpoints,
    identities: status.identities,
    policies: status.policies,
    ipcache: dp.ipcacheSize,
  };
  const rssReady = rssMiB();

  // One pod label change at a time, through the agent's source path, until its map entries are
  // written. Some changes move the pod into identities every namespace selects (many endpoints).
  const labelTimes: number[] = [];
  const computeTimes: number[] = [];
  const writeTimes: number[] = [];
  let maxEntries = 0;
  let maxUpdates = 0;
  for (let r = 0; r < shape.labelRuns; r++) {
    const ns = (r * 7) % shape.namespaces;
    const j = (r * 13) % shape.podsPerNamespace;
    const pod = benchPod(ns, j, `app-${(j + 1 + (r % 3)) % APPS}`);
    const e0 = dp.entriesWritten;
    const u0 = dp.policyUpdates + dp.attaches;
    const c0 = histogramSum(agent, 'policyComputation', 'source') || 0;
    const w0 = histogramSum(agent, 'datapathWrite', 'source') || 0;
    const t1 = process.hrtime.bigint();
    agent.applySourceChanges([{ op: 'upsert', kind: 'Pod', pod }]);
    labelTimes.push(ms(t1));
    computeTimes.push(histogramSum(agent, 'policyComputation', 'source') - c0);
    writeTimes.push(histogramSum(agent, 'datapathWrite', 'source') - w0);
    maxEntries = Math.max(maxEntries, dp.entriesWritten - e0);
    maxUpdates = Math.max(maxUpdates, dp.policyUpdates + dp.attaches - u0);
  }

  // The same through the manifests dir: edit a file, until the agent applied it (debounce included).
  const fileTimes: number[] = [];
  const nsFile = join(dir, 'manifests', 'ns-0.yaml');
  const original = readFileSync(nsFile, 'utf8');
  for (let r = 0; r < 5; r++) {
    const rev = agent.status().revision!;
    const edited = original.replace(
      'name: pod-0, namespace: ns-0, labels: {app: app-0',
      `name: pod-0, namespace: ns-0, labels: {app: app-${1 + (r % 2)}`,
    );
    if (edited === original) throw new Error(`${nsFile} does not hold pod-0 with app-0`);
    writeFileSync(`${nsFile}.tmp`, edited);
    const t1 = process.hrtime.bigint();
    renameSync(`${nsFile}.tmp`, nsFile);
    while (agent.status().revision === rev) {
      if (ms(t1) > 10_000) throw new Error(`the agent did not apply an edit of ${nsFile} within 10 s`);
      await new Promise((res) => setImmediate(res));
    }
    fileTimes.push(ms(t1));
    await new Promise((res) => setTimeout(res, 50));
  }
  const rssAfter = rssMiB();
  await agent.stop();
  writeFileSync(nsFile, original); // the next restart phase edits the same file

  return {
    restore,
    rssBeforeMiB: rssBefore,
    rssReadyMiB: rssReady,
    rssAfterMiB: rssAfter,
    label: {
      runs: labelTimes.length,
      p50: pct(labelTimes, 0.5),
      p90: pct(labelTimes, 0.9),
      p99: pct(labelTimes, 0.99),
      max: pct(labelTimes, 1),
      maxEntries,
      maxUpdates,
      compute: [0.5, 0.9, 0.99, 1].map((q) => pct(computeTimes, q)),
      write: [0.5, 0.9, 0.99, 1].map((q) => pct(writeTimes, q)),
    },
    fileEditMs: { p50: pct(fileTimes, 0.5), max: pct(fileTimes, 1) },
  };
}

/** Reference: the policy engine alone on the same objects, in a fresh process like the restore. */
async function engineOnly(): Promise<Record<string, unknown>> {
  const objects = parseAll();
  const engine = new PolicyEngine({ nodeName: NODE });
  rssMiB(); // collects the YAML parser's garbage first, as the agent's start does between phases
  const t = process.hrtime.bigint();
  engine.transaction((w) => {
    for (const o of objects) {
      if (o.kind === 'Namespace') w.upsertNamespace(o.namespace);
      else if (o.kind === 'Pod') w.upsertPod(o.pod);
      else w.upsertPolicy(o.policy);
    }
  });
  return { engineOnlyMs: ms(t) };
}

function parseAll() {
  const out = [];
  for (let i = 0; i < shape.namespaces; i++) {
    const objs = parseManifestText(
      readFileSync(join(dir, 'manifests', `ns-${i}.yaml`), 'utf8'),
      `ns-${i}.yaml`,
    );
    for (const o of objs) {
      if (o.kind === 'Pod') {
        const j = Number(o.pod.name.slice(4));
        out.push({ ...o, pod: { ...o.pod, ips: [podIp(i, j)] } });
      } else out.push(o);
    }
  }
  return out;
}

mkdirSync(join(dir, 'state'), { recursive: true });
// As weft-agent does at start (src/v8-tuning.ts); BENCH_V8_DEFAULTS=1 for the reference row.
if (process.env.BENCH_V8_DEFAULTS !== '1') applyAgentV8Flags();
const run = phase === 'populate' ? populate : phase === 'engine' ? engineOnly : restart;
run().then(
  (r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  },
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
