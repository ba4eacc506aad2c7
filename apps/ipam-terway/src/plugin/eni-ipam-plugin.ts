/**
 * `weft-eni`, the IPAM plugin: ADD/DEL/CHECK/GC/STATUS answered by asking the ENI daemon over
 * its unix socket. Per-ENI policy routing (rule `from <pod ip> lookup <ENI table>`) is set by
 * the daemon on ADD and removed on DEL, so the interface plugin only has to configure the pod.
 *
 * ipam keys: { "type": "weft-eni", "socket": "/var/run/weft/eni.sock", "timeoutMs": 120000,
 *              "routes": [{ "dst": "0.0.0.0/0" }] }
 */
import {
  CniError,
  CNI_ERR_INVALID_NETCONF,
  CNI_ERR_PLUGIN_NOT_AVAILABLE,
  dispatch,
  type CniContext,
  type CniHandlers,
  type CniResult,
  type CniRoute,
  type DispatchOptions,
} from '@weft/cni';
import { EniDaemonClient } from '../daemon/api';
import { DEFAULT_SOCKET } from '../daemon/config';
import type { AllocationResult } from '../daemon/pool';
import { EniIpamError } from '../errors';

interface EniIpamConf {
  socket: string;
  timeoutMs: number;
  routes: CniRoute[];
}

function ipamConf(ctx: CniContext): EniIpamConf {
  const ipam = (ctx.conf.ipam ?? {}) as Record<string, unknown>;
  const known = new Set(['type', 'socket', 'timeoutMs', 'routes']);
  for (const k of Object.keys(ipam)) {
    if (!known.has(k)) throw new CniError(CNI_ERR_INVALID_NETCONF, `unknown ipam key "${k}" for weft-eni`);
  }
  const socket = ipam.socket ?? process.env.WEFT_ENI_SOCKET ?? DEFAULT_SOCKET;
  if (typeof socket !== 'string' || !socket.startsWith('/') || socket.length > 107) {
    throw new CniError(CNI_ERR_INVALID_NETCONF, 'ipam.socket must be an absolute unix socket path');
  }
  const timeoutMs = ipam.timeoutMs ?? 120_000;
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0))
    throw new CniError(CNI_ERR_INVALID_NETCONF, 'ipam.timeoutMs must be > 0');
  const routes = ipam.routes ?? [];
  if (!Array.isArray(routes) || !routes.every((r) => r && typeof (r as CniRoute).dst === 'string')) {
    throw new CniError(CNI_ERR_INVALID_NETCONF, 'ipam.routes must be a list of {dst, gw?}');
  }
  return { socket, timeoutMs, routes: routes as CniRoute[] };
}

/** The daemon's errors carry CNI codes already; transport failures are code 11. */
async function asCni<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof EniIpamError) throw new CniError(err.cniCode, err.message, err.details || undefined);
    throw err;
  }
}

export function toCniResult(cniVersion: string, a: AllocationResult, routes: CniRoute[]): CniResult {
  const ips = [a.ipv4, a.ipv6]
    .filter((x): x is NonNullable<typeof x> => !!x)
    .map((x) => ({ address: `${x.address}/${x.prefixLength}`, gateway: x.gateway }));
  return { cniVersion, ips, routes };
}

export const eniIpamHandlers: CniHandlers = {
  async add(ctx) {
    const c = ipamConf(ctx);
    const client = new EniDaemonClient(c.socket, c.timeoutMs);
    const a = await asCni(
      client.allocate({
        containerId: ctx.containerId,
        ifname: ctx.ifname,
        netns: ctx.netns,
        network: ctx.conf.name,
        podNamespace: ctx.args.K8S_POD_NAMESPACE,
        podName: ctx.args.K8S_POD_NAME,
        podUid: ctx.args.K8S_POD_UID,
      }),
    );
    return toCniResult(ctx.conf.cniVersion, a, c.routes);
  },

  async del(ctx) {
    const c = ipamConf(ctx);
    try {
      await new EniDaemonClient(c.socket, c.timeoutMs).release({
        containerId: ctx.containerId,
        ifname: ctx.ifname,
      });
    } catch (err) {
      // DEL must succeed: an address left behind is released by the daemon's GC (dead netns / CNI GC).
      ctx.logger.warn('release deferred to the daemon GC', { err: String(err) });
    }
  },

  async check(ctx) {
    const c = ipamConf(ctx);
    const a = await asCni(
      new EniDaemonClient(c.socket, c.timeoutMs).check({ containerId: ctx.containerId, ifname: ctx.ifname }),
    );
    const prev = ctx.prevResult?.ips?.map((ip) => ip.address.split('/')[0]) ?? [];
    for (const ip of [a.ipv4?.address, a.ipv6?.address]) {
      if (ip && prev.length > 0 && !prev.includes(ip)) {
        throw new CniError(
          CNI_ERR_INVALID_NETCONF,
          `address ${ip} allocated to ${ctx.containerId} is not in prevResult`,
        );
      }
    }
  },

  async gc(ctx) {
    const c = ipamConf(ctx);
    const valid = ctx.validAttachments.map((v) => ({ containerId: v.containerID, ifname: v.ifname }));
    await asCni(new EniDaemonClient(c.socket, c.timeoutMs).gc(valid, ctx.conf.name));
  },

  async status(ctx) {
    const c = ipamConf(ctx);
    let st;
    try {
      st = await new EniDaemonClient(c.socket, 5_000).status();
    } catch (err) {
      throw new CniError(
        CNI_ERR_PLUGIN_NOT_AVAILABLE,
        'ENI daemon not reachable',
        String(err instanceof Error ? err.message : err),
      );
    }
    if (st.idle === 0 && st.allocated >= st.allocatable) {
      throw new CniError(CNI_ERR_PLUGIN_NOT_AVAILABLE, 'no ENI address available on this node', st.lastError);
    }
  },
};

/** Entry for CNI_COMMAND invocations; returns the exit code. */
export function runEniIpamPlugin(options: DispatchOptions = {}): Promise<number> {
  return dispatch(eniIpamHandlers, { pluginName: 'weft-eni', ...options });
}
