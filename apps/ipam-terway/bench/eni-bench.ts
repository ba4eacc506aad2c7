/**
 * ENI IPAM benchmark: 100 pods ADDed concurrently on one node with a warm pool of 10, against
 * the ECS emulator through the real SDK (and, as root, real links: the emulator plugs ENIs into
 * a VPC bridge namespace, the daemon configures a node namespace). Prints, per scenario: time to
 * the last address, ECS calls per API, and the most calls seen in any 1 s window next to what
 * the token bucket allows (burst + rate·1 s).
 *
 * Run: node apps/ipam-terway/bench/run.mjs
 */
import { ScratchNetns } from '@weft/testkit';
import { DEFAULT_RATE_LIMITS, ECS_ACTIONS, type EcsAction } from '../src/cloud/types';
import { NetlinkHostNetwork } from '../src/daemon/host-network';
import { VethNodeLinks } from '../src/emulator/node-links';
import type { FaultRule } from '../src/emulator/ecs-emulator';
import { eventually, findDisagreements, TestEnv } from '../src/testing/env';

interface Scenario {
  name: string;
  limits: Partial<Record<EcsAction, number>>;
  faults: FaultRule[];
}

const PODS = 100;
const WARM = 10;

const scenarios: Scenario[] = [
  { name: 'Terway default limits', limits: {}, faults: [] },
  {
    name: 'tight limits (Assign 60/min, Create 30/min, Describe 120/min)',
    limits: {
      AssignPrivateIpAddresses: 60,
      CreateNetworkInterface: 30,
      AttachNetworkInterface: 30,
      DescribeNetworkInterfaces: 120,
    },
    faults: [],
  },
  {
    name: 'default limits + throttling and 5xx bursts',
    limits: {},
    faults: [
      { action: 'AssignPrivateIpAddresses', kind: 'throttle', times: 5 },
      { action: 'AssignPrivateIpAddresses', kind: 'server-error-after-commit', times: 2 },
      { action: 'CreateNetworkInterface', kind: 'server-error', times: 3 },
      { action: 'DescribeNetworkInterfaces', kind: 'throttle', times: 4 },
      { action: 'AttachNetworkInterface', kind: 'server-error', times: 2 },
    ],
  },
];

const root = process.getuid?.() === 0;

async function run(s: Scenario) {
  const node = root ? new ScratchNetns('wbn') : undefined;
  const vpc = root ? new ScratchNetns('wbv') : undefined;
  node?.exec('sysctl', '-qw', 'net.ipv4.ip_forward=1');
  const env = await TestEnv.create('we-bench', {
    daemon: {
      minPoolSize: WARM,
      maxPoolSize: 200,
      configureHost: root,
      nodeNetns: node?.name,
      ecs: {
        protocol: 'http',
        accessKeyId: 'weft-test-ak',
        accessKeySecret: 'weft-test-secret',
        rateLimits: s.limits,
      },
    },
    host: node ? new NetlinkHostNetwork(node.name) : undefined,
    start: false,
  });
  try {
    if (node && vpc)
      env.emu.model.hooks = new VethNodeLinks({
        nodeNetns: node.name,
        vpcNetns: vpc.name,
        bridge: 'webr0',
        linkPrefix: 'wbv',
      });
    await env.startDaemon();
    await eventually(async () => (await env.client.status()).idle >= WARM, 30_000, 'warm pool');
    const warmCalls = env.emu.calls.length;
    for (const f of s.faults) env.emu.injectFault(f);
    const t0 = performance.now();
    const res = await Promise.all(
      Array.from({ length: PODS }, (_, i) =>
        env.client.allocate({ containerId: `bench${i}`, ifname: 'eth0', netns: `/proc/1/ns/net` }),
      ),
    );
    const lastIpMs = performance.now() - t0;
    const distinct = new Set(res.map((r) => r.ipv4!.address)).size;
    await env.daemon!.pool.stop();
    await env.emu.model.settle();
    const problems = findDisagreements(env.emu, env.daemon!.pool.state);
    const stats = env.cloud.stats;
    const rows = ECS_ACTIONS.filter((a) => env.emu.callsOf(a).length > 0).map((a) => {
      const perMin = s.limits[a] ?? DEFAULT_RATE_LIMITS[a];
      const burst = Math.max(1, Math.floor(perMin / 60));
      return {
        api: a,
        calls: env.emu.callsOf(a).length,
        throttled: stats[a].throttled,
        '5xx': stats[a].serverErrors,
        retries: stats[a].retries,
        'max in 1 s': env.emu.maxCallsInWindow(a, 1000),
        'allowed in 1 s': Math.floor(burst + perMin / 60),
        'limit /min': perMin,
      };
    });
    return {
      scenario: s.name,
      pods: PODS,
      distinct,
      lastIpMs,
      enis: [...env.emu.model.enis.values()].filter((e) => e.type === 'Secondary').length,
      callsDuringAdds: env.emu.calls.length - warmCalls,
      problems,
      rows,
    };
  } finally {
    await env.dispose();
    node?.remove();
    vpc?.remove();
  }
}

async function main() {
  console.log(
    `ENI IPAM benchmark: ${PODS} concurrent ADDs, warm pool ${WARM}, ecs.g7.4xlarge (7 secondary ENIs × 30 addresses)`,
  );
  console.log(
    root
      ? 'real links: ENIs plugged into a VPC bridge netns, node netns configured (rules, tables)'
      : 'not root: no links (pool and API only)',
  );
  const summary = [];
  for (const s of scenarios) {
    const r = await run(s);
    console.log(`\n## ${r.scenario}`);
    console.table(r.rows);
    summary.push({
      scenario: r.scenario,
      'distinct IPs': `${r.distinct}/${r.pods}`,
      'time to last IP (ms)': Math.round(r.lastIpMs),
      ENIs: r.enis,
      'ECS calls during ADDs': r.callsDuringAdds,
      'records = cloud': r.problems.length === 0 ? 'yes' : r.problems.slice(0, 3).join('; '),
      'rate kept': r.rows.every((x) => x['max in 1 s'] <= x['allowed in 1 s']) ? 'yes' : 'NO',
    });
  }
  console.log('\n## summary');
  console.table(summary);
  if (
    summary.some(
      (s) =>
        s['rate kept'] !== 'yes' ||
        s['records = cloud'] !== 'yes' ||
        !s['distinct IPs'].startsWith(`${PODS}/`),
    )
  )
    process.exitCode = 1;
}

void main();
