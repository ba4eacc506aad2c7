/**
 * Addressing of an IPvlan pod interface (Terway's ENIIP/IPvlan shape):
 * - L2: the pod is a host on the master's subnet — the address with the IPAM prefix, a default
 *   route via the IPAM gateway (which is on that subnet, reached through the master);
 * - L3/L3S: the ipvlan driver routes by address and there is no ARP, so the pod gets /32 and /128
 *   and default routes straight out of the device (scope link); the node's routing table (the
 *   master's namespace) takes the packets from there.
 * IPAM routes other than the defaults go the same way (via their gateway or the family's in L2,
 * out of the device in L3).
 */
import type { CniIpConfig, CniResult, CniRoute } from '@weft/cni';
import { isExists, type Link, type Rtnl } from '@weft/netlink';
import { checkFailed, familyOf, hostPrefix } from './pod-addressing';
import type { IpvlanMode } from './pod-conf';

export interface PodIp {
  /** Without prefix. */
  address: string;
  prefixLength: number;
  gateway?: string;
}

const isDefault = (dst: string) => /^(0\.0\.0\.0|::)\/0$/.test(dst);
const defaultDst = (family: 4 | 6) => (family === 4 ? '0.0.0.0/0' : '::/0');

/** The IPAM result's addresses with their prefix and gateway. */
export function podIpsOf(result: CniResult): PodIp[] {
  return (result.ips ?? []).map((ip) => {
    const [address, len] = ip.address.split('/');
    const family = familyOf(address!);
    const prefixLength = len === undefined ? (family === 4 ? 32 : 128) : Number(len);
    return { address: address!, prefixLength, ...(ip.gateway ? { gateway: ip.gateway } : {}) };
  });
}

/** The address as configured in the pod for this mode. */
export function podCidr(ip: PodIp, mode: IpvlanMode): string {
  return mode === 'l2' ? `${ip.address}/${ip.prefixLength}` : hostPrefix(ip.address);
}

/** Configures `link` inside the pod and returns the result's ips and routes. */
export async function configureIpvlanPod(
  podRtnl: Rtnl,
  link: Link,
  mode: IpvlanMode,
  ips: readonly PodIp[],
  ipamRoutes: readonly CniRoute[],
): Promise<{ ips: CniIpConfig[]; routes: CniRoute[] }> {
  for (const ip of ips) {
    await podRtnl.addAddress(link.index, podCidr(ip, mode), { nodad: true }).catch(ignoreExists);
  }
  await podRtnl.setUp(link.index);
  const routes: CniRoute[] = [];
  for (const family of [4, 6] as const) {
    const mine = ips.filter((ip) => familyOf(ip.address) === family);
    if (mine.length === 0) continue;
    const extra = ipamRoutes.filter((r) => familyOf(r.dst.split('/')[0]!) === family);
    if (mode === 'l2') {
      // An IPAM default route with its own gateway wins over the address's gateway.
      const gw = extra.find((r) => isDefault(r.dst) && r.gw)?.gw ?? mine.find((ip) => ip.gateway)?.gateway;
      if (gw) {
        await podRtnl.replaceRoute({ dst: 'default', family, gateway: gw, dev: link.index, onlink: true });
        routes.push({ dst: defaultDst(family), gw });
      }
      for (const r of extra) {
        if (isDefault(r.dst)) continue;
        const via = r.gw ?? gw;
        await podRtnl.replaceRoute({
          dst: r.dst,
          dev: link.index,
          ...(via ? { gateway: via, onlink: true } : {}),
        });
        routes.push(via ? { dst: r.dst, gw: via } : { dst: r.dst });
      }
    } else {
      await podRtnl.replaceRoute({ dst: 'default', family, dev: link.index, scope: 'link' });
      routes.push({ dst: defaultDst(family) });
      for (const r of extra) {
        if (isDefault(r.dst)) continue;
        await podRtnl.replaceRoute({ dst: r.dst, dev: link.index, scope: 'link' });
        routes.push({ dst: r.dst });
      }
    }
  }
  return {
    ips: ips.map((ip) => ({
      address: podCidr(ip, mode),
      ...(mode === 'l2' && ip.gateway ? { gateway: ip.gateway } : {}),
      interface: 0,
    })),
    routes,
  };
}

/** CHECK: the addresses and default routes of the result are on the pod interface. */
export async function checkIpvlanPod(podRtnl: Rtnl, link: Link, prev: CniResult): Promise<void> {
  const have = new Set((await podRtnl.listAddresses({ dev: link.index })).map((a) => a.cidr));
  for (const ip of prev.ips ?? []) {
    if (!have.has(ip.address)) checkFailed(`${link.name} lacks address ${ip.address}`);
  }
  for (const r of prev.routes ?? []) {
    if (!isDefault(r.dst)) continue;
    const family = familyOf(r.dst.split('/')[0]!);
    const routes = await podRtnl.listRoutes({ family, dev: link.index });
    const ok = routes.some(
      (x) => x.dst === 'default' && (r.gw ? x.gateway === r.gw : x.gateway === undefined),
    );
    if (!ok)
      checkFailed(`the pod has no IPv${family} default route ${r.gw ? `via ${r.gw}` : `dev ${link.name}`}`);
  }
}

function ignoreExists(err: unknown): void {
  if (!isExists(err)) throw err;
}
