/**
 * IPAM delegation (spec section 4): ADD/DEL/CHECK/GC/STATUS of `ipam.type`, found in CNI_PATH
 * and exec'd with the whole network config, as the spec says. `weft-host-local` is the one
 * exception: it is this very executable, so it runs in-process (same code, same store, same
 * flock) instead of paying a second process start per pod.
 */
import {
  CniError,
  CNI_ERR_INVALID_NETCONF,
  convertResult,
  delegateAdd,
  delegateCheck,
  delegateDel,
  delegateGc,
  delegateStatus,
  type CniContext,
  type CniResult,
  type NetConf,
} from '@weft/cni';

const IN_PROCESS = 'weft-host-local';

function ipamType(conf: NetConf): string {
  const type = conf.ipam?.type;
  if (typeof type !== 'string' || type === '')
    throw new CniError(CNI_ERR_INVALID_NETCONF, 'invalid network config: ipam.type is missing');
  return type;
}

/** The conf an IPAM plugin gets: ours minus the prevResult, which belongs to the chain, not to IPAM. */
function ipamConf(conf: NetConf): NetConf {
  if (conf.prevResult === undefined) return conf;
  const { prevResult: _drop, ...rest } = conf;
  return rest as NetConf;
}

function attachment(ctx: CniContext) {
  return { containerId: ctx.containerId, ifname: ctx.ifname, args: ctx.args.values };
}

export async function ipamAdd(ctx: CniContext): Promise<CniResult> {
  const type = ipamType(ctx.conf);
  if (type === IN_PROCESS) return (await import('@weft/host-local')).allocate(ctx.conf, attachment(ctx));
  return delegateAdd(type, ipamConf(ctx.conf), ctx);
}

/** Best effort: an unknown container or a missing plugin counts as released. */
export async function ipamDel(ctx: CniContext): Promise<void> {
  const type = ipamType(ctx.conf);
  if (type === IN_PROCESS) {
    await (await import('@weft/host-local')).release(ctx.conf, attachment(ctx));
    return;
  }
  await delegateDel(type, ipamConf(ctx.conf), ctx);
}

/**
 * CHECK of the IPAM plugin against `prevResult` — ideally what that plugin itself returned on ADD
 * (kept in the attachment record), not the final result: the plugin compares gateways and
 * prefixes it handed out, which weft's result replaces with its own.
 */
export async function ipamCheck(ctx: CniContext, prevResult: CniResult): Promise<void> {
  const type = ipamType(ctx.conf);
  if (type === IN_PROCESS) {
    await (await import('@weft/host-local')).check(ctx.conf, { ...attachment(ctx), prevResult });
    return;
  }
  const prev = convertResult(prevResult, ctx.conf.cniVersion) as unknown as Record<string, unknown>;
  await delegateCheck(type, { ...ctx.conf, prevResult: prev }, ctx);
}

export async function ipamGc(ctx: CniContext): Promise<void> {
  const type = ipamType(ctx.conf);
  if (type === IN_PROCESS) {
    await (await import('@weft/host-local')).gc(ctx.conf, ctx.validAttachments);
    return;
  }
  await delegateGc(type, ctx.conf, ctx);
}

export async function ipamStatus(ctx: CniContext): Promise<void> {
  const type = ipamType(ctx.conf);
  if (type === IN_PROCESS) {
    await (await import('@weft/host-local')).status(ctx.conf);
    return;
  }
  await delegateStatus(type, ctx.conf, ctx);
}

/** IPAM plugins that answer a repeated ADD of one attachment with the addresses it already has. */
const REPEATS_ADDRESSES = new Set(['weft-host-local', 'weft-eni']);

/**
 * Whether a repeated ADD may keep the attachment's addresses: true for the IPAM plugins above;
 * others must be released first (the reference host-local refuses a duplicate allocation, and a
 * failed ADD would then release the address the earlier one still uses).
 */
export function ipamRepeatsAddresses(conf: NetConf): boolean {
  return REPEATS_ADDRESSES.has(ipamType(conf));
}

/** The host addresses (no prefix) of an IPAM result. */
export function addressesOf(result: CniResult): string[] {
  return (result.ips ?? []).map((ip) => ip.address.split('/')[0]!);
}
