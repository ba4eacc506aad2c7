/**
 * Makes the emulated cloud physical enough to carry packets: the "VPC" is a bridge in a
 * network namespace (with the vSwitch gateway addresses on it and forwarding on, playing the
 * VPC router); attaching an ENI plugs a veth into it whose node end — in the "node"
 * namespace, named eth<device index>, with the ENI's MAC — is what an attached ENI looks like
 * to the instance. Assigned addresses become permanent neighbour entries on the bridge, as the
 * VPC's SDN knows which ENI holds which address.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { EmulatedEni, NodeHooks } from './cloud-model';

const run = promisify(execFile);

export interface VethNodeLinksOptions {
  /** Named netns (ip netns) that plays the instance. */
  nodeNetns: string;
  /** Named netns that plays the VPC. */
  vpcNetns: string;
  /** Bridge in the VPC netns (created if missing). */
  bridge: string;
  /** Prefix for VPC-side link names (≤ 8 characters). */
  linkPrefix: string;
}

export class VethNodeLinks implements NodeHooks {
  private readonly vpcSide = new Map<string, string>();
  private readonly gateways = new Set<string>();
  private counter = 0;
  private ready: Promise<void> | undefined;

  constructor(private readonly o: VethNodeLinksOptions) {}

  private ip(ns: string, ...args: string[]): Promise<unknown> {
    return run('ip', ['-n', ns, ...args]);
  }

  private setup(): Promise<void> {
    this.ready ??= (async () => {
      // A fixed MAC (the one Alibaba's VPC gateway answers with): a bridge that adopted its ports'
      // lowest MAC would change address as ENIs come and go, and that flushes its neighbour table.
      await this.ip(
        this.o.vpcNetns,
        'link',
        'add',
        this.o.bridge,
        'address',
        'ee:ff:ff:ff:ff:ff',
        'type',
        'bridge',
      ).catch(() => undefined);
      await this.ip(this.o.vpcNetns, 'link', 'set', this.o.bridge, 'up');
      // The VPC router answers ARP for every address of the vSwitch (as Alibaba's does) and
      // forwards between ENIs without telling hosts to go direct.
      const b = this.o.bridge;
      await run('ip', [
        'netns',
        'exec',
        this.o.vpcNetns,
        'sysctl',
        '-qw',
        'net.ipv4.ip_forward=1',
        'net.ipv4.conf.all.rp_filter=0',
        'net.ipv4.conf.all.send_redirects=0',
        `net.ipv4.conf.${b}.send_redirects=0`,
        `net.ipv4.conf.${b}.proxy_arp=1`,
        `net.ipv4.conf.${b}.proxy_arp_pvlan=1`,
      ]);
    })();
    return this.ready;
  }

  async attached(eni: EmulatedEni, vswitch: { cidr: string; gateway: string }): Promise<void> {
    await this.setup();
    const gw = `${vswitch.gateway}/${vswitch.cidr.split('/')[1]}`;
    if (!this.gateways.has(gw)) {
      this.gateways.add(gw);
      await this.ip(this.o.vpcNetns, 'addr', 'add', gw, 'dev', this.o.bridge).catch(() => undefined);
    }
    const vpcName = `${this.o.linkPrefix}${++this.counter}`.slice(0, 15);
    await this.ip(
      this.o.vpcNetns,
      'link',
      'add',
      vpcName,
      'type',
      'veth',
      'peer',
      'name',
      `eth${eni.deviceIndex}`,
      'address',
      eni.mac,
      'netns',
      this.o.nodeNetns,
    );
    await this.ip(this.o.vpcNetns, 'link', 'set', vpcName, 'master', this.o.bridge, 'up');
    this.vpcSide.set(eni.id, vpcName);
    await this.ipsChanged(eni, [eni.primaryIp, ...eni.secondaryIps], []);
  }

  async detached(eni: EmulatedEni): Promise<void> {
    const name = this.vpcSide.get(eni.id);
    if (!name) return;
    this.vpcSide.delete(eni.id);
    await this.ipsChanged(eni, [], [eni.primaryIp, ...eni.secondaryIps], true);
    await this.ip(this.o.vpcNetns, 'link', 'del', name).catch(() => undefined);
  }

  async ipsChanged(eni: EmulatedEni, added: string[], removed: string[], force = false): Promise<void> {
    if (!force && !this.vpcSide.has(eni.id)) return; // not plugged in yet: attach adds them all
    for (const ip of added) {
      await this.ip(
        this.o.vpcNetns,
        'neigh',
        'replace',
        ip,
        'lladdr',
        eni.mac,
        'dev',
        this.o.bridge,
        'nud',
        'permanent',
      );
    }
    for (const ip of removed)
      await this.ip(this.o.vpcNetns, 'neigh', 'del', ip, 'dev', this.o.bridge).catch(() => undefined);
  }
}
