import type { NetlinkSocket } from 'netlink/dist/netlink';
import type { Netns } from '@weft/netns';
import type { IpFamily } from './addr';
import { NETLINK_ROUTE, NLM_F, NLMSG_ERROR, RTM } from './constants';
import { NetlinkError, isNotFound, isUnsupported } from './errors';
import {
  addressFilter,
  decodeAddress,
  decodeNeighbour,
  decodeRoute,
  decodeRule,
  encodeAddress,
  encodeNeighbour,
  encodeRoute,
  encodeRule,
  neighbourFilter,
  routeFilter,
  ruleFilter,
  type Address,
  type AddressOptions,
  type Neighbour,
  type NeighbourState,
  type Route,
  type RouteSpec,
  type Rule,
  type RuleSpec,
} from './ip-codec';
import {
  decodeLink,
  encodeBridge,
  encodeIpvlan,
  encodeMacvlan,
  encodeVeth,
  ifinfomsg,
  linkChanges,
  selectLink,
  type IpvlanFlag,
  type IpvlanMode,
  type Link,
  type MacvlanMode,
} from './link-codec';

/** A link named by ifindex or by name. */
export type LinkRef = number | string;

export interface VethOptions {
  name: string;
  peerName: string;
  /** Create the peer directly inside this namespace (no rename/move dance, no name clash on the host). */
  peerNetns?: Netns;
  /** Applied to both ends. */
  mtu?: number;
  mac?: string;
  peerMac?: string;
}

export interface IpvlanOptions {
  name: string;
  master: LinkRef;
  mode: IpvlanMode;
  /** Default "bridge". */
  flags?: IpvlanFlag;
  /** Create the link directly in this namespace (the master stays here). */
  netns?: Netns;
  mtu?: number;
}

export interface MacvlanOptions {
  name: string;
  master: LinkRef;
  mode: MacvlanMode;
  netns?: Netns;
  mtu?: number;
  mac?: string;
}

export interface RtnlOptions {
  /** Per-request timeout (default 10 s): a wedged kernel answer fails the CNI call instead of hanging it. */
  timeoutMs?: number;
}

interface RawMessage {
  type: number;
  data: Buffer;
}

type CreateNetlink = (protocol: number, options?: object) => NetlinkSocket;
let createNetlink: CreateNetlink | undefined;

// Loaded on first use: commands that never talk to the kernel do not pay for the package.
function netlinkFactory(): CreateNetlink {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  createNetlink ??= (require('netlink/dist/netlink') as { createNetlink: CreateNetlink }).createNetlink;
  return createNetlink;
}

/**
 * One rtnetlink socket in one network namespace. The socket is bound to the namespace it was
 * created in, so after `openRtnl(ns)` every request acts inside `ns` while the process stays put.
 * Requests are serialized (the kernel allows one dump per socket at a time).
 */
export class Rtnl {
  readonly netns: Netns | undefined;
  readonly #sock: NetlinkSocket;
  readonly #timeoutMs: number;
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(sock: NetlinkSocket, netns: Netns | undefined, options: RtnlOptions = {}) {
    this.#sock = sock;
    this.netns = netns;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    // Socket-level errors surface through the pending request; keep them from crashing the process.
    sock.on('error', () => undefined);
  }

  // ---------- links ----------

  async listLinks(): Promise<Link[]> {
    return (await this.#dump(RTM.GETLINK, ifinfomsg(), 'RTM_GETLINK dump')).map(decodeLink);
  }

  /** The link, or a NetlinkError with code ENODEV. */
  async getLink(ref: LinkRef): Promise<Link> {
    const [reply] = await this.#request(RTM.GETLINK, Buffer.concat(selectLink(ref)), 0, `RTM_GETLINK ${ref}`);
    if (!reply) throw new NetlinkError(-19, `RTM_GETLINK ${ref}`);
    return decodeLink(reply);
  }

  async findLink(ref: LinkRef): Promise<Link | undefined> {
    try {
      return await this.getLink(ref);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async createVeth(o: VethOptions): Promise<void> {
    const payload = encodeVeth(
      { name: o.name, mtu: o.mtu, mac: o.mac },
      { name: o.peerName, mtu: o.mtu, mac: o.peerMac, netnsFd: o.peerNetns?.fd },
    );
    await this.#create(
      payload,
      `RTM_NEWLINK veth ${o.name} peer ${o.peerName}${o.peerNetns ? ` in ${o.peerNetns.path}` : ''}`,
    );
  }

  async createIpvlan(o: IpvlanOptions): Promise<void> {
    const master = await this.#index(o.master);
    const payload = encodeIpvlan({
      name: o.name,
      mtu: o.mtu,
      netnsFd: o.netns?.fd,
      master,
      mode: o.mode,
      flags: o.flags,
    });
    await this.#create(payload, `RTM_NEWLINK ipvlan ${o.name} master ${o.master} mode ${o.mode}`);
  }

  async createMacvlan(o: MacvlanOptions): Promise<void> {
    const master = await this.#index(o.master);
    const payload = encodeMacvlan({
      name: o.name,
      mtu: o.mtu,
      mac: o.mac,
      netnsFd: o.netns?.fd,
      master,
      mode: o.mode,
    });
    await this.#create(payload, `RTM_NEWLINK macvlan ${o.name} master ${o.master} mode ${o.mode}`);
  }

  async createBridge(o: { name: string; mtu?: number; mac?: string }): Promise<void> {
    await this.#create(encodeBridge(o), `RTM_NEWLINK bridge ${o.name}`);
  }

  /** Moves the link into `ns`; it keeps its name and disappears from this namespace. */
  async setNetns(ref: LinkRef, ns: Netns): Promise<void> {
    await this.#setLink(linkChanges.netns(ref, ns.fd), `move ${ref} to ${ns.path}`);
  }

  async setUp(ref: LinkRef): Promise<void> {
    await this.#setLink(linkChanges.up(ref), `set ${ref} up`);
  }

  async setDown(ref: LinkRef): Promise<void> {
    await this.#setLink(linkChanges.down(ref), `set ${ref} down`);
  }

  async setMtu(ref: LinkRef, mtu: number): Promise<void> {
    await this.#setLink(linkChanges.mtu(ref, mtu), `set ${ref} mtu ${mtu}`);
  }

  async setMac(ref: LinkRef, mac: string): Promise<void> {
    await this.#setLink(linkChanges.mac(ref, mac), `set ${ref} address ${mac}`);
  }

  /** Renames a link (kernels before 6.x refuse with EBUSY while it is up). */
  async rename(ref: LinkRef, newName: string): Promise<void> {
    const index = await this.#index(ref);
    await this.#setLink(linkChanges.rename(index, newName), `rename ${ref} to ${newName}`);
  }

  /** Deletes a link (for a veth, both ends). */
  async deleteLink(ref: LinkRef): Promise<void> {
    await this.#request(RTM.DELLINK, Buffer.concat(selectLink(ref)), 0, `RTM_DELLINK ${ref}`);
  }

  // ---------- addresses ----------

  async addAddress(
    dev: LinkRef,
    cidr: string,
    opts: AddressOptions & { replace?: boolean } = {},
  ): Promise<void> {
    const index = await this.#index(dev);
    const flags = NLM_F.CREATE | (opts.replace ? NLM_F.REPLACE : NLM_F.EXCL);
    await this.#request(
      RTM.NEWADDR,
      encodeAddress(index, cidr, opts),
      flags,
      `RTM_NEWADDR ${cidr} dev ${dev}`,
    );
  }

  async deleteAddress(dev: LinkRef, cidr: string): Promise<void> {
    const index = await this.#index(dev);
    await this.#request(
      RTM.DELADDR,
      encodeAddress(index, cidr, {}, true),
      0,
      `RTM_DELADDR ${cidr} dev ${dev}`,
    );
  }

  async listAddresses(filter: { dev?: LinkRef; family?: IpFamily } = {}): Promise<Address[]> {
    const index = filter.dev === undefined ? undefined : await this.#index(filter.dev);
    const all = (await this.#dump(RTM.GETADDR, addressFilter(filter.family), 'RTM_GETADDR dump')).map(
      decodeAddress,
    );
    return all.filter(
      (a) => (index === undefined || a.index === index) && (!filter.family || a.family === filter.family),
    );
  }

  // ---------- routes ----------

  async addRoute(spec: RouteSpec): Promise<void> {
    await this.#route(RTM.NEWROUTE, spec, NLM_F.CREATE | NLM_F.EXCL, 'RTM_NEWROUTE');
  }

  async replaceRoute(spec: RouteSpec): Promise<void> {
    await this.#route(RTM.NEWROUTE, spec, NLM_F.CREATE | NLM_F.REPLACE, 'RTM_NEWROUTE replace');
  }

  /** Fields left out match anything (as `ip route del`); ESRCH when no route matches. */
  async deleteRoute(spec: RouteSpec): Promise<void> {
    await this.#route(RTM.DELROUTE, spec, 0, 'RTM_DELROUTE');
  }

  /** Routes of one table (default main; "all" for every table). */
  async listRoutes(
    filter: { family?: IpFamily; table?: number | 'all'; dev?: LinkRef } = {},
  ): Promise<Route[]> {
    const oif = filter.dev === undefined ? undefined : await this.#index(filter.dev);
    const table = filter.table ?? 254;
    const all = (await this.#dump(RTM.GETROUTE, routeFilter(filter.family), 'RTM_GETROUTE dump')).map(
      decodeRoute,
    );
    return all.filter(
      (r) =>
        (table === 'all' || r.table === table) &&
        (oif === undefined || r.oif === oif) &&
        (!filter.family || r.family === filter.family),
    );
  }

  // ---------- neighbours ----------

  /** `ip neigh replace ADDRESS lladdr MAC dev DEV nud permanent` (state is configurable). */
  async replaceNeighbour(n: {
    dev: LinkRef;
    address: string;
    lladdr: string;
    state?: NeighbourState;
  }): Promise<void> {
    const index = await this.#index(n.dev);
    const payload = encodeNeighbour(index, n.address, n.lladdr, n.state ?? 'permanent');
    await this.#request(
      RTM.NEWNEIGH,
      payload,
      NLM_F.CREATE | NLM_F.REPLACE,
      `RTM_NEWNEIGH ${n.address} dev ${n.dev}`,
    );
  }

  async deleteNeighbour(n: { dev: LinkRef; address: string }): Promise<void> {
    const index = await this.#index(n.dev);
    await this.#request(
      RTM.DELNEIGH,
      encodeNeighbour(index, n.address, undefined, 'permanent'),
      0,
      `RTM_DELNEIGH ${n.address} dev ${n.dev}`,
    );
  }

  async listNeighbours(filter: { dev?: LinkRef; family?: IpFamily } = {}): Promise<Neighbour[]> {
    const index = filter.dev === undefined ? undefined : await this.#index(filter.dev);
    const all = (await this.#dump(RTM.GETNEIGH, neighbourFilter(filter.family), 'RTM_GETNEIGH dump')).map(
      decodeNeighbour,
    );
    return all.filter(
      (n) => (index === undefined || n.index === index) && (!filter.family || n.family === filter.family),
    );
  }

  // ---------- policy rules ----------

  /** `ip rule add`; EEXIST when an identical rule exists. */
  async addRule(spec: RuleSpec): Promise<void> {
    await this.#request(
      RTM.NEWRULE,
      encodeRule(spec),
      NLM_F.CREATE | NLM_F.EXCL,
      `RTM_NEWRULE ${describeRule(spec)}`,
    );
  }

  /** `ip rule del`; ENOENT when no rule matches. */
  async deleteRule(spec: RuleSpec): Promise<void> {
    await this.#request(RTM.DELRULE, encodeRule(spec), 0, `RTM_DELRULE ${describeRule(spec)}`);
  }

  async listRules(family: IpFamily = 4): Promise<Rule[]> {
    return (await this.#dump(RTM.GETRULE, ruleFilter(family), 'RTM_GETRULE dump')).map(decodeRule);
  }

  // ---------- lifecycle ----------

  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the socket; idempotent. The Netns stays open (the caller owns it). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sock.close();
  }

  // ---------- internals ----------

  async #index(ref: LinkRef): Promise<number> {
    if (typeof ref === 'number') {
      if (!Number.isInteger(ref) || ref <= 0) throw NetlinkError.invalid(`invalid ifindex ${ref}`);
      return ref;
    }
    return (await this.getLink(ref)).index;
  }

  async #create(payload: Buffer, operation: string): Promise<void> {
    try {
      await this.#request(RTM.NEWLINK, payload, NLM_F.CREATE | NLM_F.EXCL, operation);
    } catch (err) {
      // rtnl_newlink answers EOPNOTSUPP when no driver registers the kind (module missing).
      if (err instanceof NetlinkError && isUnsupported(err)) {
        throw new NetlinkError(err.errno, operation, 'this kernel has no driver for the link kind');
      }
      throw err;
    }
  }

  async #setLink(parts: Buffer[], operation: string): Promise<void> {
    await this.#request(RTM.NEWLINK, Buffer.concat(parts), 0, operation);
  }

  async #route(type: number, spec: RouteSpec, flags: number, op: string): Promise<void> {
    const oif = spec.dev === undefined ? undefined : await this.#index(spec.dev);
    const payload = encodeRoute(spec, oif, type === RTM.DELROUTE);
    await this.#request(type, payload, flags, `${op} ${describeRoute(spec)}`);
  }

  #dump(type: number, payload: Buffer, operation: string): Promise<Buffer[]> {
    return this.#request(type, payload, NLM_F.DUMP, operation);
  }

  /** Sends one request and returns the payloads of the replies (none for a plain ACK). */
  #request(type: number, payload: Buffer, flags: number, operation: string): Promise<Buffer[]> {
    const run = async (): Promise<Buffer[]> => {
      if (this.#closed) throw new NetlinkError(-9, operation, 'rtnetlink socket is closed');
      let msgs: RawMessage[];
      try {
        [msgs] = await this.#sock.request(type, payload, {
          flags,
          checkError: false,
          timeout: this.#timeoutMs,
        });
      } catch (err) {
        const errno = (err as { errno?: unknown }).errno;
        if (typeof errno === 'number') throw new NetlinkError(errno, operation);
        if (/timeout/i.test(String((err as Error).message))) throw new NetlinkError(-110, operation);
        throw err;
      }
      const out: Buffer[] = [];
      for (const m of msgs) {
        if (m.type === NLMSG_ERROR) {
          const errno = m.data.readInt32LE(0);
          if (errno !== 0) throw new NetlinkError(errno, operation);
        } else {
          out.push(m.data);
        }
      }
      return out;
    };
    const result = this.#tail.then(run, run);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}

function describeRoute(s: RouteSpec): string {
  return [
    s.dst,
    s.gateway && `via ${s.gateway}`,
    s.dev !== undefined && `dev ${s.dev}`,
    s.table !== undefined && `table ${s.table}`,
    s.onlink && 'onlink',
  ]
    .filter(Boolean)
    .join(' ');
}

function describeRule(s: RuleSpec): string {
  return [
    s.priority !== undefined && `pref ${s.priority}`,
    s.from && `from ${s.from}`,
    s.to && `to ${s.to}`,
    s.iif && `iif ${s.iif}`,
    s.oif && `oif ${s.oif}`,
    `table ${s.table}`,
  ]
    .filter(Boolean)
    .join(' ');
}

/**
 * An rtnetlink socket inside `ns` (the current namespace when omitted). The `netlink` package
 * creates its socket in a constructor, so it is constructed with the main thread briefly inside
 * the namespace (Netns.runSync); afterwards everything is async on the socket.
 */
export function openRtnl(ns?: Netns, options?: RtnlOptions): Rtnl {
  const create = netlinkFactory();
  const sock = ns ? ns.runSync(() => create(NETLINK_ROUTE)) : create(NETLINK_ROUTE);
  return new Rtnl(sock, ns, options);
}
