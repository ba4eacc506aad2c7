/**
 * ipvlan mode (Terway's ENIIP/IPvlan datapath shape): CNI_IFNAME is an ipvlan link of `master`,
 * created directly inside the pod's namespace, in `ipvlanMode` (l2 | l3 | l3s), with the master's
 * MTU unless `mtu` says otherwise. There is no host veth: the agent attaches the BPF programs to
 * the pod interface inside the pod's netns (from-container on tc egress, to-container on tc
 * ingress), and the endpoint names the master as its parent device.
 *
 * Addressing (pod/ipvlan-addressing.ts): L2 — the IPAM address with its prefix and a default
 * route via the IPAM gateway on the master's subnet; L3/L3S — /32 (/128) and default routes out
 * of the device. The node reaches its pods through a slave of its own, `wipvl<master ifindex>`,
 * with a host route per pod (pod/ipvlan-host.ts; `"ipvlanHostLink": false` turns it off).
 *
 * With `ipam.type: weft-eni` (shared ENI, "ENIIP"), the master is not configured: it is the ENI
 * that holds the pod's address (the daemon picks it), found by its MAC after the allocation, so
 * the pod's traffic leaves through the ENI that owns its address. `master` must then be left out.
 */
import {
  CniError,
  CNI_ERR_INVALID_NETCONF,
  CNI_ERR_PLUGIN_NOT_AVAILABLE,
  type CniContext,
  type CniResult,
  type NetConf,
} from '@weft/cni';
import { isNotFound, openRtnl, type Link, type Rtnl } from '@weft/netlink';
import { Netns } from '@weft/netns';
import {
  agentKnows,
  agentStatus,
  registerEndpoint,
  removeEndpoint,
  type Registered,
} from '../../pod/agent-link';
import { AttachmentStore, type AttachmentRecord } from '../../pod/attachment-store';
import { eniDaemonConf, eniMasterOf, usesEniIpam } from '../../pod/eni-daemon';
import {
  addressesOf,
  ipamAdd,
  ipamCheck,
  ipamDel,
  ipamGc,
  ipamRepeatsAddresses,
  ipamStatus,
} from '../../pod/ipam';
import { checkIpvlanPod, configureIpvlanPod, podIpsOf } from '../../pod/ipvlan-addressing';
import {
  addPodRoutes,
  assertMasterMode,
  ensureHostLink,
  hostReachable,
  ipvlanHostLinkName,
  ipvlanModeOf,
  missingPodRoutes,
  nodeSourceAddress,
  pinNodeRoute,
  removeHostLinkIfUnused,
  removePodRoutes,
  withMasterLock,
} from '../../pod/ipvlan-host';
import { bestEffort, checkFailed, interfaceConflict } from '../../pod/pod-addressing';
import { parseWeftConf, requireIpam, type IpvlanMode, type WeftConf } from '../../pod/pod-conf';
import type { ModeHandlers } from '../registry';
import { registrationBase } from '../../pod/registration';

export const ipvlanMode: ModeHandlers = { add, del, check, gc, status };

const DEFAULT_ENI_SOCKET = '/var/run/weft/eni.sock';

/** What the attachment record keeps beyond the common fields. */
interface IpvlanRecord extends AttachmentRecord {
  ipvlanMode: IpvlanMode;
  /** The node-side slave the host routes are on (undefined: ipvlanHostLink false). */
  hostLink?: string;
  /** The node's address the host routes come from (and, in L2, pinned in the pod). */
  nodeAddress?: string;
}

interface IpvlanConf {
  w: WeftConf;
  /** Node-side slave + host routes (default true). */
  hostLink: boolean;
  /** ipam weft-eni: the master is the ENI of the allocation. */
  eniMaster: boolean;
}

function invalid(key: string, value: unknown, expected: string): never {
  throw new CniError(
    CNI_ERR_INVALID_NETCONF,
    `invalid network config: ${key} ${JSON.stringify(value)} (expected ${expected})`,
  );
}

/** Every refusal (7) happens here, before anything on the node is touched. */
function parseIpvlanConf(conf: NetConf): IpvlanConf {
  const w = parseWeftConf(conf);
  const hostLink = conf.ipvlanHostLink ?? true;
  if (typeof hostLink !== 'boolean') invalid('ipvlanHostLink', hostLink, 'true or false');
  const eniMaster = usesEniIpam(conf);
  if (eniMaster) {
    eniDaemonConf(conf, DEFAULT_ENI_SOCKET);
    if (w.master !== undefined)
      invalid(
        'master',
        w.master,
        'no master with ipam weft-eni: the pod hangs off the ENI that holds its address',
      );
  } else if (w.master === undefined) {
    invalid(
      'master',
      undefined,
      "the name of the interface the pods' ipvlan links hang off (required in ipvlan mode)",
    );
  }
  return { w, hostLink, eniMaster };
}

/** The configured master, checked (7) before IPAM. */
async function configuredMaster(hostRtnl: Rtnl, conf: NetConf, w: WeftConf): Promise<Link> {
  const master = await hostRtnl.findLink(w.master!);
  if (!master)
    throw new CniError(
      CNI_ERR_INVALID_NETCONF,
      `invalid network config: master "${w.master}" does not exist on this node`,
    );
  assertUsableMaster(master, conf);
  return master;
}

function assertUsableMaster(master: Link, conf: NetConf): void {
  const LOOPBACK = 0x8;
  if (master.flags & LOOPBACK || !master.mac || master.mac === '00:00:00:00:00:00')
    throw new CniError(
      CNI_ERR_INVALID_NETCONF,
      `invalid network config: master "${master.name}" is not an Ethernet device`,
    );
  if (conf.mtu !== undefined && conf.mtu > master.mtu)
    invalid('mtu', conf.mtu, `at most the MTU of master ${master.name} (${master.mtu})`);
}

async function add(ctx: CniContext): Promise<CniResult> {
  const { w, hostLink, eniMaster } = parseIpvlanConf(ctx.conf);
  requireIpam(w);
  const base = registrationBase(ctx, w, 'ipvlan');
  const store = new AttachmentStore(w.stateDir, w.network);
  const hostRtnl = openRtnl();
  let pod: Netns | undefined;
  let podRtnl: Rtnl | undefined;
  let allocated: CniResult | undefined;
  let registered: Registered | undefined;
  let created = false;
  let routed: { hostLink: string; ips: string[] } | undefined;
  try {
    let master = eniMaster ? undefined : await configuredMaster(hostRtnl, ctx.conf, w);
    if (master && hostLink) await assertMasterMode(hostRtnl, master, w.ipvlanMode);
    pod = Netns.open(ctx.netns);
    podRtnl = openRtnl(pod);
    await clearPreviousAttempt(podRtnl, store, ctx);

    allocated = await ipamAdd(ctx);
    const ips = podIpsOf(allocated);
    if (ips.length === 0)
      throw new CniError(CNI_ERR_INVALID_NETCONF, `IPAM ${w.ipam!.type} returned no address`);
    if (!master) {
      master = await eniMasterOf(hostRtnl, eniDaemonConf(ctx.conf, DEFAULT_ENI_SOCKET), ctx);
      assertUsableMaster(master, ctx.conf);
      if (hostLink) await assertMasterMode(hostRtnl, master, w.ipvlanMode);
    }
    const bare = ips.map((ip) => ip.address);
    const hostLinkName = hostLink ? ipvlanHostLinkName(master) : undefined;
    const record: IpvlanRecord = {
      containerId: ctx.containerId,
      ifname: ctx.ifname,
      network: w.network,
      mode: 'ipvlan',
      netns: ctx.netns,
      ips: bare,
      podIfname: ctx.ifname,
      parentDevice: master.name,
      ipvlanMode: w.ipvlanMode,
      ...(hostLinkName ? { hostLink: hostLinkName } : {}),
      registeredWith: 'none',
      ipamResult: allocated,
      createdAt: new Date().toISOString(),
    };
    store.put(record); // before the link exists: GC can always find what ADD made

    const mtu = ctx.conf.mtu ?? master.mtu;
    await hostRtnl.createIpvlan({
      name: ctx.ifname,
      master: master.index,
      mode: w.ipvlanMode,
      flags: 'bridge',
      netns: pod,
      mtu,
    });
    created = true;
    const podLink = await podRtnl.getLink(ctx.ifname);
    const addressing = await configureIpvlanPod(podRtnl, podLink, w.ipvlanMode, ips, allocated.routes ?? []);

    if (hostLinkName) {
      const reach = hostReachable(w.ipvlanMode, bare);
      const nodeAddress = await nodeSourceAddress(hostRtnl, master);
      await withMasterLock(w.stateDir, hostLinkName, async () => {
        const slave = await ensureHostLink(hostRtnl, master, w.ipvlanMode);
        routed = { hostLink: hostLinkName, ips: reach };
        await addPodRoutes(hostRtnl, slave, master, w.ipvlanMode, reach, nodeAddress);
      });
      if (nodeAddress && w.ipvlanMode === 'l2' && reach.length > 0)
        await pinNodeRoute(podRtnl, podLink, master, nodeAddress);
      if (nodeAddress) record.nodeAddress = nodeAddress;
    }

    registered = await registerEndpoint(
      w,
      {
        ...base,
        ips: bare,
        podIfname: ctx.ifname,
        podMac: podLink.mac,
        attachInPod: true,
        parentDevice: master.name,
      },
      ctx.logger,
    );
    store.put({ ...record, registeredWith: registered.registeredWith, endpointId: registered.endpointId });

    return {
      cniVersion: ctx.conf.cniVersion,
      interfaces: [{ name: ctx.ifname, mac: podLink.mac, mtu, sandbox: ctx.netns }],
      ips: addressing.ips,
      routes: addressing.routes,
      ...(allocated.dns && Object.keys(allocated.dns).length ? { dns: allocated.dns } : {}),
    };
  } catch (err) {
    const step = bestEffort(ctx.logger, 'ADD rollback');
    const ref = { containerId: ctx.containerId, ifname: ctx.ifname };
    if (registered)
      await step('endpoint removal', () => removeEndpoint(w, ref, ctx.logger, registered!.registeredWith));
    if (routed) {
      const r = routed;
      await step('host routes', () =>
        withMasterLock(w.stateDir, r.hostLink, async () => {
          await removePodRoutes(hostRtnl, r.hostLink, r.ips);
          await removeHostLinkIfUnused(hostRtnl, r.hostLink);
        }),
      );
    }
    if (created && podRtnl)
      await step('pod link deletion', () => podRtnl!.deleteLink(ctx.ifname).catch(ignoreNotFound));
    // The address goes back in the same function that got it: a failed ADD never leaks one.
    if (allocated) await step('IPAM release', () => ipamDel(ctx));
    if (allocated) store.remove(ctx.containerId, ctx.ifname);
    throw err;
  } finally {
    hostRtnl.close();
    podRtnl?.close();
    pod?.close();
  }
}

/**
 * A repeated ADD starts over: our own ipvlan from the earlier ADD is removed, and its address
 * released unless the IPAM plugin hands it back anyway (ipamRepeatsAddresses). An interface of
 * that name that is not ours is a conflict.
 */
async function clearPreviousAttempt(podRtnl: Rtnl, store: AttachmentStore, ctx: CniContext): Promise<void> {
  const rec = store.get(ctx.containerId, ctx.ifname);
  const inPod = await podRtnl.findLink(ctx.ifname);
  if (inPod) {
    if (!(inPod.kind === 'ipvlan' && rec?.mode === 'ipvlan' && rec.netns === ctx.netns))
      throw interfaceConflict(ctx.ifname, inPod);
    await podRtnl.deleteLink(inPod.index).catch(ignoreNotFound);
  }
  if (rec?.mode === 'ipvlan' && !ipamRepeatsAddresses(ctx.conf)) await ipamDel(ctx);
}

/** Removes the pod link (when its netns is still there) and the host routes of a record. */
async function teardown(
  w: WeftConf,
  hostRtnl: Rtnl,
  r: { netns: string; ifname: string; ips: string[]; hostLink?: string },
  warn: (what: string, err: unknown) => void,
): Promise<void> {
  if (r.netns) {
    try {
      const ns = Netns.tryOpen(r.netns);
      if (ns) {
        const rtnl = openRtnl(ns);
        try {
          const link = await rtnl.findLink(r.ifname);
          // Only an ipvlan: whatever else has this name in the pod is not ours to delete.
          if (link?.kind === 'ipvlan') await rtnl.deleteLink(link.index).catch(ignoreNotFound);
        } finally {
          rtnl.close();
          ns.close();
        }
      }
    } catch (err) {
      warn('pod link deletion', err);
    }
  }
  if (r.ips.length === 0) return;
  // Without a record the slave is not known: the addresses' routes are looked for on every one.
  let slaves: string[] = r.hostLink ? [r.hostLink] : [];
  if (!r.hostLink) {
    try {
      slaves = (await hostRtnl.listLinks())
        .filter((l) => l.kind === 'ipvlan' && /^wipvl\d+$/.test(l.name))
        .map((l) => l.name);
    } catch (err) {
      warn('host link listing', err);
    }
  }
  for (const name of slaves) {
    try {
      await withMasterLock(w.stateDir, name, async () => {
        await removePodRoutes(hostRtnl, name, r.ips);
        await removeHostLinkIfUnused(hostRtnl, name);
      });
    } catch (err) {
      warn('host route removal', err);
    }
  }
}

async function del(ctx: CniContext): Promise<void> {
  const w = parseWeftConf(ctx.conf);
  const ref = { containerId: ctx.containerId, ifname: ctx.ifname };
  const store = new AttachmentStore(w.stateDir, w.network);
  const record = store.get(ctx.containerId, ctx.ifname) as IpvlanRecord | undefined;
  let warnings = 0;
  const warn = (what: string, err: unknown) => {
    warnings++;
    ctx.logger.warn(`DEL: ${what} failed`, { err: (err as Error).message });
  };
  try {
    await removeEndpoint(w, ref, ctx.logger, record?.registeredWith);
  } catch (err) {
    warn('endpoint removal', err);
  }
  const hostRtnl = openRtnl();
  try {
    await teardown(
      w,
      hostRtnl,
      {
        netns: ctx.netns || record?.netns || '',
        ifname: ctx.ifname,
        // Without a record (an earlier DEL finished), the runtime's cached result still says which addresses.
        ips: record?.ips ?? (ctx.prevResult ? addressesOf(ctx.prevResult) : []),
        hostLink: record?.hostLink,
      },
      warn,
    );
  } finally {
    hostRtnl.close();
  }
  // Released even when everything else is gone: that is the whole point of a DEL after a crash.
  let ipamFailure: unknown;
  if (w.ipam) {
    try {
      await ipamDel(ctx);
    } catch (err) {
      ipamFailure = err;
    }
  }
  store.remove(ctx.containerId, ctx.ifname);
  if (ipamFailure) throw ipamFailure;
  if (warnings) ctx.logger.info('DEL finished with cleanup warnings', { count: warnings });
}

async function check(ctx: CniContext): Promise<void> {
  const { w } = parseIpvlanConf(ctx.conf);
  const prev = ctx.prevResult;
  if (!prev) throw new CniError(CNI_ERR_INVALID_NETCONF, 'CHECK needs a prevResult (the result of ADD)');
  const store = new AttachmentStore(w.stateDir, w.network);
  const record = store.get(ctx.containerId, ctx.ifname) as IpvlanRecord | undefined;
  const pod = Netns.open(ctx.netns);
  const hostRtnl = openRtnl();
  const podRtnl = openRtnl(pod);
  try {
    const podLink = await podRtnl.findLink(ctx.ifname);
    if (!podLink) checkFailed(`interface ${ctx.ifname} does not exist in the pod's namespace`);
    if (podLink.kind !== 'ipvlan')
      checkFailed(`${ctx.ifname} is a ${podLink.kind ?? 'device'}, not an ipvlan link`);
    if (!podLink.up) checkFailed(`${ctx.ifname} is down`);
    const mode = ipvlanModeOf(podLink);
    if (mode !== w.ipvlanMode)
      checkFailed(`${ctx.ifname} is in ipvlan mode ${mode}, the network says ${w.ipvlanMode}`);
    const expectedIf = (prev.interfaces ?? []).find((i) => i.name === ctx.ifname && i.sandbox);
    if (expectedIf?.mac && expectedIf.mac.toLowerCase() !== podLink.mac?.toLowerCase())
      checkFailed(`${ctx.ifname} has MAC ${podLink.mac}, the result says ${expectedIf.mac}`);
    if (w.master !== undefined) {
      const master = await hostRtnl.findLink(w.master);
      if (!master) checkFailed(`master ${w.master} does not exist`);
      if (master.mac?.toLowerCase() !== podLink.mac?.toLowerCase())
        checkFailed(`${ctx.ifname} is not an ipvlan link of ${w.master}`);
    }
    await checkIpvlanPod(podRtnl, podLink, prev);
    if (record?.hostLink) {
      const missing = await missingPodRoutes(
        hostRtnl,
        record.hostLink,
        hostReachable(w.ipvlanMode, addressesOf(prev)),
      );
      if (missing.length)
        checkFailed(`the node has no route to ${missing.join(', ')} via ${record.hostLink}`);
    }
    // IPAM checks against what it handed out (the L3 result's /32s are weft's, not IPAM's).
    if (w.ipam) await ipamCheck(ctx, record?.ipamResult ?? prev);
    const known = await agentKnows(w, ctx);
    if (known === false) checkFailed(`weft-agent has no endpoint for ${ctx.containerId}:${ctx.ifname}`);
  } finally {
    hostRtnl.close();
    podRtnl.close();
    pod.close();
  }
}

async function gc(ctx: CniContext): Promise<void> {
  const w = parseWeftConf(ctx.conf);
  const store = new AttachmentStore(w.stateDir, w.network);
  const valid = new Set(ctx.validAttachments.map((a) => `${a.containerID}:${a.ifname}`));
  const hostRtnl = openRtnl();
  try {
    for (const r of store.list() as IpvlanRecord[]) {
      if (r.mode !== 'ipvlan' || valid.has(`${r.containerId}:${r.ifname}`)) continue;
      ctx.logger.info('GC: removing a stale attachment', { containerId: r.containerId, ifname: r.ifname });
      await removeEndpoint(w, r, ctx.logger, r.registeredWith).catch((err: Error) =>
        ctx.logger.warn('GC: endpoint removal failed', { err: err.message }),
      );
      await teardown(w, hostRtnl, r, (what, err) =>
        ctx.logger.warn(`GC: ${what} failed`, { err: (err as Error).message }),
      );
      store.remove(r.containerId, r.ifname);
    }
  } finally {
    hostRtnl.close();
  }
  if (w.ipam) await ipamGc(ctx);
}

/** Only for ipvlan networks (STATUS asks every mode): agent, master present, IPAM. */
async function status(ctx: CniContext): Promise<void> {
  if (ctx.conf.mode !== 'ipvlan') return;
  const { w } = parseIpvlanConf(ctx.conf);
  await agentStatus(w);
  if (w.master !== undefined) {
    const hostRtnl = openRtnl();
    try {
      if (!(await hostRtnl.findLink(w.master)))
        throw new CniError(CNI_ERR_PLUGIN_NOT_AVAILABLE, `master ${w.master} does not exist on this node`);
    } finally {
      hostRtnl.close();
    }
  }
  if (w.ipam) await ipamStatus(ctx);
}

function ignoreNotFound(err: unknown): void {
  if (!isNotFound(err)) throw err;
}
