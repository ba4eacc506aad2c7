/**
 * Policy engine benchmark (not a test): full computation for 1,000 policies x 10,000 endpoints,
 * then single changes. Run: `npx vite-node libs/policy/bench/compute.bench.ts` (goals: full <= 1 s,
 * one pod label change <= 10 ms to new entries). A rolling update of a one-pod deployment runs on
 * two engines: identities released at once (the engine's default) and kept 60 s after their last
 * pod left (weft-agent's default).
 */
import {
  parseNetworkPolicy,
  PolicyEngine,
  type Namespace,
  type NetworkPolicy,
  type Pod,
  type PolicyDelta,
} from '../src/index';

const NAMESPACES = Number(process.env.NAMESPACES ?? 100);
const PODS_PER_NAMESPACE = Number(process.env.PODS_PER_NAMESPACE ?? 100);
const POLICIES_PER_NAMESPACE = Number(process.env.POLICIES_PER_NAMESPACE ?? 10);
const APPS = 10;
const LABEL_RUNS = Number(process.env.LABEL_RUNS ?? 300);

function namespaces(): Namespace[] {
  return Array.from({ length: NAMESPACES }, (_, i) => ({
    name: `ns-${i}`,
    labels: { team: `team-${i % 10}`, env: i % 2 === 0 ? 'prod' : 'dev' },
  }));
}

function pod(ns: number, j: number, app = `app-${j % APPS}`): Pod {
  return {
    namespace: `ns-${ns}`,
    name: `pod-${j}`,
    labels: { app, version: `v${j % 3}` },
    ips: [`10.${ns % 250}.${Math.floor(j / 250)}.${(j % 250) + 1}`],
    ports: [
      { name: 'http', containerPort: 8080 + (j % 2), protocol: 'TCP' },
      { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
    ],
  };
}

function policy(ns: number, k: number): NetworkPolicy {
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
  if ((ns * POLICIES_PER_NAMESPACE + k) % 50 === 0) {
    egress.push({
      to: [{ ipBlock: { cidr: '172.16.0.0/12', except: ['172.16.1.0/24'] } }],
      ports: [{ port: 443 }],
    });
  }
  return parseNetworkPolicy({
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
  });
}

function ms(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function entriesIn(delta: PolicyDelta): number {
  let n = 0;
  for (const p of delta.endpoints.values()) n += p.entries.length;
  return n;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))]!;
}

const median = (xs: number[]) => percentile(xs, 0.5);

const nsList = namespaces();
const pods: Pod[] = [];
for (let i = 0; i < NAMESPACES; i++) for (let j = 0; j < PODS_PER_NAMESPACE; j++) pods.push(pod(i, j));
const policies: NetworkPolicy[] = [];
for (let i = 0; i < NAMESPACES; i++)
  for (let k = 0; k < POLICIES_PER_NAMESPACE; k++) policies.push(policy(i, k));

const rssBefore = process.memoryUsage().rss;
const engine = new PolicyEngine();
const cpuBefore = process.cpuUsage();
let t = process.hrtime.bigint();
const full = engine.transaction((w) => {
  nsList.forEach((n) => w.upsertNamespace(n));
  pods.forEach((p) => w.upsertPod(p));
  policies.forEach((p) => w.upsertPolicy(p));
});
const fullMs = ms(t);
const fullCpu = process.cpuUsage(cpuBefore);
const fullCpuMs = (fullCpu.user + fullCpu.system) / 1000;
const fullEntries = entriesIn(full);

// One pod label change, repeated on different pods. Some changes alter the entries of ~1,000
// endpoints (the pod joins an identity used by a selector of every namespace), most only its own.
// (Changes that give an identity a pod with another `http` port resolve named-port rules anew.)
const labelTimes: number[] = [];
let changedEndpoints = 0;
for (let r = 0; r < LABEL_RUNS; r++) {
  const ns = (r * 7) % NAMESPACES;
  const j = (r * 13) % PODS_PER_NAMESPACE;
  t = process.hrtime.bigint();
  const delta = engine.upsertPod(pod(ns, j, `app-${(j + 1 + (r % 3)) % APPS}`));
  labelTimes.push(ms(t));
  changedEndpoints = Math.max(changedEndpoints, delta.endpoints.size);
}


// A brand-new label set (a new identity every peer selector must be tested against).
const newIdentityTimes: number[] = [];
for (let r = 0; r < 10; r++) {
  t = process.hrtime.bigint();
  engine.upsertPod({ ...pod(r, 0), labels: { app: `app-${r % APPS}`, version: 'v0', canary: `c${r}` } });
  newIdentityTimes.push(ms(t));
}

// One policy added and deleted.
t = process.hrtime.bigint();
const added = engine.upsertPolicy(
  parseNetworkPolicy({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'extra', namespace: 'ns-3' },
    spec: {
      podSelector: { matchLabels: { version: 'v1' } },
      ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: 7000 }] }],
    },
  }),
);
const policyAddMs = ms(t);
t = process.hrtime.bigint();
engine.deletePolicy('NetworkPolicy/ns-3/extra');
const policyDeleteMs = ms(t);

global.gc?.();
const rss = process.memoryUsage().rss;

// (After the RSS reading.) A rolling update of a one-pod deployment: its pod deleted, then a new
// one with the same labels. Released at once (the engine's default), the identity goes and comes
// back, and every endpoint whose policy names it is rewritten twice; kept 60 s (weft-agent's
// default) the replacement changes only the pod itself.
function replacements(e: PolicyEngine): { times: number[]; changedEndpoints: number } {
  const times: number[] = [];
  let changedEndpoints = 0;
  for (let r = 0; r < 10; r++) {
    const solo = { ...pod(r, 1), name: `solo-${r}`, labels: { app: `app-${r % APPS}`, version: 'v0', solo: `s${r}` } };
    e.upsertPod(solo);
    t = process.hrtime.bigint();
    const gone = e.deletePod(solo.namespace, solo.name);
    const back = e.upsertPod({ ...solo, name: `solo-${r}-new` });
    times.push(ms(t));
    changedEndpoints = Math.max(changedEndpoints, gone.endpoints.size + back.endpoints.size);
  }
  return { times, changedEndpoints };
}
const replacedAtOnce = replacements(engine);
const lingering = new PolicyEngine({ identityReleaseDelayMs: 60_000 });
lingering.transaction((w) => {
  nsList.forEach((n) => w.upsertNamespace(n));
  pods.forEach((p) => w.upsertPod(p));
  policies.forEach((p) => w.upsertPolicy(p));
});
const replacedLingering = replacements(lingering);
// Those deployments scaled to zero: their identities linger, then go in one release.
lingering.transaction((w) => {
  for (let r = 0; r < 10; r++) w.deletePod(`ns-${r}`, `solo-${r}-new`);
});
t = process.hrtime.bigint();
const released = lingering.releaseExpiredIdentities(Number.POSITIVE_INFINITY);
const releaseMs = ms(t);
const rows: Array<[string, string, string]> = [
  ['scenario', 'measured', 'goal'],
  [
    `full computation (${policies.length} policies x ${pods.length} endpoints, ${nsList.length} namespaces)`,
    `${fullMs.toFixed(0)} ms wall, ${fullCpuMs.toFixed(0)} ms CPU (${full.endpoints.size} endpoints, ${fullEntries} entries, ${full.ipcache.upserted.length} ipcache)`,
    '<= 1000 ms',
  ],
  [
    `one pod label change (${LABEL_RUNS} runs: p50 / p90 / p99 / max)`,
    `${[0.5, 0.9, 0.99, 1].map((p) => percentile(labelTimes, p).toFixed(2)).join(' / ')} ms (up to ${changedEndpoints} endpoints changed)`,
    '<= 10 ms',
  ],
  [
    'a one-pod deployment rolled (delete + create, same labels; median of 10): released at once',
    `${median(replacedAtOnce.times).toFixed(2)} ms (up to ${replacedAtOnce.changedEndpoints} endpoint updates)`,
    '-',
  ],
  [
    '  the same, emptied identities kept 60 s (identityReleaseDelayMs)',
    `${median(replacedLingering.times).toFixed(2)} ms (up to ${replacedLingering.changedEndpoints} endpoint updates)`,
    '-',
  ],
  [
    '  those 10 deployments scaled to 0, then their identities released (one call, after the delay)',
    `${releaseMs.toFixed(2)} ms (${released.identities.removed.length} identities, ${released.endpoints.size} endpoints changed)`,
    '-',
  ],
  ['one pod with a new label set (median of 10)', `${median(newIdentityTimes).toFixed(2)} ms`, '-'],
  [`one policy added (${added.endpoints.size} endpoints changed)`, `${policyAddMs.toFixed(2)} ms`, '-'],
  ['one policy deleted', `${policyDeleteMs.toFixed(2)} ms`, '-'],
  [
    'RSS (after / before load)',
    `${(rss / 2 ** 20).toFixed(0)} MiB / ${(rssBefore / 2 ** 20).toFixed(0)} MiB`,
    '-',
  ],
];
const width = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(width[c]!)).join('  |  '));
