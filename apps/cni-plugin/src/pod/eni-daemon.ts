/**
 * weft-cni's side of the ENI daemon (`weft-eni daemon`, /var/run/weft/eni.sock), for the modes that
 * need more than an address from it: `mode: eni` (a whole ENI per pod) and `mode: ipvlan` with
 * `ipam.type: weft-eni` (the pod's ipvlan hangs off the ENI that holds its address). The daemon's
 * client comes from @weft/ipam-terway's light entry (no cloud SDK in weft-cni's bundle).
 *
 * The daemon is named by the `ipam` section, as for the weft-eni IPAM plugin:
 *   "ipam": { "type": "weft-eni", "socket": "/var/run/weft/eni.sock", "timeoutMs": 120000, "routes": [...] }
 */
import {
  CniError,
  CNI_ERR_INVALID_NETCONF,
  CNI_ERR_TRY_AGAIN_LATER,
  type CniRoute,
  type NetConf,
} from '@weft/cni';
import type { Link, Rtnl } from '@weft/netlink';

export const ENI_IPAM_TYPE = 'weft-eni';
const ENI_IPAM_KEYS = new Set(['type', 'socket', 'timeoutMs', 'routes']);

export interface EniDaemonConf {
  socket: string;
  timeoutMs: number;
  routes: CniRoute[];
}

type PodClient = typeof import('@weft/ipam-terway/pod-client');
let podClient: Promise<PodClient> | undefined;

/** The light entry of @weft/ipam-terway, imported on first use. */
export function eniPodClient(): Promise<PodClient> {
  podClient ??= import('@weft/ipam-terway/pod-client');
  return podClient;
}

function invalid(msg: string): never {
  throw new CniError(CNI_ERR_INVALID_NETCONF, `invalid network config: ${msg}`);
}

export function usesEniIpam(conf: NetConf): boolean {
  return conf.ipam?.type === ENI_IPAM_TYPE;
}

/** The daemon's socket and timeout from the `ipam` section (weft-eni's keys), checked before anything is touched. */
export function eniDaemonConf(conf: NetConf, defaultSocket: string): EniDaemonConf {
  const ipam = (conf.ipam ?? { type: ENI_IPAM_TYPE }) as Record<string, unknown>;
  if (ipam.type !== ENI_IPAM_TYPE)
    invalid(`ipam.type ${JSON.stringify(ipam.type)} (expected ${ENI_IPAM_TYPE})`);
  for (const k of Object.keys(ipam))
    if (!ENI_IPAM_KEYS.has(k)) invalid(`unknown ipam key "${k}" for ${ENI_IPAM_TYPE}`);
  const socket = ipam.socket ?? process.env.WEFT_ENI_SOCKET ?? defaultSocket;
  if (
    typeof socket !== 'string' ||
    !socket.startsWith('/') ||
    socket.length > 107 ||
    socket.split('/').includes('..')
  )
    invalid(`ipam.socket ${JSON.stringify(socket)} (expected an absolute unix socket path)`);
  const timeoutMs = ipam.timeoutMs ?? 120_000;
  if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 600_000)
    invalid(`ipam.timeoutMs ${JSON.stringify(timeoutMs)} (expected an integer 1..600000)`);
  const routes = ipam.routes ?? [];
  if (!Array.isArray(routes) || !routes.every((r) => r && typeof (r as CniRoute).dst === 'string'))
    invalid('ipam.routes (expected a list of {"dst": CIDR, "gw"?: address})');
  return { socket, timeoutMs, routes: routes as CniRoute[] };
}

/** The daemon's errors carry CNI codes: as CniErrors. Anything else is rethrown. */
export async function asCniError<T>(p: Promise<T>): Promise<T> {
  const { EniIpamError } = await eniPodClient();
  try {
    return await p;
  } catch (err) {
    if (err instanceof EniIpamError) throw new CniError(err.cniCode, err.message, err.details || undefined);
    throw err;
  }
}

/**
 * The ENI that holds the address the daemon allocated to this attachment, as a link of the node
 * (ipvlan + weft-eni: the pod's master). Error 11 when the daemon has no such allocation or the
 * link is not (yet) on the node.
 */
export async function eniMasterOf(
  rtnl: Rtnl,
  daemon: EniDaemonConf,
  ref: { containerId: string; ifname: string },
): Promise<Link> {
  const { EniDaemonClient, isEniCandidate } = await eniPodClient();
  const a = await asCniError(new EniDaemonClient(daemon.socket, daemon.timeoutMs).check(ref));
  const link = (await rtnl.listLinks()).find((l) => isEniCandidate(l, a.eni.mac));
  if (!link)
    throw new CniError(
      CNI_ERR_TRY_AGAIN_LATER,
      `ENI ${a.eni.id} (${a.eni.mac}) holds the pod's address but is not a link of this node`,
    );
  return link;
}
