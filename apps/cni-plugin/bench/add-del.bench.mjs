#!/usr/bin/env node
// Pod ADD/DEL latency: weft-cni (veth + weft-host-local) beside the reference bridge + host-local,
// same machine, same run, interleaved so that noise hits both alike. Not a test.
//
//   node apps/cni-plugin/bench/add-del.bench.mjs [iterations]      (root; after `npm run build`)
//
// weft is timed with a weft-agent (started here, temp dirs), which attaches the BPF programs with
// the pod's policy: the weft-cni shim forwards each request to the agent's CNI server (tc auto and
// clsact), or, with --no-cni-server, runs it in a weft-cni process of its own; and without an
// agent in degraded mode, where weft-cni (again a process of its own) attaches them.
// Each iteration makes a fresh netns per plugin, times ADD then DEL as a runtime does (exec with
// the conf on stdin), and deletes the netns. The times include each plugin's process start.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../../..');
const iterations = Number(process.argv[2] ?? 40);
const bin = process.env.WEFT_BIN_DIR ?? join(root, 'dist/bin');
const ref = '/usr/lib/cni';
const work = mkdtempSync(join(tmpdir(), 'weft-bench-pod-'));
const pinRoot = `/sys/fs/bpf/weft-bench-${process.pid}`;
delete process.env.NODE_EXTRA_CA_CERTS; // CNI runtimes do not set it (costs Node ~50 ms)
delete process.env.NODE_OPTIONS;

const weftConf = (extra = {}) => ({
  cniVersion: '1.0.0',
  name: 'wbench',
  type: 'weft-cni',
  degraded: true,
  stateDir: join(work, 'state'),
  agentSocket: join(work, 'no-agent.sock'),
  pinRoot,
  ipam: { type: 'weft-host-local', ranges: [[{ subnet: '10.95.0.0/16' }]], dataDir: join(work, 'ipam') },
  ...extra,
});
const variants = [
  {
    name: 'bridge + host-local (reference)',
    plugin: join(ref, 'bridge'),
    path: ref,
    conf: {
      cniVersion: '1.0.0',
      name: 'rbench',
      type: 'bridge',
      bridge: 'wbr-bench',
      isGateway: true,
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.94.0.0/16' }]], dataDir: join(work, 'ipam') },
    },
  },
  { name: 'weft-cni veth + weft-host-local (no agent, degraded, tc auto)', plugin: join(bin, 'weft-cni'), path: `${bin}:${ref}`, conf: weftConf() },
];
// Two agents: the default attach (tcx links on kernels that have them) and clsact filters.
const agents = [];
function startAgent(name, tcMode, cniServer) {
  const socket = join(work, `${name}.sock`);
  const proc = spawn(
    join(bin, 'weft-agent'),
    ['--socket', socket, '--state-dir', join(work, name), '--queue-dir', join(work, name, 'queue'),
      '--pin-root', `${pinRoot}-${name}`, '--node-name', 'bench', '--log-level', 'error', '--tc-mode', tcMode,
      ...(cniServer ? [] : ['--no-cni-server'])],
    { stdio: 'ignore' },
  );
  agents.push({ proc, pin: `${pinRoot}-${name}` });
  return socket;
}
const mechanism = spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim();
// tcx attach/detach wait for an RCU grace period: expedited ones are ~10x shorter (kernel setting).
const rcuExpedited = spawnSync('cat', ['/sys/kernel/rcu_expedited'], { encoding: 'utf8' }).stdout.trim() || '?';
for (const [name, tcMode, cniServer] of [
  ['agent-auto', 'auto', true],
  ['agent-clsact', 'clsact', true],
  ['agent-exec', 'auto', false],
]) {
  const socket = startAgent(name, tcMode, cniServer);
  const how = cniServer ? 'in the agent' : 'own process';
  variants.splice(variants.length - 1, 0, {
    name: `weft-cni veth + weft-host-local (agent, ${how}, ${tcMode === 'auto' ? 'tc auto' : 'clsact'})`,
    plugin: join(bin, 'weft-cni'),
    path: `${bin}:${ref}`,
    conf: weftConf({ degraded: false, agentSocket: socket, stateDir: join(work, name), pinRoot: `${pinRoot}-${name}` }),
  });
  for (let i = 0; ; i++) {
    const r = spawnSync(join(bin, 'weft'), ['status', '--socket', socket], { encoding: 'utf8' });
    if (r.status === 0) break;
    if (i > 100) throw new Error(`weft-agent did not start: ${r.stderr}`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

function timed(v, command, id, netns) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(v.plugin, [], {
    input: JSON.stringify(v.conf),
    env: {
      PATH: process.env.PATH,
      CNI_COMMAND: command,
      CNI_CONTAINERID: id,
      CNI_NETNS: netns,
      CNI_IFNAME: 'eth0',
      CNI_PATH: v.path,
    },
    encoding: 'utf8',
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${v.name} ${command} failed: ${r.stdout}${r.stderr}`);
  return ms;
}

const samples = variants.map(() => ({ add: [], del: [] }));
try {
  for (let i = -3; i < iterations; i++) {
    // Warm-up rounds (i < 0) are not recorded: the first weft run writes its addon cache and pins.
    variants.forEach((v, k) => {
      const ns = `wbn${process.pid % 1000}x${k}`;
      execFileSync('ip', ['netns', 'add', ns]);
      try {
        const id = `bench-${k}-${i + 3}`;
        const add = timed(v, 'ADD', id, `/var/run/netns/${ns}`);
        const del = timed(v, 'DEL', id, `/var/run/netns/${ns}`);
        if (i >= 0) {
          samples[k].add.push(add);
          samples[k].del.push(del);
        }
      } finally {
        execFileSync('ip', ['netns', 'del', ns]);
      }
    });
  }
} finally {
  for (const a of agents) {
    a.proc.kill();
    spawnSync('rm', ['-rf', a.pin]);
  }
  spawnSync('ip', ['link', 'del', 'wbr-bench']);
  spawnSync('rm', ['-rf', pinRoot]);
  rmSync(work, { recursive: true, force: true });
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const f = (n) => n.toFixed(1).padStart(7);
console.log(
  `pod ADD/DEL latency, ${iterations} iterations each, interleaved; ms including process start; kernel ${mechanism} (tc auto = tcx here when >= 6.6), rcu_expedited=${rcuExpedited}`,
);
console.log(`${'plugin'.padEnd(72)} ${'ADD p50'.padStart(7)} ${'ADD p95'.padStart(7)} ${'DEL p50'.padStart(7)} ${'DEL p95'.padStart(7)}  ADD/ref DEL/ref (p50)`);
const base = samples[0];
variants.forEach((v, k) => {
  const s = samples[k];
  const ra = pct(s.add, 50) / pct(base.add, 50);
  const rd = pct(s.del, 50) / pct(base.del, 50);
  console.log(
    `${v.name.padEnd(72)} ${f(pct(s.add, 50))} ${f(pct(s.add, 95))} ${f(pct(s.del, 50))} ${f(pct(s.del, 95))}  ${ra.toFixed(2).padStart(6)}x ${rd.toFixed(2).padStart(6)}x`,
  );
});
