/**
 * A scratch "node" for IPvlan tests: a network namespace holding the master (one end of a veth
 * whose other end is in a "lan" namespace with the subnet's gateway), and a wrapper that runs the
 * shipped weft-cni inside the node's namespace (nsenter --net: mounts stay the caller's, so bpffs
 * and the state dirs are the same). Nothing here touches the caller's own namespace.
 *
 *   node: wimst0 10.<a>.<b>.2/24                lan: wilan0 10.<a>.<b>.1/24 (the L2 gateway)
 *         pods: ipvlan links of wimst0               route to the L3 pod range via 10.<a>.<b>.2
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listTcx, tcxSupported } from '@weft/bpf';
import { ScratchNetns } from '@weft/testkit';
import { DIST_BIN } from '../../testing/cni-run';

export const WEFT_CNI = join(DIST_BIN, 'weft-cni');
export const MASTER = 'wimst0';

export class IpvlanTestbed {
  readonly node: ScratchNetns;
  readonly lan: ScratchNetns;
  /** weft-cni, run inside the node's netns. */
  readonly plugin: string;
  /** 10.96.<n>.0/24: the master's subnet (L2 pods); 10.95.<n>.0/24: the L3 pod range. */
  readonly l2Subnet: string;
  readonly l3Subnet: string;
  readonly gateway: string;
  readonly nodeIp: string;

  constructor(work: string, n: number) {
    this.node = new ScratchNetns('wivn');
    this.lan = new ScratchNetns('wivl');
    this.l2Subnet = `10.96.${n}.0/24`;
    this.l3Subnet = `10.95.${n}.0/24`;
    this.gateway = `10.96.${n}.1`;
    this.nodeIp = `10.96.${n}.2`;
    this.node.exec(
      'ip',
      'link',
      'add',
      MASTER,
      'type',
      'veth',
      'peer',
      'name',
      'wilan0',
      'netns',
      this.lan.name,
    );
    this.node.exec('ip', 'addr', 'add', `${this.nodeIp}/24`, 'dev', MASTER);
    this.node.exec('ip', 'link', 'set', MASTER, 'up');
    this.lan.exec('ip', 'addr', 'add', `${this.gateway}/24`, 'dev', 'wilan0');
    this.lan.exec('ip', 'link', 'set', 'wilan0', 'up');
    this.lan.exec('ip', 'route', 'add', this.l3Subnet, 'via', this.nodeIp);
    this.plugin = join(work, `weft-cni-in-${this.node.name}`);
    writeFileSync(this.plugin, `#!/bin/sh\nexec nsenter --net=${this.node.path} ${WEFT_CNI} "$@"\n`);
    chmodSync(this.plugin, 0o755);
  }

  /** `ip ...` in the node's namespace. */
  ip(...args: string[]): string {
    return this.node.exec('ip', ...args);
  }

  /** Names of the links in the node's namespace. */
  links(): string[] {
    return this.ip('-o', 'link', 'show')
      .split('\n')
      .map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
      .filter(Boolean);
  }

  remove(): void {
    this.node.remove();
    this.lan.remove();
  }
}

/** ping from a namespace; true when answered. */
export { ping } from '../../testing/chain-fixtures';

/**
 * Names of the BPF programs on an interface's tc hook inside a netns, whichever way the datapath
 * attached them: clsact filters (`tc filter show`) or tcx links (kernels 6.6+; BPF_PROG_QUERY,
 * names from bpftool).
 */
export function programsOn(netnsPath: string, ifname: string, hook: 'ingress' | 'egress'): string[] {
  const names = new Set<string>();
  const inNs = (cmd: string, ...args: string[]) =>
    execFileSync('nsenter', [`--net=${netnsPath}`, cmd, ...args], { encoding: 'utf8' });
  for (const m of inNs('tc', 'filter', 'show', 'dev', ifname, hook).matchAll(
    /\b(from_container|to_container)\b/g,
  ))
    names.add(m[1]!);
  if (tcxSupported()) {
    for (const p of listTcx(ifname, hook, { netns: netnsPath }).programs) {
      const info = JSON.parse(
        execFileSync('bpftool', ['prog', 'show', 'id', String(p.progId), '-j'], { encoding: 'utf8' }),
      );
      if (info.name) names.add(info.name as string);
    }
  }
  return [...names];
}

/** Whether this kernel can make ipvlan links (tried in a throwaway namespace). */
export function kernelHasIpvlan(): boolean {
  try {
    execFileSync('modprobe', ['ipvlan'], { stdio: 'ignore' });
  } catch {
    /* built in, or really absent: the link tells */
  }
  const probe = new ScratchNetns('wiprb');
  const ip = (...args: string[]) => execFileSync('ip', ['-n', probe.name, ...args], { stdio: 'ignore' });
  try {
    ip('link', 'add', 'wprb0', 'type', 'veth', 'peer', 'name', 'wprb1');
    ip('link', 'add', 'link', 'wprb0', 'name', 'wprb2', 'type', 'ipvlan');
    return true;
  } catch {
    return false;
  } finally {
    probe.remove();
  }
}
