/*
 * The agent API over its real unix socket, served by a real agent on a real datapath: every
 * error has its stable code and status, registration is idempotent, the socket is 0600, a stale
 * socket is replaced and a live agent is not, and registrations wait for (then give up on) a
 * source that has not synced.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentApiError, AgentClient, type EndpointRegistration } from '@weft/agent-api';
import { Datapath } from '@weft/datapath';
import { privileged } from '@weft/testkit';
import { Agent } from './agent';
import { PinnedMaps } from './datapath/pinned-maps';
import { silentLogger } from './logger';
import { KubernetesSource } from './sources/kubernetes-source';
import { BPF_OBJECT_DIR } from './testing/agent-process';
import { startInProcessAgent } from './testing/in-process';
import { PodNetwork, testPinRoot, type NetPod } from './testing/pod-network';

const isRoot = process.getuid?.() === 0;

/** A raw request (for what AgentClient never sends: bad JSON, wrong types, huge bodies). */
function raw(socketPath: string, method: string, path: string, body?: string, type = 'application/json') {
  return new Promise<{ status: number; body: { error?: { code: string; message: string } } | unknown }>(
    (resolve, reject) => {
      const req = request(
        { socketPath, method, path, headers: body === undefined ? {} : { 'content-type': type } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    },
  );
}

async function code(p: Promise<unknown>): Promise<[number, string]> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AgentApiError) return [err.status, err.code];
    throw err;
  }
  throw new Error('expected an error');
}

describe('agent API', () => {
  let net: PodNetwork | undefined;
  let work: string;
  let pinRoot: string;
  let agent: Agent | undefined;
  let socketPath: string;
  let api: AgentClient;
  let pod: NetPod;
  let reg: EndpointRegistration;

  beforeAll(async () => {
    if (!isRoot) return;
    work = mkdtempSync(join(tmpdir(), 'weft-agent-api-'));
    mkdirSync(join(work, 'manifests'));
    writeFileSync(
      join(work, 'manifests', 'm.yaml'),
      'apiVersion: v1\nkind: Namespace\nmetadata: {name: t}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: t, labels: {app: web}}\nspec: {nodeName: node-t}\n',
    );
    pinRoot = testPinRoot('api');
    net = new PodNetwork('api');
    pod = net.addPod('t/p', '10.63.0.10');
    reg = pod.registration({ attachInPod: true, mode: 'eni', hostIfname: undefined, hostIfindex: undefined });
    ({ agent, socketPath } = await startInProcessAgent({
      work,
      pinRoot,
      manifests: join(work, 'manifests'),
      extraArgs: ['--metrics-address', '127.0.0.1:0', '--identity-release-delay', '0.5'],
    }));
    api = new AgentClient({ socketPath });
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    if (pinRoot) Datapath.destroy({ pinRoot, stateDir: join(work, 'state', 'datapath') });
    net?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('serves health and status on a 0600 socket', async (ctx) => {
    privileged(ctx);
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
    expect(await api.health()).toMatchObject({ ok: true });
    const s = await api.status();
    expect(s).toMatchObject({
      ready: true,
      sourceSynced: true,
      source: 'manifests',
      nodeName: 'node-t',
      endpoints: 0,
    });
    expect(s.datapath.programsPinned).toBe(true);
    expect(s.datapath.maps.map((m) => m.name).sort()).toEqual([
      'weft_conntrack',
      'weft_endpoints',
      'weft_ipcache',
      'weft_policy',
    ]);
    expect(s.datapath.maps.every((m) => m.maxEntries > 0)).toBe(true);
  });

  it('registers idempotently (same id, same identity) and removes (204, also when unknown)', async (ctx) => {
    privileged(ctx);
    const first = await api.registerEndpoint(reg);
    expect(first.endpointId).toBeGreaterThan(0);
    expect(await api.registerEndpoint(reg)).toEqual(first);
    const [ep] = await api.listEndpoints();
    expect(ep).toMatchObject({
      endpointId: first.endpointId,
      identity: first.identity,
      pod: 't/p',
      state: 'ready',
      interface: 'eth0 (in pod)',
      ips: ['10.63.0.10'],
    });
    expect(ep!.labels).toContain('k8s:app=web');
    const ids = await api.listIdentities();
    expect(ids.find((i) => i.identity === first.identity)).toMatchObject({ endpoints: 1, reserved: false });
    expect(ids.filter((i) => i.reserved).map((i) => i.labels[0])).toEqual(
      expect.arrayContaining(['reserved:host', 'reserved:world', 'reserved:init']),
    );
    expect(await api.bpfPolicy(String(first.endpointId))).toEqual([]); // nothing enforced
    expect(await api.bpfPolicy('t/p')).toEqual([]);
    await api.removeEndpoint(reg);
    await api.removeEndpoint(reg);
    await api.removeEndpoint({ containerId: 'never-seen', ifname: 'eth0' });
    expect(await api.listEndpoints()).toEqual([]);
    // Re-registering after a removal is a new endpoint (ids are not reused).
    const again = await api.registerEndpoint(reg);
    expect(again.endpointId).toBeGreaterThan(first.endpointId);
  });

  it('answers bad requests with stable error codes', async (ctx) => {
    privileged(ctx);
    const id = encodeURIComponent(`${reg.containerId}:eth0`);
    const e = (r: { status: number; body: unknown }) => [
      r.status,
      (r.body as { error: { code: string } }).error.code,
    ];
    expect(e(await raw(socketPath, 'PUT', `/v1/endpoints/${id}`, '{nope'))).toEqual([400, 'INVALID_JSON']);
    expect(e(await raw(socketPath, 'PUT', `/v1/endpoints/${id}`, '{}', 'text/plain'))).toEqual([
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ]);
    expect(
      e(await raw(socketPath, 'PUT', `/v1/endpoints/${id}`, JSON.stringify({ ...reg, extra: 1 }))),
    ).toEqual([400, 'INVALID_REGISTRATION']);
    expect(
      e(
        await raw(socketPath, 'PUT', `/v1/endpoints/${id}`, JSON.stringify({ ...reg, ips: ['10.0.0.1/24'] })),
      ),
    ).toEqual([400, 'INVALID_REGISTRATION']);
    expect(
      e(await raw(socketPath, 'PUT', `/v1/endpoints/${id}`, JSON.stringify({ ...reg, ifname: '../etc' }))),
    ).toEqual([400, 'INVALID_REGISTRATION']);
    expect(e(await raw(socketPath, 'PUT', `/v1/endpoints/other%3Aeth0`, JSON.stringify(reg)))).toEqual([
      400,
      'ATTACHMENT_MISMATCH',
    ]);
    expect(e(await raw(socketPath, 'PUT', `/v1/endpoints/noifname`, JSON.stringify(reg)))).toEqual([
      400,
      'INVALID_ATTACHMENT_ID',
    ]);
    expect(e(await raw(socketPath, 'PUT', `/v1/endpoints/${id}`, 'x'.repeat(2 << 20)))).toEqual([
      413,
      'PAYLOAD_TOO_LARGE',
    ]);
    expect(e(await raw(socketPath, 'GET', '/v1/nothing'))).toEqual([404, 'NOT_FOUND']);
    expect(e(await raw(socketPath, 'POST', '/v1/status', '{}'))).toEqual([405, 'METHOD_NOT_ALLOWED']);
    expect(e(await raw(socketPath, 'GET', '/v1/events?type=bogus'))).toEqual([400, 'INVALID_QUERY']);
    expect(await code(api.trace({ from: 't/nope', to: 't/p', port: 80, protocol: 'TCP' }))).toEqual([
      404,
      'UNKNOWN_ENDPOINT',
    ]);
    expect(await code(api.call('POST', '/v1/policy/trace', { from: 't/p', to: 't/p', port: 70000 }))).toEqual(
      [400, 'INVALID_TRACE_REQUEST'],
    );
    expect(await code(api.bpfPolicy('999999'))).toEqual([404, 'UNKNOWN_ENDPOINT']);
    expect(await code(api.bpfPolicy('t/nope'))).toEqual([404, 'UNKNOWN_ENDPOINT']);
    // The datapath cannot attach (no such interface in the pod): 500 with the datapath's reason.
    const broken = { ...reg, containerId: 'broken1', podIfname: 'nosuch0' };
    const [status, c] = await code(api.registerEndpoint(broken));
    expect([status, c]).toEqual([500, 'DATAPATH_ATTACH_FAILED']);
    expect((await api.listEndpoints()).find((x) => x.containerId === 'broken1')!.state).toBe('error');
    await api.removeEndpoint(broken);
  });

  it('a relabelled pod leaves its old identity allocated for --identity-release-delay, then it goes', async (ctx) => {
    privileged(ctx);
    const manifest = join(work, 'manifests', 'm.yaml');
    const original = readFileSync(manifest, 'utf8');
    const { identity: web } = await api.registerEndpoint(reg);
    const until = async (what: string, ok: () => Promise<boolean>) => {
      for (let i = 0; i < 100 && !(await ok()); i++) await new Promise((r) => setTimeout(r, 50));
      expect(await ok(), what).toBe(true);
    };
    try {
      writeFileSync(manifest, original.replace('app: web', 'app: api'));
      await until('the endpoint takes the new identity', async () => {
        const [ep] = await api.listEndpoints();
        return ep!.identity !== web && ep!.labels.includes('k8s:app=api');
      });
      // The old identity lingers with no endpoint (no pod carries it), then is released.
      const lingering = (await api.listIdentities()).find((i) => i.identity === web);
      expect(lingering).toMatchObject({ endpoints: 0 });
      expect(lingering!.labels).toContain('k8s:app=web');
      await until('the old identity is released', async () =>
        (await api.listIdentities()).every((i) => i.identity !== web),
      );
    } finally {
      writeFileSync(manifest, original);
      await api.removeEndpoint(reg);
    }
  });

  it('trace explains the verdict, metrics are served on the socket', async (ctx) => {
    privileged(ctx);
    const t = await api.trace({ from: 't/p', to: '192.0.2.1', port: 443, protocol: 'TCP' });
    expect(t).toMatchObject({ verdict: 'allowed', egress: { reason: 'no-policy-selects' } });
    const m = await api.metrics();
    for (const name of [
      'weft_agent_endpoints',
      'weft_agent_identities',
      'weft_agent_policies',
      'weft_agent_policy_computation_duration_seconds_bucket',
      'weft_bpf_map_entries{map="weft_ipcache"}',
      'weft_bpf_map_max_entries{map="weft_policy"}',
      'weft_agent_api_requests_total',
    ])
      expect(m).toContain(name);
  });

  it('serves /metrics (and only metrics and health) on the --metrics-address', async (ctx) => {
    privileged(ctx);
    const base = `http://127.0.0.1:${agent!.metricsPort}`;
    const m = await fetch(`${base}/metrics`);
    expect(m.status).toBe(200);
    expect(m.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await m.text()).toContain('weft_agent_endpoints');
    expect((await fetch(`${base}/v1/healthz`)).status).toBe(200);
    const s = await fetch(`${base}/v1/status`);
    expect(s.status).toBe(404);
    expect(((await s.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
  });

  it('refuses a second agent on a live socket, replaces a stale one, never a non-socket', async (ctx) => {
    privileged(ctx);
    const stale = join(work, 'stale.sock');
    // A socket file nobody listens on: what an agent killed with SIGKILL leaves behind.
    spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    expect(statSync(stale).isSocket()).toBe(true);
    const dp = () =>
      Datapath.open({ pinRoot, stateDir: join(work, 'state2', 'datapath'), objectDir: BPF_OBJECT_DIR });
    const make = (socket: string) =>
      new Agent({
        nodeName: 'node-t',
        stateDir: join(work, 'state2'),
        queueDir: join(work, 'queue2'),
        socketPath: socket,
        datapath: dp(),
        maps: new PinnedMaps(pinRoot),
        logger: silentLogger(),
        gcIntervalMs: 0,
        events: false,
        defaultMetrics: false,
      });
    const second = make(socketPath);
    await expect(second.start()).rejects.toMatchObject({ code: 'AGENT_ALREADY_RUNNING' });
    await second.stop();
    const third = make(stale);
    await third.start();
    expect(await new AgentClient({ socketPath: stale }).health()).toMatchObject({ ok: true });
    await third.stop();
    const file = join(work, 'plain-file');
    writeFileSync(file, 'not a socket');
    const fourth = make(file);
    await expect(fourth.start()).rejects.toMatchObject({ code: 'SOCKET_PATH_IN_USE' });
    await fourth.stop();
  });

  it('makes registrations wait for an unsynced source, then answers 503 NOT_READY', async (ctx) => {
    privileged(ctx);
    const kubeconfig = join(work, 'dead-kubeconfig');
    writeFileSync(
      kubeconfig,
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "http://127.0.0.1:9", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n',
    );
    const socket = join(work, 'unsynced.sock');
    const unsynced = new Agent({
      nodeName: 'node-t',
      stateDir: join(work, 'state3'),
      queueDir: join(work, 'queue3'),
      socketPath: socket,
      datapath: Datapath.open({
        pinRoot,
        stateDir: join(work, 'state3', 'datapath'),
        objectDir: BPF_OBJECT_DIR,
      }),
      maps: new PinnedMaps(pinRoot),
      source: new KubernetesSource({
        kubeconfig,
        nodeName: 'node-t',
        logger: silentLogger(),
        backoffMaxMs: 200,
      }),
      logger: silentLogger(),
      readyWaitMs: 300,
      gcIntervalMs: 0,
      events: false,
      defaultMetrics: false,
    });
    await unsynced.start();
    try {
      const c = new AgentClient({ socketPath: socket });
      expect(await c.status()).toMatchObject({ ready: false, sourceSynced: false, source: 'kubernetes' });
      const started = Date.now();
      const err = await c.registerEndpoint({ ...reg, containerId: 'waits1' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AgentApiError);
      expect(err).toMatchObject({ status: 503, code: 'NOT_READY', retryable: true });
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect(await code(c.trace({ from: 't/p', to: 't/p', port: 1, protocol: 'TCP' }))).toEqual([
        503,
        'NOT_READY',
      ]);
      await c.removeEndpoint({ containerId: 'waits1', ifname: 'eth0' }); // DEL never waits
    } finally {
      await unsynced.stop();
    }
  });
});
