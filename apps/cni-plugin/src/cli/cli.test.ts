import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { AgentStatus, BpfPolicyEntry, EndpointSummary, FlowEvent, TraceResponse } from '@weft/agent-api';
import { dispatch } from '../weft-cli';
import type { CliIo } from './agent-cli';
import { runBpfPolicyGet } from './bpf-policy-get';
import { runEndpointList } from './endpoint-list';
import { runObserve } from './observe';
import { parsePortProto, runPolicyTrace } from './policy-trace';
import {
  renderBpfPolicy,
  renderEndpoints,
  renderFlow,
  renderIdentities,
  renderPolicies,
  renderStatus,
  renderTrace,
} from './render';
import { runStatus } from './status';
import { renderTable } from './table';

const work = mkdtempSync(join(tmpdir(), 'weft-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function io(): CliIo & { stdout: () => string; stderr: () => string } {
  let o = '';
  let e = '';
  return { out: (t) => void (o += t), err: (t) => void (e += t), stdout: () => o, stderr: () => e };
}

const STATUS: AgentStatus = {
  version: '0.1.0',
  uptimeSeconds: 3725,
  source: 'manifests',
  sourceSynced: true,
  nodeName: 'node-1',
  endpoints: 2,
  identities: 9,
  policies: 1,
  datapath: {
    pinRoot: '/sys/fs/bpf/weft',
    programsPinned: true,
    maps: [
      { name: 'weft_endpoints', entries: 2, maxEntries: 65536 },
      { name: 'weft_policy', entries: 524288, maxEntries: 1048576 },
    ],
  },
  queue: { replayed: 1, pending: 0 },
  ready: true,
  revision: 7,
};

const ENDPOINT: EndpointSummary = {
  endpointId: 12,
  identity: 260,
  ingressEnforced: true,
  egressEnforced: false,
  attachmentId: 'abc:eth0',
  containerId: 'abc',
  ifname: 'eth0',
  network: 'weftnet',
  netns: '/var/run/netns/p',
  mode: 'veth',
  pod: 'x/a',
  ips: ['10.0.0.2', 'fd00::2'],
  interface: 'lxc0123456789a',
  labels: ['k8s:app=web', 'k8s:io.cilium.k8s.namespace.labels.ns=x', 'k8s:io.kubernetes.pod.namespace=x'],
  state: 'ready',
};

describe('weft CLI rendering', () => {
  it('lays out tables with multi-line cells', () => {
    expect(
      renderTable(
        ['a', 'bb'],
        [
          ['x', ['1', '22']],
          ['yyy', '3'],
        ],
      ),
    ).toBe('A     BB\nx     1\n      22\nyyy   3\n');
  });

  it('status: state, counts, map fill', () => {
    const text = renderStatus(STATUS);
    expect(text).toContain('weft-agent:  ready (version 0.1.0, up 1h02m)');
    expect(text).toContain('source:      manifests (synced)');
    expect(text).toMatch(/weft_policy\s+524288\s+1048576\s+50\.0%/);
    expect(renderStatus({ ...STATUS, ready: false, sourceSynced: false })).toContain(
      'waiting for the source to sync',
    );
  });

  it('endpoints: enforcement, addresses and labels one per line (namespace labels left out)', () => {
    const text = renderEndpoints([ENDPOINT]);
    const [head, first, second] = text.split('\n');
    expect(head).toMatch(/^ENDPOINT\s+IDENTITY\s+INGRESS\s+EGRESS\s+POD\s+IPS\s+INTERFACE\s+STATE\s+LABELS$/);
    expect(first).toMatch(
      /^12\s+260\s+enforced\s+-\s+x\/a\s+10\.0\.0\.2\s+lxc0123456789a\s+ready\s+k8s:app=web$/,
    );
    expect(second).toMatch(/^\s+fd00::2\s+k8s:io\.kubernetes\.pod\.namespace=x$/);
    expect(text).not.toContain('namespace.labels');
    expect(renderEndpoints([])).toBe('no endpoints\n');
  });

  it('identities and policies', () => {
    expect(
      renderIdentities([{ identity: 2, labels: ['reserved:world'], reserved: true, endpoints: 0 }]),
    ).toMatch(/^IDENTITY\s+LABELS\s+ENDPOINTS\n2\s+reserved:world\s+-\n$/);
    const p = renderPolicies([
      {
        kind: 'CiliumNetworkPolicy',
        namespace: 'x',
        name: 'l7',
        selects: ['x/a', 'x/b'],
        warnings: [{ code: 'L7_NOT_ENFORCED', message: 'http rules' }],
      },
    ]);
    expect(p).toMatch(/CiliumNetworkPolicy\s+x\s+l7\s+x\/a\s+L7_NOT_ENFORCED: http rules\n\s+x\/b\n$/);
  });

  it('bpf policy: Cilium-like columns, ANY for the any-peer identity', () => {
    const entries: BpfPolicyEntry[] = [
      {
        verdict: 'allow',
        direction: 'ingress',
        identity: 260,
        labels: ['k8s:app=client'],
        port: '80/TCP',
        packets: '5',
        bytes: '370',
      },
      {
        verdict: 'deny',
        direction: 'egress',
        identity: 0,
        labels: ['reserved:all'],
        port: 'ANY',
        packets: '0',
        bytes: '0',
      },
    ];
    const text = renderBpfPolicy(entries);
    expect(text.split('\n')[0]).toMatch(
      /^VERDICT\s+DIRECTION\s+IDENTITY\s+LABELS\s+PORT\/PROTO\s+PACKETS\s+BYTES$/,
    );
    expect(text).toMatch(/Allow\s+Ingress\s+260\s+k8s:app=client\s+80\/TCP\s+5\s+370/);
    expect(text).toMatch(/Deny\s+Egress\s+ANY\s+\(any\)\s+ANY\s+0\s+0/);
  });

  it('trace: the verdict, each side with its reason, enforcing policies and matching rules', () => {
    const t = {
      verdict: 'denied',
      from: { name: 'x/b', ip: '10.0.0.3', pod: 'x/b' },
      to: { name: 'x/a', ip: '10.0.0.2', pod: 'x/a' },
      port: 80,
      protocol: 'TCP',
      egress: {
        direction: 'egress',
        verdict: 'allow',
        reason: 'no-policy-selects',
        enforcedBy: [],
        matches: [],
        explanation: 'egress of x/b: allowed, no policy selects it for egress',
      },
      ingress: {
        direction: 'ingress',
        verdict: 'deny',
        reason: 'denied-by-rule',
        enforcedBy: ['CiliumNetworkPolicy/x/deny'],
        matches: [
          {
            policy: 'CiliumNetworkPolicy/x/deny',
            rule: 'specs[0].ingressDeny[0]',
            peer: 'specs[0].ingressDeny[0].fromEndpoints[0]',
            verdict: 'deny',
            l7NotEnforced: false,
          },
        ],
        explanation: 'ingress of x/a: denied by ...',
      },
      explanation: 'DENY',
    } as unknown as TraceResponse;
    const text = renderTrace(t);
    expect(text.split('\n')[0]).toBe('x/b (10.0.0.3) -> x/a (10.0.0.2) 80/TCP: DENIED');
    expect(text).toMatch(/ingress DENY\s+denied-by-rule: ingress of x\/a/);
    expect(text).toContain('enforced by: CiliumNetworkPolicy/x/deny');
    expect(text).toContain(
      'denied by CiliumNetworkPolicy/x/deny specs[0].ingressDeny[0] (peer specs[0].ingressDeny[0].fromEndpoints[0])',
    );
  });

  it('flows: peer on the outside, the endpoint by name, the drop reason', () => {
    const e: FlowEvent = {
      time: '2026-01-02T03:04:05.678Z',
      type: 'drop',
      reason: 'WEFT_DROP_POLICY_DEFAULT',
      verdict: 'deny',
      direction: 'ingress',
      ctStatus: 'new',
      endpointId: 12,
      endpoint: 'x/a',
      peerIdentity: 261,
      peerLabels: ['k8s:io.kubernetes.pod.namespace=y', 'k8s:pod=b'],
      protocol: 6,
      protocolName: 'TCP',
      source: '10.0.1.3',
      sourcePort: 40000,
      destination: '10.0.0.2',
      destinationPort: 80,
      length: 74,
      ifindex: 3,
      timestampNs: '1',
    };
    expect(renderFlow(e)).toBe(
      '03:04:05.678  10.0.1.3:40000 (identity 261 y pod=b) -> 10.0.0.2:80 (x/a) TCP ingress DROPPED policy-default\n',
    );
    expect(
      renderFlow({
        ...e,
        direction: 'egress',
        source: '10.0.0.2',
        destination: '10.0.1.3',
        sourcePort: 5,
        destinationPort: 53,
      }),
    ).toMatch(/^03:04:05\.678 {2}10\.0\.0\.2:5 \(x\/a\) -> 10\.0\.1\.3:53 \(identity 261/);
  });
});

describe('weft CLI against no agent', () => {
  it('says the agent is not running when there is no socket (exit 1)', async () => {
    const o = io();
    const socket = join(work, 'absent.sock');
    expect(await runStatus(['--socket', socket], o)).toBe(1);
    expect(o.stderr()).toBe(`weft status: weft-agent is not running (no socket at ${socket})\n`);
    expect(o.stdout()).toBe('');
    // Every agent verb says the same, reached through the dispatcher (the verb table's rows).
    for (const args of [
      ['endpoint', 'list', '-o', 'json'],
      ['identity', 'list'],
      ['policy', 'get'],
      ['policy', 'trace', '--from', 'x/a', '--to', 'x/b', '--port', '80'],
      ['bpf', 'policy', 'get', '12'],
      ['observe', '--no-follow'],
    ]) {
      const err: string[] = [];
      const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
      const spy = vi.spyOn(process.stderr, 'write').mockImplementation((t) => (err.push(String(t)), true));
      try {
        expect(await dispatch([...args, '--socket', socket])).toBe(1);
      } finally {
        out.mockRestore();
        spy.mockRestore();
      }
      expect(err.join('')).toBe(
        `weft ${args
          .filter((a) => !a.startsWith('-') && !/[/\d]/.test(a))
          .slice(0, args[0] === 'bpf' ? 3 : args[0] === 'observe' ? 1 : 2)
          .join(' ')}: weft-agent is not running (no socket at ${socket})\n`,
      );
    }
  });

  it('tells a stale socket (nobody listening) apart', async () => {
    const socket = join(work, 'stale.sock');
    // A socket file nobody listens on: what an agent killed with SIGKILL leaves behind.
    spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    expect(statSync(socket).isSocket()).toBe(true);
    const o = io();
    expect(await runEndpointList(['--socket', socket], o)).toBe(1);
    expect(o.stderr()).toContain(`weft-agent is not running (nothing listens on ${socket}`);
  });

  it('refuses bad usage with exit 2 and prints help with exit 0', async () => {
    let o = io();
    expect(await runPolicyTrace(['--from', 'x/a'], o)).toBe(2);
    expect(o.stderr()).toMatch(/--from, --to and --port are required\nusage: weft policy trace --from/);
    o = io();
    expect(await runStatus(['-o', 'yaml'], o)).toBe(2);
    expect(o.stderr()).toContain('-o: table or json');
    o = io();
    expect(await runBpfPolicyGet([], o)).toBe(2);
    o = io();
    expect(await runStatus(['--bogus'], o)).toBe(2);
    o = io();
    expect(await runObserve(['--help'], o)).toBe(0);
    expect(o.stdout()).toMatch(/^usage: weft observe .*--socket PATH/s);
    expect(parsePortProto('80')).toEqual({ port: 80, protocol: 'TCP' });
    expect(parsePortProto('53/udp')).toEqual({ port: 53, protocol: 'UDP' });
    expect(() => parsePortProto('80/icmp')).toThrow(/--port/);
    expect(() => parsePortProto('70000')).toThrow(/--port/);
  });
});
