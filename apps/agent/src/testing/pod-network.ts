/**
 * Real "pods" for the agent's privileged tests, built with iproute2 and isolated from the host
 * (the same shape as libs/datapath's test topology): a "node" netns stands in for the node's
 * root netns and each pod netns hangs off it by a veth pair (pod side eth0 with a /32, default
 * route via 169.254.1.1 with a permanent neighbour; node side `<prefix>v<n>` with a host route
 * back). A weft-agent under test runs inside the node netns (`nsenter --net`), exactly where it
 * would run on a node. Each pod runs pod-helper.mjs (servers and probes). Nothing touches the
 * real root namespace; destroy() removes every namespace (links go with them).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { EndpointRegistration } from '@weft/agent-api';
import { NetnsLineHelper, type HelperAnswer } from '@weft/testkit';

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });
const quiet = (cmd: string, args: string[]) => {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    /* best effort */
  }
};

export type ProbeResult = HelperAnswer;

export interface PodServers {
  tcp?: number[];
  udp?: number[];
  /** A TCP port that streams bytes until the client goes away. */
  stream?: number;
}

export class NetPod {
  readonly netnsPath: string;
  readonly hostIf: string;
  hostIfindex = 0;
  mac = '';
  readonly containerId: string;
  private helper?: NetnsLineHelper;
  private sctpHelper?: NetnsLineHelper;

  constructor(
    /** `namespace/name` */
    readonly key: string,
    readonly netns: string,
    readonly ip: string,
    readonly index: number,
    hostIf: string,
  ) {
    this.netnsPath = `/var/run/netns/${netns}`;
    this.hostIf = hostIf;
    this.containerId = `c${randomBytes(8).toString('hex')}`;
  }

  get namespace(): string {
    return this.key.split('/')[0]!;
  }

  get name(): string {
    return this.key.split('/')[1]!;
  }

  async start(servers: PodServers = { tcp: [80, 81], udp: [80, 81] }): Promise<void> {
    this.helper = await NetnsLineHelper.start(`pod ${this.key}`, this.netns, [
      process.execPath,
      join(__dirname, 'pod-helper.mjs'),
      this.key,
      (servers.tcp ?? []).join(','),
      (servers.udp ?? []).join(','),
      String(servers.stream ?? 0),
    ]);
  }

  private request(req: Record<string, unknown>): Promise<ProbeResult> {
    return this.helper!.request(req);
  }

  probe(protocol: 'TCP' | 'UDP', host: string, port: number, timeoutMs = 500): Promise<ProbeResult> {
    return this.request({ op: protocol === 'TCP' ? 'tcp' : 'udp', host, port, timeoutMs });
  }

  tcp(to: NetPod, port: number, timeoutMs = 500): Promise<ProbeResult> {
    return this.probe('TCP', to.ip, port, timeoutMs);
  }

  /** Opens a long-lived connection; `streamStat` reports what it received. */
  stream(to: NetPod, port: number, stream: string, timeoutMs = 1000): Promise<ProbeResult> {
    return this.request({ op: 'stream', host: to.ip, port, stream, timeoutMs });
  }

  streamStat(stream: string): Promise<ProbeResult> {
    return this.request({ op: 'stream-stat', stream });
  }

  streamClose(stream: string): Promise<ProbeResult> {
    return this.request({ op: 'stream-close', stream });
  }

  /** SCTP servers and probes (python3: Node has no SCTP); only where sctpSupport() says ok. */
  async startSctp(ports: number[]): Promise<void> {
    this.sctpHelper = await NetnsLineHelper.start(`sctp ${this.key}`, this.netns, [
      'python3',
      join(__dirname, 'sctp-helper.py'),
      this.key,
      ...ports.map(String),
    ]);
  }

  /** One SCTP connection attempt from this pod: the server greets, then closes. */
  sctpProbe(host: string, port: number, timeoutMs = 500): Promise<ProbeResult> {
    if (!this.sctpHelper) throw new Error(`${this.key}: startSctp() first`);
    return this.sctpHelper.request({ host, port, timeoutMs });
  }

  /** What weft-cni's veth mode would register for this pod. */
  registration(overrides: Partial<EndpointRegistration> = {}): EndpointRegistration {
    return {
      containerId: this.containerId,
      ifname: 'eth0',
      network: 'weftnet',
      netns: this.netnsPath,
      mode: 'veth',
      podNamespace: this.namespace,
      podName: this.name,
      ips: [this.ip],
      podIfname: 'eth0',
      podMac: this.mac,
      hostIfname: this.hostIf,
      hostIfindex: this.hostIfindex,
      attachInPod: false,
      ...overrides,
    };
  }

  stop(): void {
    this.helper?.kill();
    this.sctpHelper?.kill();
  }
}

export class PodNetwork {
  readonly node: string;
  readonly nodeNetnsPath: string;
  readonly pods: NetPod[] = [];
  private readonly tag = randomBytes(3).toString('hex');

  /** `prefix`: 2-3 letters, unique to the test file (names stay under 15 bytes). */
  constructor(private readonly prefix: string) {
    this.node = `${prefix}n${this.tag}`;
    this.nodeNetnsPath = `/var/run/netns/${this.node}`;
    ip('netns', 'add', this.node);
    ip('-n', this.node, 'link', 'set', 'lo', 'up');
    for (const [k, v] of [
      ['net.ipv4.ip_forward', '1'],
      ['net.ipv4.conf.all.rp_filter', '0'],
      ['net.ipv4.conf.default.rp_filter', '0'],
    ]) {
      execFileSync('ip', ['netns', 'exec', this.node, 'sysctl', '-qw', `${k}=${v}`]);
    }
  }

  addPod(key: string, address: string): NetPod {
    const n = this.pods.length + 1;
    const pod = new NetPod(key, `${this.prefix}${n}${this.tag}`, address, n, `${this.prefix}v${n}`);
    ip('netns', 'add', pod.netns);
    this.pods.push(pod);
    const r = (...args: string[]) => ip('-n', this.node, ...args);
    const p = (...args: string[]) => ip('-n', pod.netns, ...args);
    r('link', 'add', pod.hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.netns);
    const host = JSON.parse(r('-j', 'link', 'show', pod.hostIf))[0] as { address: string; ifindex: number };
    pod.hostIfindex = host.ifindex;
    pod.mac = (JSON.parse(p('-j', 'link', 'show', 'eth0'))[0] as { address: string }).address;
    p('link', 'set', 'lo', 'up');
    p('addr', 'add', `${address}/32`, 'dev', 'eth0');
    p('link', 'set', 'eth0', 'up');
    p('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
    p('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
    p('neigh', 'add', '169.254.1.1', 'lladdr', host.address, 'dev', 'eth0', 'nud', 'permanent');
    r('link', 'set', pod.hostIf, 'up');
    r('route', 'add', `${address}/32`, 'dev', pod.hostIf);
    r('neigh', 'add', address, 'lladdr', pod.mac, 'dev', pod.hostIf, 'nud', 'permanent');
    return pod;
  }

  pod(key: string): NetPod {
    const p = this.pods.find((x) => x.key === key);
    if (!p) throw new Error(`no pod ${key}`);
    return p;
  }

  /** Runs a command in the node netns. */
  exec(cmd: string, ...args: string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.node, cmd, ...args], { encoding: 'utf8' });
  }

  destroy(): void {
    for (const pod of this.pods) {
      pod.stop();
      quiet('ip', ['netns', 'del', pod.netns]);
    }
    quiet('ip', ['netns', 'del', this.node]);
  }
}

/** Whether SCTP sockets can be made here, and if not why (this kernel has no SCTP). */
export function sctpSupport(): { ok: true } | { ok: false; reason: string } {
  quiet('modprobe', ['sctp']);
  if (!existsSync('/proc/net/sctp'))
    return {
      ok: false,
      reason: `this kernel (${release()}) has no SCTP (no /proc/net/sctp, modprobe sctp failed)`,
    };
  try {
    execFileSync('python3', [
      '-c',
      'import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()',
    ]);
  } catch {
    return { ok: false, reason: 'SCTP sockets cannot be created (python3 socket IPPROTO_SCTP failed)' };
  }
  return { ok: true };
}

function release(): string {
  try {
    return execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** A bpffs folder unique to this run (never the real /sys/fs/bpf/weft). */
export function testPinRoot(tag: string): string {
  quiet('sh', ['-c', 'mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf']);
  return `/sys/fs/bpf/weft-test-${tag}${process.pid}${randomBytes(2).toString('hex')}`;
}
