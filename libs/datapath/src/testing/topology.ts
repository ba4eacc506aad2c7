/**
 * A routed test topology built with iproute2, isolated from the host: a "router" netns stands in
 * for the node's root netns, and each pod netns hangs off it by a veth pair (pod side eth0, with
 * a /32 and /128, default routes via 169.254.1.1 / fe80::1 with permanent neighbours; router side
 * with host routes back). Nothing touches the real root namespace.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { NetnsLineHelper } from '@weft/testkit';

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });
const quiet = (cmd: string, args: string[]) => {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    /* best effort cleanup */
  }
};

export interface ProbeResult {
  ok: boolean;
  data?: string;
  error?: string;
}

export class TestPod {
  /** Host-side veth name (in the router netns). */
  readonly hostIf: string;
  readonly netnsPath: string;
  mac = '';
  hostIfindex = 0;
  private helper?: NetnsLineHelper;

  constructor(
    readonly label: string,
    readonly netns: string,
    readonly ipv4: string,
    readonly ipv6: string,
    index: number,
  ) {
    this.hostIf = `wbv${index}`;
    this.netnsPath = `/var/run/netns/${netns}`;
  }

  exec(cmd: string, ...args: string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.netns, cmd, ...args], { encoding: 'utf8' });
  }

  /** Starts the pod's servers and probe runner (node, inside the netns). */
  async start(): Promise<void> {
    this.helper = await NetnsLineHelper.start(`pod helper ${this.label}`, this.netns, [
      process.execPath,
      join(__dirname, 'pod-helper.mjs'),
      this.label,
    ]);
  }

  probe(op: 'tcp' | 'udp', host: string, port: number, timeoutMs = 500): Promise<ProbeResult> {
    return this.helper!.request({ op, host, port, timeoutMs });
  }

  tcp(to: TestPod, port: number, family: 4 | 6 = 4): Promise<ProbeResult> {
    return this.probe('tcp', family === 4 ? to.ipv4 : to.ipv6, port);
  }

  udp(to: TestPod, port: number, family: 4 | 6 = 4): Promise<ProbeResult> {
    return this.probe('udp', family === 4 ? to.ipv4 : to.ipv6, port);
  }

  ping(to: TestPod, family: 4 | 6 = 4): boolean {
    try {
      this.exec('ping', `-${family}`, '-c1', '-W1', family === 4 ? to.ipv4 : to.ipv6);
      return true;
    } catch {
      return false;
    }
  }

  stop(): void {
    this.helper?.kill();
  }
}

export class TestTopology {
  readonly router: string;
  readonly routerNetnsPath: string;
  readonly pods: TestPod[] = [];
  private readonly tag = randomBytes(3).toString('hex');

  constructor(private readonly prefix = 'wb') {
    this.router = `${prefix}r${this.tag}`;
    this.routerNetnsPath = `/var/run/netns/${this.router}`;
    ip('netns', 'add', this.router);
    const r = (...args: string[]) => ip('-n', this.router, ...args);
    r('link', 'set', 'lo', 'up');
    for (const [k, v] of [
      ['net.ipv4.ip_forward', '1'],
      ['net.ipv6.conf.all.forwarding', '1'],
      ['net.ipv4.conf.all.rp_filter', '0'],
      ['net.ipv4.conf.default.rp_filter', '0'],
    ]) {
      execFileSync('ip', ['netns', 'exec', this.router, 'sysctl', '-qw', `${k}=${v}`]);
    }
  }

  /** Adds pod number `n` (1..250): 10.251.0.n and fd77:7762::n. */
  addPod(label: string, n: number): TestPod {
    const pod = new TestPod(
      label,
      `${this.prefix}${label.toLowerCase()}${this.tag}`,
      `10.251.0.${n}`,
      `fd77:7762::${n}`,
      n,
    );
    ip('netns', 'add', pod.netns);
    this.pods.push(pod);
    const r = (...args: string[]) => ip('-n', this.router, ...args);
    const p = (...args: string[]) => ip('-n', pod.netns, ...args);
    r('link', 'add', pod.hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.netns);
    const routerMac = JSON.parse(r('-j', 'link', 'show', pod.hostIf))[0].address as string;
    pod.hostIfindex = JSON.parse(r('-j', 'link', 'show', pod.hostIf))[0].ifindex as number;
    pod.mac = JSON.parse(p('-j', 'link', 'show', 'eth0'))[0].address as string;
    execFileSync('ip', [
      'netns',
      'exec',
      pod.netns,
      'sysctl',
      '-qw',
      'net.ipv6.conf.all.accept_dad=0',
      'net.ipv6.conf.default.accept_dad=0',
    ]);
    p('link', 'set', 'lo', 'up');
    p('addr', 'add', `${pod.ipv4}/32`, 'dev', 'eth0');
    p('-6', 'addr', 'add', `${pod.ipv6}/128`, 'dev', 'eth0', 'nodad');
    p('link', 'set', 'eth0', 'up');
    p('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
    p('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
    p('neigh', 'add', '169.254.1.1', 'lladdr', routerMac, 'dev', 'eth0', 'nud', 'permanent');
    p('-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0');
    p('-6', 'neigh', 'add', 'fe80::1', 'lladdr', routerMac, 'dev', 'eth0', 'nud', 'permanent');
    r('link', 'set', pod.hostIf, 'up');
    r('route', 'add', `${pod.ipv4}/32`, 'dev', pod.hostIf);
    r('-6', 'route', 'add', `${pod.ipv6}/128`, 'dev', pod.hostIf);
    r('neigh', 'add', pod.ipv4, 'lladdr', pod.mac, 'dev', pod.hostIf, 'nud', 'permanent');
    r('-6', 'neigh', 'add', pod.ipv6, 'lladdr', pod.mac, 'dev', pod.hostIf, 'nud', 'permanent');
    return pod;
  }

  destroy(): void {
    for (const pod of this.pods) {
      pod.stop();
      quiet('ip', ['netns', 'del', pod.netns]);
    }
    quiet('ip', ['netns', 'del', this.router]);
  }
}

/** A bpffs folder unique to this run: /sys/fs/bpf/weft-test-wb<random>. */
export function testPinRoot(): string {
  quiet('sh', ['-c', 'mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf']);
  return `/sys/fs/bpf/weft-test-wb${randomBytes(4).toString('hex')}`;
}
