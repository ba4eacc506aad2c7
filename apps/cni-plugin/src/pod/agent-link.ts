/**
 * weft-cni's side of the agent: register an endpoint after ADD built the interfaces, remove it on
 * DEL. The agent attaches the BPF programs with the endpoint's policy. When the agent is down:
 * - ADD fails with 11 (try again later), unless the network says `"degraded": true`: then weft-cni
 *   attaches the datapath itself (identity `init`, nothing enforced yet) and queues the
 *   registration for the agent to adopt when it starts;
 * - DEL queues the deletion for the agent and succeeds.
 */
import {
  AgentApiError,
  AgentClient,
  AgentUnavailableError,
  dequeue,
  queuedFor,
  queueWork,
  type AttachmentRef,
  type EndpointRegistration,
} from '@weft/agent-api';
import {
  CniError,
  CNI_ERR_PLUGIN_NOT_AVAILABLE,
  CNI_ERR_TRY_AGAIN_LATER,
  type Logger,
} from '@weft/cni';
import { degradedEndpointId } from './host-names';
import type { WeftConf } from './pod-conf';

/** Reserved identity of endpoints whose labels are not resolved yet (contract: bpf/lib, datapath). */
const IDENTITY_INIT = 5;
/** weft-cni's own error codes (100+ are plugin-specific). */
export const WEFT_ERR_AGENT_REFUSED = 110;

export interface Registered {
  endpointId: number;
  identity: number;
  registeredWith: 'agent' | 'degraded';
}

function client(w: WeftConf): AgentClient {
  return new AgentClient({ socketPath: w.agentSocket, timeoutMs: w.agentTimeoutMs });
}

export async function registerEndpoint(
  w: WeftConf,
  reg: EndpointRegistration,
  logger: Logger,
): Promise<Registered> {
  try {
    const r = await client(w).registerEndpoint(reg);
    dequeue(reg, w.queueDir); // an older queued item for this attachment is superseded
    return { endpointId: r.endpointId, identity: r.identity, registeredWith: 'agent' };
  } catch (err) {
    if (err instanceof AgentApiError) {
      throw new CniError(
        err.retryable ? CNI_ERR_TRY_AGAIN_LATER : WEFT_ERR_AGENT_REFUSED,
        `weft-agent refused the endpoint: ${err.message}`,
        err.code,
      );
    }
    if (!(err instanceof AgentUnavailableError)) throw err;
    if (!w.degraded) {
      throw new CniError(
        CNI_ERR_TRY_AGAIN_LATER,
        'weft-agent is not available; try again later',
        `${err.message} (set "degraded": true in the network config to start pods without the agent)`,
      );
    }
    logger.warn('agent down: attaching the datapath in degraded mode', { reason: err.message });
    const endpointId = degradedEndpointId(reg.containerId, reg.ifname);
    await attachLocally(w, reg, endpointId, logger);
    queueWork(
      { kind: 'register', registration: reg, degradedEndpointId: endpointId, queuedAt: new Date().toISOString() },
      w.queueDir,
    );
    return { endpointId, identity: IDENTITY_INIT, registeredWith: 'degraded' };
  }
}

/**
 * Never throws for an absent agent or endpoint (DEL must succeed). A degraded endpoint the agent
 * never heard of is detached here and its queued registration dropped.
 */
export async function removeEndpoint(
  w: WeftConf,
  ref: AttachmentRef,
  logger: Logger,
  /** From the attachment record; undefined when there is none (an earlier DEL finished). */
  registeredWith?: 'agent' | 'degraded' | 'none',
): Promise<void> {
  const queued = queuedFor(ref, w.queueDir);
  try {
    await client(w).removeEndpoint(ref);
    if (queued) dequeue(ref, w.queueDir);
  } catch (err) {
    if (err instanceof AgentApiError) {
      // The agent is up but said no; DEL still succeeds, and the agent's own GC catches up.
      logger.warn('agent refused the endpoint deletion', { status: err.status, err: err.message });
      return;
    }
    if (!(err instanceof AgentUnavailableError)) throw err;
    if (queued?.kind === 'register') {
      await detachLocally(w, queued.degradedEndpointId, logger);
      dequeue(ref, w.queueDir);
      return;
    }
    // Only what the agent was told about needs telling it goes: a repeated DEL queues nothing.
    if (registeredWith !== 'agent') return;
    logger.warn('agent down: queueing the endpoint deletion', { reason: err.message });
    queueWork({ kind: 'delete', ...ref, network: w.network, queuedAt: new Date().toISOString() }, w.queueDir);
  }
}

/** Throws 50 when ADDs could not be served because the agent is down and the network is not degraded. */
export async function agentStatus(w: WeftConf): Promise<void> {
  try {
    await client(w).health();
  } catch (err) {
    if (!(err instanceof AgentUnavailableError) || w.degraded) return;
    throw new CniError(CNI_ERR_PLUGIN_NOT_AVAILABLE, 'weft-agent is not available', err.message);
  }
}

/** True when the agent is reachable and knows the attachment; undefined when it cannot be asked. */
export async function agentKnows(w: WeftConf, ref: AttachmentRef): Promise<boolean | undefined> {
  try {
    const list = await client(w).listEndpoints();
    return list.some((e) => e.containerId === ref.containerId && e.ifname === ref.ifname);
  } catch {
    return undefined;
  }
}

async function attachLocally(
  w: WeftConf,
  reg: EndpointRegistration,
  endpointId: number,
  logger: Logger,
): Promise<void> {
  try {
    const { Datapath } = await import('@weft/datapath');
    const dp = Datapath.open({ pinRoot: w.pinRoot, stateDir: `${w.stateDir}/datapath`, ...(w.tcMode && { tcMode: w.tcMode }) });
    try {
      dp.attachEndpoint({
        endpointId,
        identity: IDENTITY_INIT,
        ips: reg.ips,
        mac: reg.podMac,
        ...(reg.attachInPod
          ? { pod: { netnsPath: reg.netns, ifname: reg.podIfname } }
          : { ifname: reg.hostIfname, ifindex: reg.hostIfindex }),
      });
    } finally {
      dp.close();
    }
  } catch (err) {
    // Degraded means "give the pod network": without BPF (objects or bpffs missing) it is unpoliced,
    // which is what no policy means anyway. Loudly logged; the agent attaches properly on adoption.
    logger.error('degraded mode: could not attach the datapath; the pod runs without it', {
      err: (err as Error).message,
    });
  }
}

async function detachLocally(w: WeftConf, endpointId: number, logger: Logger): Promise<void> {
  try {
    const { Datapath } = await import('@weft/datapath');
    const dp = Datapath.open({ pinRoot: w.pinRoot, stateDir: `${w.stateDir}/datapath`, ...(w.tcMode && { tcMode: w.tcMode }) });
    try {
      dp.detachEndpoint(endpointId);
    } finally {
      dp.close();
    }
  } catch (err) {
    logger.warn('degraded endpoint detach failed', { err: (err as Error).message });
  }
}
