/**
 * weft-agent benchmark (not a test). Run:
 *
 *   npx vite-node apps/agent/bench/agent.bench.ts
 *
 * Measures the AGENT path (manifests source -> registry -> policy engine -> datapath writes ->
 * API), at 1,000 policies x 10,000 endpoints (100 namespaces x 100 pods, 10 policies each; the
 * shape of libs/policy/bench/compute.bench.ts, written as YAML manifests):
 *   1. populate: an agent registers 10,000 endpoints through its real unix-socket API;
 *   2. restart: a new agent restores them: the full policy computation (goal <= 1 s), then single
 *      pod label changes until their map entries are written (goal <= 10 ms), and its RSS with
 *      10,000 endpoints (goal <= 200 MB); the policy engine alone on the same inputs, same process,
 *      as the reference.
 * Each phase is its own `node --expose-gc` process (bundled with esbuild), so RSS is the agent's.
 * The restart is run once more with identities released at once (--identity-release-delay 0) for
 * the label-change reference row, and once with V8's default flags (src/v8-tuning.ts) for the RSS one.
 * RSS is read from /proc/self/smaps_rollup (a page-table walk), after two full GCs.
 * The label changes move pods between app labels; the slow ones give an identity its first pod with another `http` port, which re-resolves the named-port
 * egress rules of one policy in every namespace (~2,000 endpoints).
 * The datapath is bench/recording-datapath.ts: policies are compiled to trie entries exactly as
 * the kernel would get them, but counted, not written (2.5 M entries exceed the weft_policy map;
 * see that file). NAMESPACES, PODS_PER_NAMESPACE, POLICIES_PER_NAMESPACE, LABEL_RUNS scale it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSync } from 'esbuild';

const shape = {
  namespaces: Number(process.env.NAMESPACES ?? 100),
  podsPerNamespace: Number(process.env.PODS_PER_NAMESPACE ?? 100),
  policiesPerNamespace: Number(process.env.POLICIES_PER_NAMESPACE ?? 10),
  labelRuns: Number(process.env.LABEL_RUNS ?? 300),
};
const APPS = 10;

function policy(ns: number, k: number): unknown {
  const egress: unknown[] = [
    { to: [{ podSelector: {} }] },
    {
      to: [
        {
          namespaceSelector: { matchLabels: { env: 'prod' } },
          podSelector: { matchLabels: { app: `app-${(k + 2) % APPS}` } },
        },
      ],
      ports: [{ port: 'http' }],
    },
  ];
  if ((ns * shape.policiesPerNamespace + k) % 50 === 0)
    egress.push({
      to: [{ ipBlock: { cidr: '172.16.0.0/12', except: ['172.16.1.0/24'] } }],
      ports: [{ port: 443 }],
    });
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: `p-${k}`, namespace: `ns-${ns}` },
    spec: {
      podSelector: { matchLabels: { app: `app-${k % APPS}` } },
      ingress: [
        {
          from: [
            { podSelector: { matchLabels: { app: `app-${(k + 1) % APPS}` } } },
            {
              namespaceSelector: { matchLabels: { team: `team-${k % 10}` } },
              podSelector: { matchLabels: { app: `app-${k % APPS}` } },
            },
          ],
          ports: [{ port: 'http' }, { port: 9090, endPort: 9099 }],
        },
      ],
      egress,
    },
  };
}

function namespaceFile(i: number): string {
  const docs = [
    `apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-${i}, labels: {team: team-${i % 10}, env: ${i % 2 === 0 ? 'prod' : 'dev'}}}\n`,
  ];
  for (let j = 0; j < shape.podsPerNamespace; j++) {
    docs.push(
      [
        'apiVersion: v1',
        'kind: Pod',
        `metadata: {name: pod-${j}, namespace: ns-${i}, labels: {app: app-${j % APPS}, version: v${j % 3}}}`,
        'spec:',
        '  nodeName: bench-node',
        '  containers:',
        `    - {name: app, image: app:1, ports: [{name: http, containerPort: ${8080 + (j % 2)}}, {name: metrics, containerPort: 9090}]}`,
        '',
      ].join('\n'),
    );
  }
  for (let k = 0; k < shape.policiesPerNamespace; k++) docs.push(`${JSON.stringify(policy(i, k))}\n`);
  return docs.join('---\n');
}

const dir = mkdtempSync(join(tmpdir(), 'weft-agent-bench-'));
try {
  mkdirSync(join(dir, 'manifests'));
  writeFileSync(join(dir, 'shape.json'), JSON.stringify(shape));
  for (let i = 0; i < shape.namespaces; i++)
    writeFileSync(join(dir, 'manifests', `ns-${i}.yaml`), namespaceFile(i));
  const worker = join(dir, 'bench-worker.cjs');
  buildSync({
    entryPoints: [join(__dirname, 'bench-worker.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outfile: worker,
    logLevel: 'error',
  });
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  const run = (phase: string, phaseEnv = env) =>
    JSON.parse(
      execFileSync(process.execPath, ['--expose-gc', worker, phase, dir], {
        env: phaseEnv,
        encoding: 'utf8',
        maxBuffer: 1 << 24,
      }),
    );
  const pop = run('populate');
  const r = { ...run('restart'), ...run('engine') };
  const releasing = run('restart', { ...env, BENCH_IDENTITY_RELEASE_DELAY_MS: '0' });
  const v8Defaults = run('restart', { ...env, BENCH_V8_DEFAULTS: '1' });
  const n = shape.namespaces * shape.podsPerNamespace;
  const p = shape.namespaces * shape.policiesPerNamespace;
  const f = (x: number, d = 0) => x.toFixed(d);
  const rows: [string, string, string][] = [
    ['scenario', 'measured', 'goal'],
    [
      `full policy computation on restore (${p} policies x ${n} endpoints)`,
      `${f(r.restore.computeMs)} ms (engine alone, same inputs: ${f(r.engineOnlyMs)} ms)`,
      '<= 1000 ms',
    ],
    [
      'restore: datapath writes (every endpoint re-attached)',
      `${f(r.restore.writeMs)} ms (${r.restore.attaches} endpoints, ${r.restore.entries} trie entries, ${r.restore.ipcache} ipcache)`,
      '-',
    ],
    [
      'restore: start to ready (state + YAML + computation + writes)',
      `${f(r.restore.readyMs)} ms (${r.restore.identities} identities, ${r.restore.policies} policies)`,
      '-',
    ],
    [
      `one pod label change to new map entries (${r.label.runs} runs: p50 / p90 / p99 / max)`,
      `${[r.label.p50, r.label.p90, r.label.p99, r.label.max].map((x: number) => f(x, 2)).join(' / ')} ms (up to ${r.label.maxUpdates} endpoints, ${r.label.maxEntries} entries)`,
      '<= 10 ms',
    ],
    [
      '  the same with --identity-release-delay 0 (identities released at once)',
      `${[releasing.label.p50, releasing.label.p90, releasing.label.p99, releasing.label.max].map((x: number) => f(x, 2)).join(' / ')} ms (up to ${releasing.label.maxUpdates} endpoints, ${releasing.label.maxEntries} entries)`,
      '-',
    ],
    [
      '  of which: policy engine (p50 / p90 / p99 / max)',
      `${r.label.compute.map((x: number) => f(x, 2)).join(' / ')} ms`,
      '-',
    ],
    [
      '  of which: datapath writes (p50 / p90 / p99 / max)',
      `${r.label.write.map((x: number) => f(x, 2)).join(' / ')} ms (only the changed peers' entries compiled)`,
      '-',
    ],
    [
      'one pod label change via a manifest file edit (p50 / max)',
      `${f(r.fileEditMs.p50, 1)} / ${f(r.fileEditMs.max, 1)} ms (20 ms debounce + re-parse of the 100-pod file)`,
      '-',
    ],
    [
      `agent RSS with ${n} endpoints (ready / after the changes)`,
      `${f(r.rssReadyMiB)} MiB / ${f(r.rssAfterMiB)} MiB (node at start: ${f(r.rssBeforeMiB)} MiB)`,
      '<= 200 MB',
    ],
    [
      '  the same with V8 defaults (concurrent sweeping: weft-agent turns it off)',
      `${f(v8Defaults.rssReadyMiB)} MiB / ${f(v8Defaults.rssAfterMiB)} MiB (label change p90 ${f(v8Defaults.label.p90, 2)} ms, full computation ${f(v8Defaults.restore.computeMs)} ms)`,
      '-',
    ],
    [
      `registration through the API socket (${pop.endpoints} PUTs, 8 concurrent)`,
      `${f(pop.registerTotalMs)} ms total, p50 ${f(pop.registerP50Ms, 2)} ms, p99 ${f(pop.registerP99Ms, 2)} ms per PUT`,
      '-',
    ],
  ];
  const width = [0, 1, 2].map((c) => Math.max(...rows.map((row) => row[c]!.length)));
  console.log(
    `weft-agent bench (node ${process.version}, ${process.arch}; datapath: recording, see the header)`,
  );
  for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(width[c]!)).join('  |  '));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
