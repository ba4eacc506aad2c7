/**
 * veth mode (the default): a veth pair per pod, the host end `lxc<hash>` in the host namespace and
 * CNI_IFNAME created directly inside the pod's namespace. The pod gets a /32 (and /128) and a
 * default route via a link-local gateway (169.254.1.1, fe80::1) whose neighbour entry is pinned
 * to the host end's MAC, so every packet goes to the host, which routes it (host route per pod
 * address via its lxc link). No bridge, no proxy ARP. The agent then attaches the BPF programs
 * to the host end: from-container on tc ingress, to-container on tc egress.
 */
import {
  CniError,
  CNI_ERR_INVALID_NETCONF,
  type CniContext,
  type CniResult,
} from '@weft/cni';
import { isNotFound, openRtnl, type Link, type Rtnl } from '@weft/netlink';
import { Netns } from '@weft/netns';
import { agentKnows, agentStatus, registerEndpoint, removeEndpoint, type Registered } from '../../pod/agent-link';
import { AttachmentStore, type AttachmentRecord } from '../../pod/attachment-store';
import { hostVethName } from '../../pod/host-names';
import {
  addressesOf,
  ipamAdd,
  ipamCheck,
  ipamDel,
  ipamGc,
  ipamRepeatsAddresses,
  ipamStatus,
} from '../../pod/ipam';
import { parseWeftConf, requireIpam, type WeftConf } from '../../pod/pod-conf';
import { phaseTimer } from '../../pod/phase-timer';
import { registrationBase } from '../../pod/registration';
import type { ModeHandlers } from '../registry';
import {
  bestEffort,
  checkFailed,
  configurePodAddressing,
  enableHostForwarding,
  familyOf,
  hostPrefix,
  POD_GATEWAY_V4,
  interfaceConflict,
  POD_GATEWAY_V6,
} from '../../pod/pod-addressing';

export const vethMode: ModeHandlers = { add, del, check, gc, status };

async function add(ctx: CniContext): Promise<CniResult> {
  const t = phaseTimer(ctx.logger, 'ADD');
  const w = parseWeftConf(ctx.conf);
  requireIpam(w);
  const base = registrationBase(ctx, w, 'veth');
  const hostName = hostVethName(ctx.containerId, ctx.ifname);
  const store = new AttachmentStore(w.stateDir, w.network);
  const pod = Netns.open(ctx.netns);
  const hostRtnl = openRtnl();
  const podRtnl = openRtnl(pod);
  t.mark('open');
  let allocated: CniResult | undefined;
  let registered: Registered | undefined;
  try {
    await clearPreviousAttempt(ctx, w, hostRtnl, podRtnl, hostName);
    t.mark('previous');
    allocated = await ipamAdd(ctx);
    t.mark('ipam');
    const ips = addressesOf(allocated);
    if (ips.length === 0)
      throw new CniError(CNI_ERR_INVALID_NETCONF, `IPAM ${w.ipam!.type} returned no address`);
    const record: AttachmentRecord = {
      containerId: ctx.containerId,
      ifname: ctx.ifname,
      network: w.network,
      mode: 'veth',
      netns: ctx.netns,
      ips,
      podIfname: ctx.ifname,
      hostIfname: hostName,
      registeredWith: 'none',
      ipamResult: allocated,
      createdAt: new Date().toISOString(),
    };
    store.put(record); // before the links exist: GC can always find what ADD made

    await hostRtnl.createVeth({ name: hostName, peerName: ctx.ifname, peerNetns: pod, mtu: w.mtu });
    const host = await hostRtnl.getLink(hostName);
    enableHostForwarding(ips, hostName);
    await answerForGateways(hostRtnl, host.index, ips);
    await hostRtnl.setUp(host.index);
    const podLink = await podRtnl.getLink(ctx.ifname);
    const routes = await configurePodAddressing(podRtnl, podLink, ips, host.mac!, allocated.routes ?? []);
    for (const ip of ips) await hostRtnl.replaceRoute({ dst: hostPrefix(ip), dev: host.index, scope: 'link' });
    t.mark('links');

    registered = await registerEndpoint(
      w,
      {
        ...base,
        ips,
        podIfname: ctx.ifname,
        podMac: podLink.mac,
        hostIfname: hostName,
        hostIfindex: host.index,
        attachInPod: false,
      },
      ctx.logger,
    );
    t.mark(registered.registeredWith === 'agent' ? 'agent' : 'degraded-attach');
    store.put({ ...record, registeredWith: registered.registeredWith, endpointId: registered.endpointId });
    t.done();

    return {
      cniVersion: ctx.conf.cniVersion,
      interfaces: [
        { name: hostName, mac: host.mac, mtu: w.mtu },
        { name: ctx.ifname, mac: podLink.mac, mtu: w.mtu, sandbox: ctx.netns },
      ],
      ips: ips.map((ip) => ({
        address: hostPrefix(ip),
        gateway: familyOf(ip) === 4 ? POD_GATEWAY_V4 : POD_GATEWAY_V6,
        interface: 1,
      })),
      routes,
      ...(allocated.dns && Object.keys(allocated.dns).length ? { dns: allocated.dns } : {}),
    };
  } catch (err) {
    await rollback(ctx, w, { hostRtnl, hostName, allocated, registered, store });
    throw err;
  } finally {
    hostRtnl.close();
    podRtnl.close();
    pod.close();
  }
}

/**
 * The pod's gateways exist on the host end, so that the pod can ping them (users check the
 * result's gateway, as cnitool's README does). IPv4 in host scope: it is never picked as the
 * source of the host's own traffic to pods, which keeps the host's identity on the wire.
 */
async function answerForGateways(hostRtnl: Rtnl, index: number, ips: readonly string[]): Promise<void> {
  const families = new Set(ips.map(familyOf));
  if (families.has(4)) await hostRtnl.addAddress(index, `${POD_GATEWAY_V4}/32`, { scope: 'host' });
  if (families.has(6)) await hostRtnl.addAddress(index, `${POD_GATEWAY_V6}/128`, { nodad: true, scope: 'link' });
}

/**
 * A repeated ADD for the same attachment is a DEL then an ADD: whatever the earlier one made
 * (endpoint, pair, address) is released first, so an IPAM plugin that refuses duplicate
 * allocations (the reference host-local) starts clean, and a failure now cannot free an address
 * a live pair still uses. An interface of that name made by someone else is a conflict.
 */
async function clearPreviousAttempt(ctx: CniContext, w: WeftConf, hostRtnl: Rtnl, podRtnl: Rtnl, hostName: string) {
  const store = new AttachmentStore(w.stateDir, w.network);
  if (store.get(ctx.containerId, ctx.ifname) || (await hostRtnl.findLink(hostName))) {
    ctx.logger.info('repeated ADD: removing what the earlier ADD made', { containerId: ctx.containerId });
    const ipamFailure = await teardown(ctx, w, hostRtnl, ipamRepeatsAddresses(ctx.conf));
    if (ipamFailure) throw ipamFailure;
  }
  const inPod = await podRtnl.findLink(ctx.ifname);
  if (inPod) throw interfaceConflict(ctx.ifname, inPod);
}

async function rollback(
  ctx: CniContext,
  w: WeftConf,
  s: { hostRtnl: Rtnl; hostName: string; allocated?: CniResult; registered?: Registered; store: AttachmentStore },
): Promise<void> {
  const ref = { containerId: ctx.containerId, ifname: ctx.ifname };
  const step = bestEffort(ctx.logger, 'ADD rollback');
  if (s.registered)
    await step('endpoint removal', () => removeEndpoint(w, ref, ctx.logger, s.registered!.registeredWith));
  await step('host link deletion', () => s.hostRtnl.deleteLink(s.hostName).catch(ignoreNotFound));
  // The address goes back in the same function that got it: a failed ADD never leaks one.
  if (s.allocated) await step('IPAM release', () => ipamDel(ctx));
  s.store.remove(ctx.containerId, ctx.ifname);
}

async function del(ctx: CniContext): Promise<void> {
  const w = parseWeftConf(ctx.conf);
  const hostRtnl = openRtnl();
  let ipamFailure: unknown;
  try {
    ipamFailure = await teardown(ctx, w, hostRtnl);
  } finally {
    hostRtnl.close();
  }
  // Only a failed release is reported: links and endpoints left behind are collected by GC and
  // the agent, while a DEL error would stop the runtime from running the rest of the chain.
  if (ipamFailure) throw ipamFailure;
}

/**
 * Everything a DEL undoes, each step best effort: the endpoint, the pair, the address, the
 * record. Returns the IPAM failure, if any, for the caller to report.
 */
async function teardown(ctx: CniContext, w: WeftConf, hostRtnl: Rtnl, keepAddress = false): Promise<unknown> {
  const ref = { containerId: ctx.containerId, ifname: ctx.ifname };
  const store = new AttachmentStore(w.stateDir, w.network);
  const record = store.get(ctx.containerId, ctx.ifname);
  const step = bestEffort(ctx.logger, 'DEL');
  const t = phaseTimer(ctx.logger, 'DEL');
  // The pair goes first: its programs go with it in the one device teardown the kernel does
  // anyway, where detaching them before would cost an RCU grace period per hook (tcx).
  await step('host link deletion', () =>
    hostRtnl.deleteLink(hostVethName(ctx.containerId, ctx.ifname)).catch(ignoreNotFound),
  );
  t.mark('links');
  await step('endpoint removal', () => removeEndpoint(w, ref, ctx.logger, record?.registeredWith));
  t.mark('agent');
  // Released even when everything else is gone: that is the whole point of a DEL after a crash.
  let ipamFailure: unknown;
  if (w.ipam && !keepAddress) {
    try {
      await ipamDel(ctx);
    } catch (err) {
      ipamFailure = err;
    }
  }
  store.remove(ctx.containerId, ctx.ifname);
  t.mark('ipam');
  t.done();
  return ipamFailure;
}

async function check(ctx: CniContext): Promise<void> {
  const w = parseWeftConf(ctx.conf);
  const prev = ctx.prevResult;
  if (!prev) throw new CniError(CNI_ERR_INVALID_NETCONF, 'CHECK needs a prevResult (the result of ADD)');
  const hostName = hostVethName(ctx.containerId, ctx.ifname);
  const pod = Netns.open(ctx.netns);
  const hostRtnl = openRtnl();
  const podRtnl = openRtnl(pod);
  try {
    const host = await hostRtnl.findLink(hostName);
    if (!host) checkFailed(`host veth ${hostName} does not exist`);
    if (host.kind !== 'veth') checkFailed(`${hostName} is a ${host.kind ?? 'device'}, not a veth`);
    if (!host.up) checkFailed(`host veth ${hostName} is down`);
    const podLink = await podRtnl.findLink(ctx.ifname);
    if (!podLink) checkFailed(`interface ${ctx.ifname} does not exist in the pod's namespace`);
    if (podLink.linkIndex !== host.index) checkFailed(`${ctx.ifname} is not the peer of ${hostName}`);
    if (!podLink.up) checkFailed(`${ctx.ifname} is down`);
    const expectedIf = (prev.interfaces ?? []).find((i) => i.name === ctx.ifname && i.sandbox);
    if (expectedIf?.mac && expectedIf.mac.toLowerCase() !== podLink.mac?.toLowerCase())
      checkFailed(`${ctx.ifname} has MAC ${podLink.mac}, the result says ${expectedIf.mac}`);
    await checkPodAddressing(podRtnl, podLink, prev);
    const hostRoutes = await hostRtnl.listRoutes({ dev: host.index });
    for (const ip of addressesOf(prev)) {
      if (!hostRoutes.some((r) => r.dst === hostPrefix(ip)))
        checkFailed(`the host has no route to ${ip} via ${hostName}`);
    }
    const record = new AttachmentStore(w.stateDir, w.network).get(ctx.containerId, ctx.ifname);
    if (w.ipam) await ipamCheck(ctx, record?.ipamResult ?? prev);
    const known = await agentKnows(w, ctx);
    if (known === false) checkFailed(`weft-agent has no endpoint for ${ctx.containerId}:${ctx.ifname}`);
  } finally {
    hostRtnl.close();
    podRtnl.close();
    pod.close();
  }
}

/** Addresses, default routes and the pinned gateway neighbour inside the pod match the result. */
async function checkPodAddressing(podRtnl: Rtnl, podLink: Link, prev: CniResult): Promise<void> {
  const addrs = await podRtnl.listAddresses({ dev: podLink.index });
  const have = new Set(addrs.map((a) => `${a.address}/${a.prefixLength}`));
  for (const ip of prev.ips ?? []) {
    const [addr] = ip.address.split('/');
    if (!have.has(hostPrefix(addr!))) checkFailed(`${podLink.name} lacks address ${hostPrefix(addr!)}`);
  }
  const families = new Set(addressesOf(prev).map(familyOf));
  for (const family of families) {
    const routes = await podRtnl.listRoutes({ family, dev: podLink.index });
    const gw = family === 4 ? POD_GATEWAY_V4 : POD_GATEWAY_V6;
    if (!routes.some((r) => r.dst === 'default' && r.gateway === gw))
      checkFailed(`the pod has no IPv${family} default route via ${gw}`);
  }
}

async function gc(ctx: CniContext): Promise<void> {
  const w = parseWeftConf(ctx.conf);
  const store = new AttachmentStore(w.stateDir, w.network);
  const valid = new Set(ctx.validAttachments.map((a) => `${a.containerID}:${a.ifname}`));
  const hostRtnl = openRtnl();
  try {
    for (const r of store.list()) {
      if (r.mode !== 'veth' || valid.has(`${r.containerId}:${r.ifname}`)) continue;
      ctx.logger.info('GC: removing a stale attachment', { containerId: r.containerId, ifname: r.ifname });
      await removeEndpoint(w, r, ctx.logger, r.registeredWith).catch((err: Error) =>
        ctx.logger.warn('GC: endpoint removal failed', { err: err.message }),
      );
      if (r.hostIfname) await hostRtnl.deleteLink(r.hostIfname).catch(ignoreNotFound);
      store.remove(r.containerId, r.ifname);
    }
  } finally {
    hostRtnl.close();
  }
  if (w.ipam) await ipamGc(ctx);
}

async function status(ctx: CniContext): Promise<void> {
  const w = parseWeftConf(ctx.conf);
  await agentStatus(w);
  if (w.ipam) await ipamStatus(ctx);
}

function ignoreNotFound(err: unknown): void {
  if (!isNotFound(err)) throw err;
}

