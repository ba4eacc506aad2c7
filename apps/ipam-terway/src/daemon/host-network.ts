/**
 * The node side of an ENI: find its link by MAC once the cloud says it is attached, bring it
 * up, give it a routing table (default via the vSwitch gateway), and add one policy rule per
 * pod address (`from <pod ip> lookup <table>`) so that pod traffic leaves through the ENI
 * that owns the address. Uses iproute2 (optionally in a named netns: the emulated "node").
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { sleep } from '../backoff';

const run = promisify(execFile);

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

export class IpRouteHostNetwork implements HostNetwork {
  constructor(private readonly netnsName?: string) {}

  private ip(...args: string[]): Promise<{ stdout: string }> {
    const ns = this.netnsName ? ['-n', this.netnsName] : [];
    return run('ip', [...ns, ...args], { encoding: 'utf8' });
  }

  async ensureEni(r: EniRouting, timeoutMs: number): Promise<EniLinkInfo> {
    const deadline = Date.now() + timeoutMs;
    let link: { ifname: string; ifindex: number } | undefined;
    for (let wait = 20; ; wait = Math.min(wait * 2, 500)) {
      const { stdout } = await this.ip('-j', 'link', 'show');
      const links = JSON.parse(stdout) as Array<{ ifname: string; ifindex: number; address?: string }>;
      link = links.find((l) => l.address?.toLowerCase() === r.mac.toLowerCase());
      if (link) break;
      if (Date.now() > deadline) throw new Error(`no link with MAC ${r.mac} appeared within ${timeoutMs} ms`);
      await sleep(wait);
    }
    const table = TABLE_BASE + link.ifindex;
    await this.ip('link', 'set', link.ifname, 'up');
    // Only a default route: in a VPC everything, the vSwitch's own addresses included, goes via its gateway.
    await this.ip(
      'route',
      'replace',
      'default',
      'via',
      r.gateway,
      'dev',
      link.ifname,
      'onlink',
      'table',
      String(table),
    );
    if (r.gateway6) {
      await this.ip(
        '-6',
        'route',
        'replace',
        'default',
        'via',
        r.gateway6,
        'dev',
        link.ifname,
        'onlink',
        'table',
        String(table),
      );
    }
    return { ifname: link.ifname, ifindex: link.ifindex, table };
  }

  async addPodRules(ips: string[], table: number): Promise<void> {
    for (const ip of ips) {
      const [fam, prefix] = ruleArgs(ip);
      // Replace semantics: drop stale rules for this address first (they may name another table).
      await this.delPodRules([ip]);
      await this.ip(
        fam,
        'rule',
        'add',
        'to',
        prefix,
        'lookup',
        'main',
        'priority',
        String(POD_TO_RULE_PRIORITY),
      );
      await this.ip(
        fam,
        'rule',
        'add',
        'from',
        prefix,
        'lookup',
        String(table),
        'priority',
        String(POD_RULE_PRIORITY),
      );
    }
  }

  async delPodRules(ips: string[]): Promise<void> {
    for (const ip of ips) {
      const [fam, prefix] = ruleArgs(ip);
      await this.ip(fam, 'rule', 'del', 'from', prefix, 'priority', String(POD_RULE_PRIORITY)).catch(
        () => undefined,
      );
      await this.ip(fam, 'rule', 'del', 'to', prefix, 'priority', String(POD_TO_RULE_PRIORITY)).catch(
        () => undefined,
      );
    }
  }

  async listPodRules(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const fam of ['-4', '-6']) {
      const { stdout } = await this.ip(fam, '-j', 'rule', 'show');
      for (const r of JSON.parse(stdout || '[]') as Array<{
        priority: number;
        src?: string;
        dst?: string;
        table?: string;
      }>) {
        if (r.priority === POD_RULE_PRIORITY && r.src && r.table) out.set(r.src, Number(r.table));
        // A "to" rule without its "from" rule is stale too: report it with table 0 so that it is removed.
        if (r.priority === POD_TO_RULE_PRIORITY && r.dst && !out.has(r.dst)) out.set(r.dst, 0);
      }
    }
    return out;
  }
}

function ruleArgs(ip: string): [string, string] {
  return ip.includes(':') ? ['-6', `${ip}/128`] : ['-4', `${ip}/32`];
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
