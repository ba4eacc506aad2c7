/**
 * `weft-agent` as weft ships it: the agent daemon plus the CNI server the weft-cni shim forwards
 * requests to (--no-cni-server leaves it out).
 */
import { runWeftAgent, type AgentService } from '@weft/agent';
import { CniServer, cniSocketFor } from './cni-server/cni-server';

function cniService(): AgentService {
  let server: CniServer | undefined;
  return {
    async start({ config, logger }) {
      if (!config.cniServer) return;
      server = new CniServer(cniSocketFor(config.socketPath), logger.child({ component: 'cni-server' }));
      await server.start();
    },
    async stop() {
      await server?.stop();
    },
  };
}

export async function runWeftAgentWithCni(): Promise<void> {
  await runWeftAgent(process.argv.slice(2), [cniService()]);
}
