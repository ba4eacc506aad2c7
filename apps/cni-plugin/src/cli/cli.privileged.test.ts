/*
 * The weft CLI verbs against a real agent (in this process, real datapath, real socket): a pod
 * in one scratch netns with programs on its own eth0 (the in-pod attach path), a peer in another
 * netns sending it traffic that the policy drops, so every verb has something real to show.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient, type EndpointSummary, type FlowEvent } from '@weft/agent-api';
import { createAgent, parseAgentFlags, silentLogger, type Agent } from '@weft/agent';
import { Datapath } from '@weft/datapath';
import { privileged, requireCommands, ScratchNetns } from '@weft/testkit';
import type { CliIo } from './agent-cli';
import { runBpfPolicyGet } from './bpf-policy-get';
import { runEndpointList } from './endpoint-list';
import { runIdentityList } from './identity-list';
import { runObserve } from './observe';
import { runPolicyGet } from './policy-get';
import { runPolicyTrace } from './policy-trace';
import { runStatus } from './status';

const isRoot = process.getuid?.() === 0;
const BPF_DIR = resolve(__dirname, '../../../../bpf/build');
const POD_IP = '10.64.0.10';
const PEER_IP = '10.64.0.20';

function io(): CliIo & { stdout: () => string; stderr: () => string } {
  let o = '';
  let e = '';
  return { out: (t) => void (o += t), err: (t) => void (e += t), stdout: () => o, stderr: () => e };
}

describe('weft CLI verbs against a running agent', () => {
  let work: string;
  let pinRoot: string;
  let pod: ScratchNetns | undefined;
  let peer: ScratchNetns | undefined;
  let agent: Agent | undefined;
  let socket: string;
  let ep: EndpointSummary;
  const sendUdp = () => peer!.exec('bash', '-c', `echo probe > /dev/udp/${POD_IP}/80`);

  beforeAll(async () => {
    if (!isRoot) return;
    work = mkdtempSync(join(tmpdir(), 'weft-cli-agent-'));
    pinRoot = `/sys/fs/bpf/weft-test-cli${process.pid}${randomBytes(2).toString('hex')}`;
    pod = new ScratchNetns('wcp');
    peer = new ScratchNetns('wcq');
    execFileSync('ip', [
      '-n',
      pod.name,
      'link',
      'add',
      'eth0',
      'type',
      'veth',
      'peer',
      'name',
      'peer0',
      'netns',
      peer.name,
    ]);
    pod.exec('ip', 'addr', 'add', `${POD_IP}/32`, 'dev', 'eth0');
    pod.exec('ip', 'link', 'set', 'eth0', 'up');
    pod.exec('ip', 'route', 'add', `${PEER_IP}/32`, 'dev', 'eth0');
    peer.exec('ip', 'addr', 'add', `${PEER_IP}/32`, 'dev', 'peer0');
    peer.exec('ip', 'link', 'set', 'peer0', 'up');
    peer.exec('ip', 'route', 'add', `${POD_IP}/32`, 'dev', 'peer0');
    const manifests = join(work, 'manifests');
    mkdirSync(manifests);
    writeFileSync(
      join(manifests, 'web.yaml'),
      `apiVersion: v1
kind: Namespace
metadata: {name: cli, labels: {team: cli}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: cli, labels: {app: web}}
spec: {nodeName: node-cli, containers: [{name: web, image: nginx, ports: [{name: http, containerPort: 80}]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-lan, namespace: cli}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{ipBlock: {cidr: 10.64.0.0/24, except: [${PEER_IP}/32]}}], ports: [{port: http}]}]
`,
    );
    socket = join(work, 'agent.sock');
    const config = parseAgentFlags(
      [
        ...['--manifests', manifests, '--node-name', 'node-cli', '--socket', socket],
        ...[
          '--state-dir',
          join(work, 'state'),
          '--queue-dir',
          join(work, 'queue'),
          '--pin-root',
          pinRoot,
          '--bpf-dir',
          BPF_DIR,
        ],
      ],
      {},
    )!;
    agent = await createAgent(config, silentLogger());
    await agent.start();
    await agent.whenReady();
    const client = new AgentClient({ socketPath: socket });
    await client.registerEndpoint({
      containerId: 'clitest0',
      ifname: 'eth0',
      network: 'weftnet',
      netns: pod.path,
      mode: 'eni',
      podNamespace: 'cli',
      podName: 'web',
      ips: [POD_IP],
      podIfname: 'eth0',
      attachInPod: true,
    });
    ep = (await client.listEndpoints())[0]!;
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    if (pinRoot) Datapath.destroy({ pinRoot, stateDir: join(work, 'state', 'datapath') });
    pod?.remove();
    peer?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('status, endpoint list, identity list, policy get: tables and -o json', async (ctx) => {
    privileged(ctx);
    let o = io();
    expect(await runStatus(['--socket', socket], o)).toBe(0);
    expect(o.stdout()).toMatch(/weft-agent:\s+ready/);
    expect(o.stdout()).toMatch(/weft_policy\s+\d+\s+1048576/);

    o = io();
    expect(await runEndpointList(['--socket', socket], o)).toBe(0);
    expect(o.stdout()).toMatch(
      new RegExp(
        `^${ep.endpointId}\\s+${ep.identity}\\s+enforced\\s+-\\s+cli/web\\s+${POD_IP}\\s+eth0 \\(in pod\\)\\s+ready\\s+cidr:10\\.64\\.0\\.0/24$`,
        'm',
      ),
    );
    expect(o.stdout()).toMatch(/^\s+k8s:app=web$/m); // one label per line; the pod is inside the ipBlock
    o = io();
    expect(await runEndpointList(['--socket', socket, '-o', 'json'], o)).toBe(0);
    expect(JSON.parse(o.stdout())).toEqual([ep]);

    o = io();
    expect(await runIdentityList(['--socket', socket], o)).toBe(0);
    expect(o.stdout()).toMatch(new RegExp(`^${ep.identity}\\s+cidr:10\\.64\\.0\\.0/24`, 'm'));
    expect(o.stdout()).toMatch(/^2\s+reserved:world/m);

    o = io();
    expect(await runPolicyGet(['--socket', socket], o)).toBe(0);
    expect(o.stdout()).toMatch(/NetworkPolicy\s+cli\s+web-from-lan\s+cli\/web\s+-/);
    o = io();
    expect(await runPolicyGet(['cli/nope', '--socket', socket], o)).toBe(1);
  });

  it('policy trace says which rule allows or denies, and why', async (ctx) => {
    privileged(ctx);
    let o = io();
    expect(
      await runPolicyTrace(['--from', PEER_IP, '--to', 'cli/web', '--port', '80/TCP', '--socket', socket], o),
    ).toBe(0);
    expect(o.stdout()).toMatch(
      new RegExp(
        `^${PEER_IP.replace(/\./g, '\\.')} -> cli/web \\(${POD_IP.replace(/\./g, '\\.')}\\) 80/TCP: DENIED`,
      ),
    );
    expect(o.stdout()).toMatch(/ingress DENY\s+default-deny/);
    expect(o.stdout()).toContain('enforced by: NetworkPolicy/cli/web-from-lan');
    o = io();
    expect(
      await runPolicyTrace(
        ['--from', '10.64.0.30', '--to', 'cli/web', '--port', '80', '--socket', socket, '-o', 'json'],
        o,
      ),
    ).toBe(0);
    const t = JSON.parse(o.stdout());
    expect(t).toMatchObject({
      verdict: 'allowed',
      ingress: {
        reason: 'allowed-by-rule',
        matches: [{ policy: 'NetworkPolicy/cli/web-from-lan', rule: 'spec.ingress[0]' }],
      },
    });
  });

  it('bpf policy get shows the map entries with their counters', async (ctx) => {
    privileged(ctx);
    const o = io();
    expect(await runBpfPolicyGet(['cli/web', '--socket', socket], o)).toBe(0);
    const lines = o.stdout().trim().split('\n');
    expect(lines[0]).toMatch(/^VERDICT\s+DIRECTION\s+IDENTITY\s+LABELS\s+PORT\/PROTO\s+PACKETS\s+BYTES$/);
    // The CIDR identity of 10.64.0.0/24 (minus the peer) on the pod's named port http = 80/TCP.
    expect(o.stdout()).toMatch(/^Allow\s+Ingress\s+\d+\s+cidr:10\.64\.0\.0\/24\s+80\/TCP\s+0\s+0$/m);
    const byId = io();
    expect(await runBpfPolicyGet([String(ep.endpointId), '--socket', socket, '-o', 'json'], byId)).toBe(0);
    expect(JSON.parse(byId.stdout()).length).toBeGreaterThan(0);
  });

  it('observe shows the drops (kept ones, and live while following)', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'bash');
    sendUdp();
    const client = new AgentClient({ socketPath: socket });
    const deadline = Date.now() + 3000;
    let seen: FlowEvent[] = [];
    while (Date.now() < deadline) {
      seen = [];
      for await (const e of client.observe({ last: 50, type: 'drop' })) seen.push(e);
      if (seen.some((e) => e.destinationPort === 80)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    let o = io();
    expect(await runObserve(['--no-follow', '--type', 'drop', '--socket', socket], o)).toBe(0);
    expect(o.stdout()).toMatch(
      new RegExp(
        `${PEER_IP.replace(/\./g, '\\.')}:\\d+ \\(identity \\d+ cidr:10\\.64\\.0\\.0/24,cidr:10\\.64\\.0\\.20/32,reserved:world\\) -> ${POD_IP.replace(/\./g, '\\.')}:80 \\(cli/web\\) UDP ingress DROPPED policy-default`,
      ),
    );
    o = io();
    expect(await runObserve(['--no-follow', '--last', '1', '-o', 'json', '--socket', socket], o)).toBe(0);
    expect(JSON.parse(o.stdout())).toMatchObject({
      endpoint: 'cli/web',
      endpointId: ep.endpointId,
      protocolName: 'UDP',
      type: 'drop',
    });

    // Following: nothing kept is replayed (--last 0), a new drop arrives live.
    const follow = io();
    const abort = new AbortController();
    const running = runObserve(['--last', '0', '-o', 'json', '--socket', socket], follow, abort.signal);
    await new Promise((r) => setTimeout(r, 200));
    sendUdp();
    const until = Date.now() + 3000;
    while (!follow.stdout().includes('"destinationPort":80') && Date.now() < until)
      await new Promise((r) => setTimeout(r, 20));
    abort.abort();
    expect(await running).toBe(0);
    expect(follow.stdout()).toContain('"destinationPort":80');
    const metrics = await client.metrics();
    expect(metrics).toMatch(
      /weft_datapath_drops_total\{reason="WEFT_DROP_POLICY_DEFAULT",direction="ingress"\} [1-9]/,
    );
  });
});
