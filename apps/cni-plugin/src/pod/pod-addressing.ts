/**
 * Addressing shared by the modes that route every pod packet through a link-local gateway:
 * the pod's addresses as /32 and /128, default routes via 169.254.1.1 and fe80::1, and those
 * gateways' neighbour entries pinned to the MAC that answers for them.
 */
import { CniError, type CniRoute } from '@weft/cni';
import { isExists, type Link, type Rtnl } from '@weft/netlink';
import { Netns } from '@weft/netns';

export const POD_GATEWAY_V4 = '169.254.1.1';
export const POD_GATEWAY_V6 = 'fe80::1';
/** weft-cni's own error codes (the spec leaves 100+ to plugins). */
export const WEFT_ERR_INTERFACE_CONFLICT = 111;
export const WEFT_ERR_CHECK_FAILED = 112;

export function familyOf(ip: string): 4 | 6 {
  return ip.includes(':') ? 6 : 4;
}

export function hostPrefix(ip: string): string {
  return `${ip}/${familyOf(ip) === 4 ? 32 : 128}`;
}

export function checkFailed(msg: string): never {
  throw new CniError(WEFT_ERR_CHECK_FAILED, `CHECK failed: ${msg}`);
}

/**
 * The host routes pod traffic: forwarding on for each family the pod uses (written only when off).
 * With IPv6, the host end skips DAD so that it can answer neighbour solicitations for the pod's
 * gateway route at once rather than after a second of tentative address.
 */
export function enableHostForwarding(ips: readonly string[], hostIfname?: string): void {
  const host = Netns.host();
  if (hostIfname && ips.some((ip) => familyOf(ip) === 6))
    host.writeSysctl(`net/ipv6/conf/${hostIfname}/accept_dad`, 0);
  const keys = new Set(
    ips.map((ip) => (familyOf(ip) === 4 ? 'net.ipv4.ip_forward' : 'net.ipv6.conf.all.forwarding')),
  );
  for (const key of keys) if (host.readSysctl(key) !== '1') host.writeSysctl(key, 1);
}

/**
 * Configures `link` inside the pod (through `podRtnl`, a socket opened in the pod's namespace) and
 * returns the routes for the result. IPAM routes other than the defaults go via the same gateway.
 */
export async function configurePodAddressing(
  podRtnl: Rtnl,
  link: Link,
  ips: readonly string[],
  gatewayMac: string,
  ipamRoutes: readonly CniRoute[],
): Promise<CniRoute[]> {
  for (const ip of ips) {
    await podRtnl.addAddress(link.index, hostPrefix(ip), { nodad: true }).catch(ignoreExists);
  }
  await podRtnl.setUp(link.index);
  const families = new Set(ips.map(familyOf));
  const routes: CniRoute[] = [];
  for (const family of [4, 6] as const) {
    if (!families.has(family)) continue;
    const gateway = family === 4 ? POD_GATEWAY_V4 : POD_GATEWAY_V6;
    await podRtnl.replaceNeighbour({ dev: link.index, address: gateway, lladdr: gatewayMac });
    await podRtnl.replaceRoute({ dst: 'default', family, gateway, dev: link.index, onlink: true });
    routes.push({ dst: family === 4 ? '0.0.0.0/0' : '::/0', gw: gateway });
    for (const r of ipamRoutes) {
      if (familyOf(r.dst.split('/')[0]!) !== family || /^(0\.0\.0\.0|::)\/0$/.test(r.dst)) continue;
      await podRtnl.replaceRoute({ dst: r.dst, gateway, dev: link.index, onlink: true });
      routes.push({ dst: r.dst, gw: gateway });
    }
  }
  return routes;
}

function ignoreExists(err: unknown): void {
  if (!isExists(err)) throw err;
}

/** CNI_IFNAME is taken inside the pod by an interface weft-cni did not make for this attachment. */
export function interfaceConflict(ifname: string, link: { kind?: string; index: number }, why = 'it was not made by weft-cni for this container'): CniError {
  return new CniError(
    WEFT_ERR_INTERFACE_CONFLICT,
    `interface ${ifname} already exists in the pod's network namespace`,
    `kind ${link.kind ?? 'device'}, index ${link.index}; ${why}`,
  );
}

/**
 * Runs cleanup steps that must not stop each other (ADD rollback, DEL): a failing step is logged
 * under `what` and the next one runs.
 */
export function bestEffort(logger: { warn(msg: string, f?: object): void }, phase: string) {
  return async (what: string, fn: () => Promise<unknown>): Promise<boolean> => {
    try {
      await fn();
      return true;
    } catch (err) {
      logger.warn(`${phase}: ${what} failed`, { err: (err as Error).message });
      return false;
    }
  };
}
