/**
 * Entry of the `weft-cni` plugin: spec plumbing from @weft/cni, routing to mode modules.
 * Only the registry table is imported here; modes are imported when a request needs them.
 */
import {
  CniError,
  CNI_ERR_INVALID_NETCONF,
  CNI_ERR_PLUGIN_NOT_AVAILABLE,
  dispatch,
  type CniContext,
  type CniHandlers,
  type CniResult,
  type DispatchOptions,
} from '@weft/cni';
import {
  CHAINING_MODES,
  isChainingMode,
  isPodMode,
  loadMode,
  POD_MODES,
  type ModeHandlers,
  type ModeName,
} from './modes/registry';

function invalid(msg: string): never {
  throw new CniError(CNI_ERR_INVALID_NETCONF, msg);
}

/**
 * Which mode handles this request. Chaining is chosen only by an explicit `chainingMode`
 * (never guessed): on ADD it must come with a prevResult and a prevResult must come with it.
 * On DEL/CHECK/GC the runtime passes the cached result as prevResult to every plugin, chained
 * or not, so there only `chainingMode` decides.
 */
export function selectMode(ctx: Pick<CniContext, 'command' | 'conf'>): ModeName {
  const { conf } = ctx;
  const mode = conf.mode ?? 'veth';
  if (!isPodMode(mode))
    invalid(`invalid network config: mode ${JSON.stringify(mode)} (expected one of ${POD_MODES.join(', ')})`);
  const chaining = conf.chainingMode;
  if (chaining !== undefined && !isChainingMode(chaining)) {
    invalid(
      `invalid network config: chainingMode ${JSON.stringify(chaining)} (expected one of ${CHAINING_MODES.join(', ')})`,
    );
  }
  if (conf.degraded !== undefined && typeof conf.degraded !== 'boolean') {
    invalid(`invalid network config: degraded ${JSON.stringify(conf.degraded)} (expected true or false)`);
  }
  if (ctx.command === 'ADD') {
    const hasPrev = conf.prevResult !== undefined && conf.prevResult !== null;
    if (hasPrev && chaining === undefined) {
      invalid(
        `invalid network config: a prevResult was given but no chainingMode; set "chainingMode" to one of ${CHAINING_MODES.join(', ')} to run weft-cni chained`,
      );
    }
    if (!hasPrev && chaining !== undefined) {
      invalid(
        `invalid network config: chainingMode ${JSON.stringify(chaining)} needs a prevResult (weft-cni must follow the plugin it chains to)`,
      );
    }
  }
  return chaining ?? mode;
}

function unavailable(name: ModeName): CniError {
  return new CniError(CNI_ERR_PLUGIN_NOT_AVAILABLE, `mode ${name} is not available in this build`);
}

async function modeFor(ctx: CniContext): Promise<{ name: ModeName; handlers: ModeHandlers | undefined }> {
  const name = selectMode(ctx);
  return { name, handlers: await loadMode(name) };
}

export const weftCniHandlers: CniHandlers = {
  async add(ctx): Promise<CniResult> {
    const { name, handlers } = await modeFor(ctx);
    // Never a fake success: a runtime would start a pod with no network.
    if (!handlers) throw unavailable(name);
    return handlers.add(ctx);
  },

  async del(ctx) {
    const { name, handlers } = await modeFor(ctx);
    if (!handlers) {
      // DEL is best effort and idempotent: an ADD through a mode this build lacks cannot have
      // created anything, and a failed DEL would stop containerd's teardown of the rest of the
      // chain (it never retries DEL). So there is nothing to do, successfully.
      ctx.logger.warn(`DEL: mode ${name} is not available in this build; nothing to delete`, {
        containerId: ctx.containerId,
      });
      return;
    }
    await handlers.del(ctx);
  },

  async check(ctx) {
    const { name, handlers } = await modeFor(ctx);
    if (!handlers) throw unavailable(name);
    await handlers.check(ctx);
  },

  async gc(ctx) {
    const { name, handlers } = await modeFor(ctx);
    // A mode this build lacks holds no resources to collect.
    if (handlers) await handlers.gc(ctx);
    else ctx.logger.info(`GC: mode ${name} is not available in this build; nothing to collect`);
  },

  async status(ctx) {
    // The conf names one mode: it answers whether it can serve ADDs (50/51 when it cannot).
    const { name, handlers } = await modeFor(ctx);
    if (!handlers) throw unavailable(name);
    await handlers.status?.(ctx);
  },
};

/** weft-cni with injectable env/stdin/stdout; returns the exit code. */
export function runWeftCniWith(options: DispatchOptions = {}): Promise<number> {
  // IP= is for the IPAM plugin (host-local's convention), passed on with the rest of CNI_ARGS.
  return dispatch(weftCniHandlers, {
    pluginName: 'weft-cni',
    envOptions: { argsOptions: { knownKeys: ['IP'] } },
    ...options,
  });
}

/** Entry of the `weft-cni` plugin (wired into the multi-call main.ts). */
export async function runWeftCni(): Promise<void> {
  process.exitCode = await runWeftCniWith();
}
