/**
 * eni mode (exclusive ENI, Terway's "ENI" mode): the pod gets a whole elastic network interface.
 * ADD asks the ENI daemon for a dedicated ENI (`allocate` with `exclusive: true`: created,
 * attached, described), moves its link from the node into the pod's netns as CNI_IFNAME and
 * configures it from the allocation (the ENI's primary address with the vSwitch prefix, default
 * route via the vSwitch gateway, IPv6 likewise in dual stack). The agent attaches the datapath to
 * that interface inside the pod (attachInPod; parent device: the ENI's name on the node).
 * DEL moves it back to the node under its original name, down, and releases it (the daemon
 * detaches and deletes the ENI) — in that order: a detached NIC would vanish from the pod.
 *
 * The daemon is named by the `ipam` section, which is optional and must be weft-eni's:
 *   { "type": "weft-cni", "mode": "eni", "ipam": { "type": "weft-eni", "socket": "/var/run/weft/eni.sock" } }
 * weft-cni talks to the daemon itself (the IPAM plugin only hands out shared addresses).
 */
import {
  CniError,
  CNI_ERR_INVALID_NETCONF,
  CNI_ERR_PLUGIN_NOT_AVAILABLE,
  type CniContext,
  type CniResult,
  type CniRoute,
} from '@weft/cni';
import { openRtnl } from '@weft/netlink';
import { Netns } from '@weft/netns';
import {
  agentKnows,
  agentStatus,
  registerEndpoint,
  removeEndpoint,
  type Registered,
} from '../../pod/agent-link';
import { AttachmentStore, type AttachmentRecord } from '../../pod/attachment-store';
import { asCniError, eniDaemonConf, eniPodClient, type EniDaemonConf } from '../../pod/eni-daemon';
import { bestEffort, checkFailed, familyOf, interfaceConflict } from '../../pod/pod-addressing';
import { parseWeftConf, type WeftConf } from '../../pod/pod-conf';
import type { ModeHandlers } from '../registry';
import { registrationBase } from '../../pod/registration';

export const eniMode: ModeHandlers = { add, del, check, gc, status };

const DEFAULT_ENI_SOCKET = '/var/run/weft/eni.sock';

interface EniRecord extends AttachmentRecord {
  eniId?: string;
  eniMac?: string;
  /** The ENI's name on the node, given back on DEL. */
  nodeIfname?: string;
}

function conf(ctx: CniContext): { w: WeftConf; daemon: EniDaemonConf } {
  const w = parseWeftConf(ctx.conf);
  return { w, daemon: eniDaemonConf(ctx.conf, DEFAULT_ENI_SOCKET) };
}

async function add(ctx: CniContext): Promise<CniResult> {
  const { w, daemon } = conf(ctx);
  const base = registrationBase(ctx, w, 'eni');
  const { EniDaemonClient, findEniLink, moveEniIntoPod, moveEniBack } = await eniPodClient();
  const client = new EniDaemonClient(daemon.socket, daemon.timeoutMs);
  const ref = { containerId: ctx.containerId, ifname: ctx.ifname };
  const store = new AttachmentStore(w.stateDir, w.network);
  const previous = store.get(ctx.containerId, ctx.ifname) as EniRecord | undefined;
  const pod = Netns.open(ctx.netns);
  let allocated = false;
  let moved = false;
  let registered: Registered | undefined;
  let record: EniRecord | undefined;
  try {
    const podRtnl = openRtnl(pod);
    try {
      const inPod = await podRtnl.findLink(ctx.ifname);
      if (inPod && !(previous?.eniMac && inPod.mac?.toLowerCase() === previous.eniMac.toLowerCase())) {
        throw interfaceConflict(ctx.ifname, inPod, 'it is not the ENI weft-cni gave this container');
      }
    } finally {
      podRtnl.close();
    }

    const a = await asCniError(
      client.allocate({
        ...ref,
        netns: ctx.netns,
        network: w.network,
        exclusive: true,
        podNamespace: ctx.args.K8S_POD_NAMESPACE,
        podName: ctx.args.K8S_POD_NAME,
        podUid: ctx.args.K8S_POD_UID,
      }),
    );
    allocated = true;
    if (!a.ipv4 || !a.eni.mac)
      throw new CniError(
        CNI_ERR_INVALID_NETCONF,
        `the ENI daemon gave ${a.eni.id} without an IPv4 address or MAC`,
      );
    // Its name on the node, recorded before it moves: DEL gives it back. A repeated ADD finds it
    // in the pod already and keeps the name the first ADD recorded.
    const again = previous?.eniMac === a.eni.mac && previous.nodeIfname;
    const nodeIfname = again
      ? previous.nodeIfname
      : (await findEniLink(pod, a.eni.mac))
        ? undefined
        : (await waitForNodeLink(findEniLink, a.eni.mac, 5_000))?.name;
    const ips = [a.ipv4.address, ...(a.ipv6 ? [a.ipv6.address] : [])];
    record = {
      containerId: ctx.containerId,
      ifname: ctx.ifname,
      network: w.network,
      mode: 'eni',
      netns: ctx.netns,
      ips,
      podIfname: ctx.ifname,
      parentDevice: nodeIfname,
      eniId: a.eni.id,
      eniMac: a.eni.mac,
      nodeIfname,
      registeredWith: 'none',
      createdAt: new Date().toISOString(),
    };
    store.put(record);

    moved = true;
    await moveEniIntoPod(undefined, pod, {
      mac: a.eni.mac,
      ifname: ctx.ifname,
      address: a.ipv4.address,
      prefixLength: a.ipv4.prefixLength,
      gateway: a.ipv4.gateway,
      ...(a.ipv6 ? { ipv6: a.ipv6 } : {}),
      ...(ctx.conf.mtu !== undefined ? { mtu: w.mtu } : {}),
    });
    const routes = await extraRoutes(pod, ctx.ifname, daemon.routes, a.ipv4.gateway, a.ipv6?.gateway);
    const podRtnl2 = openRtnl(pod);
    const podLink = await podRtnl2.getLink(ctx.ifname).finally(() => podRtnl2.close());

    registered = await registerEndpoint(
      w,
      {
        ...base,
        ips,
        podIfname: ctx.ifname,
        podMac: podLink.mac,
        attachInPod: true,
        parentDevice: nodeIfname ?? a.eni.id,
      },
      ctx.logger,
    );
    store.put({ ...record, registeredWith: registered.registeredWith, endpointId: registered.endpointId });

    const addrs = [a.ipv4, ...(a.ipv6 ? [a.ipv6] : [])];
    return {
      cniVersion: ctx.conf.cniVersion,
      interfaces: [{ name: ctx.ifname, mac: podLink.mac, mtu: podLink.mtu, sandbox: ctx.netns }],
      ips: addrs.map((x) => ({
        address: `${x.address}/${x.prefixLength}`,
        gateway: x.gateway,
        interface: 0,
      })),
      routes: [
        ...addrs.map((x) => ({ dst: familyOf(x.address) === 4 ? '0.0.0.0/0' : '::/0', gw: x.gateway })),
        ...routes,
      ],
    };
  } catch (err) {
    const step = bestEffort(ctx.logger, 'ADD rollback');
    if (registered)
      await step('endpoint removal', () => removeEndpoint(w, ref, ctx.logger, registered!.registeredWith));
    if (moved && record?.eniMac)
      await step('ENI move back', () => moveEniBack(undefined, pod, record!.eniMac!, record!.nodeIfname));
    // The ENI goes back in the same function that got it: a failed ADD never leaks one.
    if (allocated) await step('ENI release', () => asCniError(client.release(ref)));
    if (allocated) store.remove(ctx.containerId, ctx.ifname);
    throw err;
  } finally {
    pod.close();
  }
}

/** IPAM-style routes of the ipam section (other than the defaults) via the ENI's gateway. */
async function extraRoutes(
  pod: Netns,
  ifname: string,
  wanted: readonly CniRoute[],
  gw4: string,
  gw6: string | undefined,
): Promise<CniRoute[]> {
  const out: CniRoute[] = [];
  const rtnl = openRtnl(pod);
  try {
    for (const r of wanted) {
      if (/^(0\.0\.0\.0|::)\/0$/.test(r.dst)) continue;
      const gw = r.gw ?? (familyOf(r.dst.split('/')[0]!) === 4 ? gw4 : gw6);
      if (!gw) continue;
      await rtnl.replaceRoute({ dst: r.dst, gateway: gw, dev: ifname, onlink: true });
      out.push({ dst: r.dst, gw });
    }
  } finally {
    rtnl.close();
  }
  return out;
}

async function del(ctx: CniContext): Promise<void> {
  const w = parseWeftConf(ctx.conf);
  let daemon: EniDaemonConf | undefined;
  try {
    daemon = eniDaemonConf(ctx.conf, DEFAULT_ENI_SOCKET);
  } catch (err) {
    ctx.logger.warn('DEL: no usable ENI daemon settings; the ENI is left to the daemon GC', {
      err: (err as Error).message,
    });
  }
  const ref = { containerId: ctx.containerId, ifname: ctx.ifname };
  const store = new AttachmentStore(w.stateDir, w.network);
  const record = store.get(ctx.containerId, ctx.ifname) as EniRecord | undefined;
  const warn = (what: string, err: unknown) =>
    ctx.logger.warn(`DEL: ${what} failed`, { err: (err as Error).message });
  await removeEndpoint(w, ref, ctx.logger, record?.registeredWith).catch((err) =>
    warn('endpoint removal', err),
  );
  if (daemon) await giveBack(ctx, daemon, ref, record, ctx.netns || record?.netns || '', warn);
  store.remove(ctx.containerId, ctx.ifname);
}

/**
 * The ENI back to the node, then released. DEL never fails for a daemon that is down: an
 * allocation left behind is released by the daemon's GC (dead netns, CNI GC) — after the pod's
 * netns is gone the NIC is back in the root namespace anyway.
 */
async function giveBack(
  ctx: CniContext,
  daemon: EniDaemonConf,
  ref: { containerId: string; ifname: string },
  record: EniRecord | undefined,
  netns: string,
  warn: (what: string, err: unknown) => void,
): Promise<void> {
  const { EniDaemonClient, moveEniBack } = await eniPodClient();
  const client = new EniDaemonClient(daemon.socket, daemon.timeoutMs);
  let mac = record?.eniMac;
  if (!mac)
    mac = await client.check(ref).then(
      (a) => a.eni.mac,
      () => undefined,
    );
  if (mac) {
    try {
      await moveEniBack(undefined, netns || undefined, mac, record?.nodeIfname);
    } catch (err) {
      warn('ENI move back', err);
    }
  }
  try {
    await client.release(ref);
  } catch (err) {
    warn('ENI release (left to the daemon GC)', err);
  }
}

async function check(ctx: CniContext): Promise<void> {
  const { w, daemon } = conf(ctx);
  const prev = ctx.prevResult;
  if (!prev) throw new CniError(CNI_ERR_INVALID_NETCONF, 'CHECK needs a prevResult (the result of ADD)');
  const { EniDaemonClient } = await eniPodClient();
  const a = await asCniError(
    new EniDaemonClient(daemon.socket, daemon.timeoutMs).check({
      containerId: ctx.containerId,
      ifname: ctx.ifname,
    }),
  );
  const pod = Netns.open(ctx.netns);
  const rtnl = openRtnl(pod);
  try {
    const link = await rtnl.findLink(ctx.ifname);
    if (!link) checkFailed(`interface ${ctx.ifname} does not exist in the pod's namespace`);
    if (link.mac?.toLowerCase() !== a.eni.mac.toLowerCase())
      checkFailed(`${ctx.ifname} has MAC ${link.mac}, the ENI ${a.eni.id} has ${a.eni.mac}`);
    if (!link.up) checkFailed(`${ctx.ifname} is down`);
    const have = new Set((await rtnl.listAddresses({ dev: link.index })).map((x) => x.cidr));
    for (const ip of prev.ips ?? [])
      if (!have.has(ip.address)) checkFailed(`${ctx.ifname} lacks address ${ip.address}`);
    for (const x of [a.ipv4, a.ipv6]) {
      if (!x) continue;
      if (!(prev.ips ?? []).some((ip) => ip.address.split('/')[0] === x.address))
        checkFailed(`the ENI's address ${x.address} is not in prevResult`);
      const family = familyOf(x.address);
      const routes = await rtnl.listRoutes({ family, dev: link.index });
      if (!routes.some((r) => r.dst === 'default' && r.gateway === x.gateway))
        checkFailed(`the pod has no IPv${family} default route via ${x.gateway}`);
    }
    const known = await agentKnows(w, ctx);
    if (known === false) checkFailed(`weft-agent has no endpoint for ${ctx.containerId}:${ctx.ifname}`);
  } finally {
    rtnl.close();
    pod.close();
  }
}

async function gc(ctx: CniContext): Promise<void> {
  const { w, daemon } = conf(ctx);
  const store = new AttachmentStore(w.stateDir, w.network);
  const valid = new Set(ctx.validAttachments.map((a) => `${a.containerID}:${a.ifname}`));
  for (const r of store.list() as EniRecord[]) {
    if (r.mode !== 'eni' || valid.has(`${r.containerId}:${r.ifname}`)) continue;
    ctx.logger.info('GC: removing a stale attachment', { containerId: r.containerId, ifname: r.ifname });
    const warn = (what: string, err: unknown) =>
      ctx.logger.warn(`GC: ${what} failed`, { err: (err as Error).message });
    await removeEndpoint(w, r, ctx.logger, r.registeredWith).catch((err) => warn('endpoint removal', err));
    await giveBack(ctx, daemon, r, r, r.netns, warn);
    store.remove(r.containerId, r.ifname);
  }
  // Then the daemon's own view: allocations of this network not in the list (ours were moved back above).
  const { EniDaemonClient } = await eniPodClient();
  const list = ctx.validAttachments.map((v) => ({ containerId: v.containerID, ifname: v.ifname }));
  await asCniError(new EniDaemonClient(daemon.socket, daemon.timeoutMs).gc(list, w.network));
}

/** Only for eni networks (STATUS asks every mode): agent, daemon reachable, an ENI left to give. */
async function status(ctx: CniContext): Promise<void> {
  if (ctx.conf.mode !== 'eni') return;
  const { w, daemon } = conf(ctx);
  await agentStatus(w);
  const { EniDaemonClient } = await eniPodClient();
  let st;
  try {
    st = await new EniDaemonClient(daemon.socket, 5_000).status();
  } catch (err) {
    throw new CniError(CNI_ERR_PLUGIN_NOT_AVAILABLE, 'ENI daemon not reachable', (err as Error).message);
  }
  if (!st.ready) throw new CniError(CNI_ERR_PLUGIN_NOT_AVAILABLE, 'the ENI daemon is still starting');
  if (st.enis >= st.maxEni)
    throw new CniError(
      CNI_ERR_PLUGIN_NOT_AVAILABLE,
      `no ENI left on this node (${st.enis} of ${st.maxEni} in use)`,
    );
}

/** The ENI's link on the node, waited for (a hot-plugged NIC may show up after the cloud says InUse). */
async function waitForNodeLink(
  findEniLink: (ns: undefined, mac: string) => Promise<{ name: string } | undefined>,
  mac: string,
  ms: number,
): Promise<{ name: string } | undefined> {
  const deadline = Date.now() + ms;
  for (let wait = 20; ; wait = Math.min(wait * 2, 500)) {
    const link = await findEniLink(undefined, mac);
    if (link || Date.now() > deadline) return link;
    await new Promise((r) => setTimeout(r, wait));
  }
}
