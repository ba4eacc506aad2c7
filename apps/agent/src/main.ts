/**
 * `weft-agent`: the entry of the multi-call binary (apps/cni-plugin/src/main.ts PROGRAMS).
 */
import { join } from 'node:path';
import { Agent } from './agent';
import type { AgentDatapath } from './datapath/agent-datapath';
import { PinnedMaps } from './datapath/pinned-maps';
import { AgentError } from './errors';
import { AGENT_USAGE, parseAgentFlags, type AgentConfig } from './flags';
import { createLogger, type Logger } from './logger';
import { ManifestsSource } from './sources/manifests-source';
import type { PolicySource } from './sources/source';
import { applyAgentV8Flags } from './v8-tuning';

/** Opens the datapath and the source the configuration names, and builds the agent. */
export async function createAgent(config: AgentConfig, logger: Logger): Promise<Agent> {
  const { Datapath } = await import('@weft/datapath');
  // weft-cni (degraded mode) keeps its datapath records in the same place.
  const datapath: AgentDatapath = Datapath.open({
    pinRoot: config.pinRoot,
    stateDir: join(config.stateDir, 'datapath'),
    ...(config.bpfDir !== undefined && { objectDir: config.bpfDir }),
    ...(config.tcMode !== undefined && { tcMode: config.tcMode }),
  });
  let source: PolicySource | undefined;
  const sourceLog = logger.child({ component: 'source' });
  if (config.source.kind === 'manifests')
    source = new ManifestsSource({ dir: config.source.dir, logger: sourceLog });
  else if (config.source.kind === 'kubernetes') {
    // Loaded only when used: the client library is large.
    const { KubernetesSource } = await import('./sources/kubernetes-source');
    source = new KubernetesSource({
      ...(config.source.kubeconfig !== undefined && { kubeconfig: config.source.kubeconfig }),
      nodeName: config.nodeName,
      logger: sourceLog,
    });
  }
  return new Agent({
    nodeName: config.nodeName,
    stateDir: config.stateDir,
    queueDir: config.queueDir,
    socketPath: config.socketPath,
    datapath,
    maps: new PinnedMaps(config.pinRoot),
    ...(source && { source }),
    logger,
    ...(config.metricsAddress && { metricsAddress: config.metricsAddress }),
    gcIntervalMs: config.gcIntervalMs,
    identityReleaseDelayMs: config.identityReleaseDelayMs,
  });
}

/**
 * Something run beside the agent for as long as it runs: weft's multi-call binary adds the CNI
 * server this way (the agent knows nothing of the CNI plugin's code).
 */
export interface AgentService {
  start(ctx: { config: AgentConfig; logger: Logger }): Promise<void>;
  stop(): Promise<void>;
}

export async function runWeftAgent(
  argv: string[] = process.argv.slice(2),
  services: AgentService[] = [],
): Promise<void> {
  let config: AgentConfig | undefined;
  try {
    config = parseAgentFlags(argv);
  } catch (err) {
    process.stderr.write(`weft-agent: ${(err as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  if (!config) {
    process.stdout.write(AGENT_USAGE);
    return;
  }
  const v8Flags = applyAgentV8Flags();
  const logger = createLogger(config.logLevel);
  if (v8Flags.length > 0) logger.debug({ flags: v8Flags }, 'V8 flags applied');
  let agent: Agent | undefined;
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    const stopServices = Promise.allSettled(services.map((s) => s.stop()));
    void stopServices.then(() => agent?.stop()).then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err }, 'unhandled rejection');
    process.exit(1);
  });
  try {
    agent = await createAgent(config, logger);
    await agent.start();
    for (const s of services) await s.start({ config, logger });
  } catch (err) {
    const code =
      err instanceof AgentError || typeof (err as { code?: unknown })?.code === 'string'
        ? (err as { code: string }).code
        : 'AGENT_START_FAILED';
    logger.fatal({ err, code }, 'weft-agent could not start');
    process.stderr.write(`weft-agent: ${(err as Error).message}\n`);
    await Promise.allSettled(services.map((s) => s.stop()));
    await agent?.stop().catch(() => undefined);
    process.exitCode = 1;
    // Timers (watch debounce, informers) must not keep a failed agent alive.
    setTimeout(() => process.exit(1), 100).unref();
  }
}
