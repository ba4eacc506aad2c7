/**
 * The node side of an ENI: find its link by MAC once the cloud says it is attached, bring it
 * up, give it a routing table (default via the vSwitch gateway), and add one policy rule per
 * pod address (`from <pod ip> lookup <table>`) so that pod traffic leaves through the ENI
 * that owns the address. Over rtnetlink (@weft/netlink), in the daemon's own netns or in a
 * named one (the emulated "node").
 */
import { formatIp, isExists, isNotFound, openRtnl, parseIp, type Rtnl, type Rule } from '@weft/netlink';
import { Netns } from '@weft/netns';
import { sleep } from '../backoff';
import { isEniCandidate, netnsPathOf } from '../exclusive/eni-netns';

export interface EniLinkInfo {
  ifname: string;
  ifindex: number;
  table: number;
}

export interface EniRouting {
  mac: string;
  gateway: string;
  cidr: string;
  gateway6?: string;
  cidr6?: string;
}

export interface HostNetwork {
  /** Waits for the link with this MAC and configures it; idempotent. */
  ensureEni(r: EniRouting, timeoutMs: number): Promise<EniLinkInfo>;
  addPodRules(ips: string[], table: number): Promise<void>;
  delPodRules(ips: string[]): Promise<void>;
  /** Pod rules present now: ip → table. */
  listPodRules(): Promise<Map<string, number>>;
}

/**
 * Per pod address two rules: `to <ip> lookup main` (traffic for the pod, even from another
 * pod, is delivered on the node) ahead of `from <ip> lookup <ENI table>` (traffic from the pod
 * leaves through its ENI); both ahead of the main table (32766).
 */
export const POD_TO_RULE_PRIORITY = 512;
export const POD_RULE_PRIORITY = 2048;
export const TABLE_BASE = 1000;

export const MAIN_TABLE = 254;

export class NetlinkHostNetwork implements HostNetwork {
  /** @param netns the node's netns: a name under /run/netns or a path; undefined: this process's. */
  constructor(private readonly netns?: string) {}

  private async with<T>(fn: (rtnl: Rtnl) => Promise<T>): Promise<T> {
    const ns = this.netns ? Netns.open(netnsPathOf(this.netns)) : undefined;
    try {
      const rtnl = openRtnl(ns);
      try {
        return await fn(rtnl);
      } finally {
        rtnl.close();
      }
    } finally {
      ns?.close();
    }
  }

  ensureEni(r: EniRouting, timeoutMs: number): Promise<EniLinkInfo> {
    return this.with(async (rtnl) => {
      const deadline = Date.now() + timeoutMs;
      let link = (await rtnl.listLinks()).find((l) => isEniCandidate(l, r.mac));
      for (let wait = 20; !link; wait = Math.min(wait * 2, 500)) {
        if (Date.now() > deadline)
          throw new Error(`no link with MAC ${r.mac} appeared within ${timeoutMs} ms`);
        await sleep(wait);
        link = (await rtnl.listLinks()).find((l) => isEniCandidate(l, r.mac));
      }
      const table = TABLE_BASE + link.index;
      await rtnl.setUp(link.index);
      // Only a default route: in a VPC everything, the vSwitch's own addresses included, goes via its gateway.
      await rtnl.replaceRoute({
        dst: 'default',
        family: 4,
        gateway: r.gateway,
        dev: link.index,
        onlink: true,
        table,
      });
      if (r.gateway6) {
        await rtnl.replaceRoute({
          dst: 'default',
          family: 6,
          gateway: r.gateway6,
          dev: link.index,
          onlink: true,
          table,
        });
      }
      return { ifname: link.name, ifindex: link.index, table };
    });
  }

  addPodRules(ips: string[], table: number): Promise<void> {
    return this.with(async (rtnl) => {
      for (const ip of ips) {
        const prefix = hostPrefix(ip);
        // Replace semantics: drop stale rules for this address first (they may name another table).
        await deleteRulesOf(rtnl, [ip]);
        await rtnl
          .addRule({ to: prefix, table: MAIN_TABLE, priority: POD_TO_RULE_PRIORITY })
          .catch(ignoreExists);
        await rtnl.addRule({ from: prefix, table, priority: POD_RULE_PRIORITY }).catch(ignoreExists);
      }
    });
  }

  delPodRules(ips: string[]): Promise<void> {
    return this.with((rtnl) => deleteRulesOf(rtnl, ips));
  }

  listPodRules(): Promise<Map<string, number>> {
    return this.with(async (rtnl) => {
      const out = new Map<string, number>();
      const rules = [...(await rtnl.listRules(4)), ...(await rtnl.listRules(6))];
      for (const r of rules) {
        const from = bareHost(r.from);
        if (r.priority === POD_RULE_PRIORITY && from) out.set(from, r.table);
      }
      for (const r of rules) {
        const to = bareHost(r.to);
        // A "to" rule without its "from" rule is stale too: report it with table 0 so that it is removed.
        if (r.priority === POD_TO_RULE_PRIORITY && to && !out.has(to)) out.set(to, 0);
      }
      return out;
    });
  }
}

/** The name it had when it drove iproute2; kept for callers (bench, older configs). */
export const IpRouteHostNetwork = NetlinkHostNetwork;

/** Every pod rule (both priorities) of these addresses, whatever table they name. */
async function deleteRulesOf(rtnl: Rtnl, ips: string[]): Promise<void> {
  const wanted = new Set(ips.map(hostPrefix));
  const families = new Set(ips.map((ip) => (ip.includes(':') ? 6 : 4) as 4 | 6));
  for (const family of families) {
    for (const r of await rtnl.listRules(family)) {
      if (!isPodRule(r, wanted)) continue;
      await rtnl
        .deleteRule({
          family,
          priority: r.priority,
          table: r.table,
          ...(r.from ? { from: r.from } : {}),
          ...(r.to ? { to: r.to } : {}),
        })
        .catch(ignoreNotFound);
    }
  }
}

function isPodRule(r: Rule, prefixes: Set<string>): boolean {
  if (r.priority === POD_RULE_PRIORITY) return !!r.from && prefixes.has(r.from) && !r.to;
  if (r.priority === POD_TO_RULE_PRIORITY) return !!r.to && prefixes.has(r.to) && !r.from;
  return false;
}

/** Canonical text (as the kernel's answers are formatted), so rules compare equal. */
function hostPrefix(ip: string): string {
  const canonical = formatIp(parseIp(ip).bytes);
  return ip.includes(':') ? `${canonical}/128` : `${canonical}/32`;
}

/** "10.0.0.5/32" -> "10.0.0.5"; undefined for anything that is not a host prefix. */
function bareHost(prefix: string | undefined): string | undefined {
  if (!prefix) return undefined;
  const [ip, len] = prefix.split('/');
  return len === (ip!.includes(':') ? '128' : '32') ? ip : undefined;
}

function ignoreExists(err: unknown): void {
  if (!isExists(err)) throw err;
}

function ignoreNotFound(err: unknown): void {
  if (!isNotFound(err)) throw err;
}

/** For running without touching links (unit tests, dry runs): remembers what it would do. */
export class RecordingHostNetwork implements HostNetwork {
  readonly rules = new Map<string, number>();
  private next = 1;
  private readonly tables = new Map<string, number>();

  async ensureEni(r: EniRouting): Promise<EniLinkInfo> {
    if (!this.tables.has(r.mac)) this.tables.set(r.mac, TABLE_BASE + ++this.next);
    return { ifname: `eth${this.next}`, ifindex: this.next, table: this.tables.get(r.mac)! };
  }
  async addPodRules(ips: string[], table: number): Promise<void> {
    for (const ip of ips) this.rules.set(ip, table);
  }
  async delPodRules(ips: string[]): Promise<void> {
    for (const ip of ips) this.rules.delete(ip);
  }
  async listPodRules(): Promise<Map<string, number>> {
    return new Map(this.rules);
  }
}
