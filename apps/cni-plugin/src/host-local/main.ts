/**
 * Entry of the `weft-host-local` IPAM plugin: the CNI protocol around @weft/host-local.
 * IPAM never enters the container's namespace, so CNI_NETNS is required (as skel does) but not
 * opened or checked.
 */
import { dispatch, type CniHandlers } from '@weft/cni';
import { allocate, check, gc, release, status } from '@weft/host-local';

const handlers: CniHandlers = {
  add: (ctx) =>
    allocate(ctx.conf, { containerId: ctx.containerId, ifname: ctx.ifname, args: ctx.args.values }),
  del: async (ctx) => {
    await release(ctx.conf, { containerId: ctx.containerId, ifname: ctx.ifname, args: ctx.args.values });
  },
  check: (ctx) =>
    check(ctx.conf, {
      containerId: ctx.containerId,
      ifname: ctx.ifname,
      args: ctx.args.values,
      prevResult: ctx.prevResult,
    }),
  gc: async (ctx) => {
    await gc(ctx.conf, ctx.validAttachments);
  },
  status: (ctx) => status(ctx.conf),
};

export async function runWeftHostLocal(): Promise<void> {
  process.exitCode = await dispatch(handlers, {
    pluginName: 'weft-host-local',
    envOptions: { skipNetnsCheck: true, argsOptions: { knownKeys: ['IP'] } },
  });
}
