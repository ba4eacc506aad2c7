/**
 * An agent in the test process, on a real Datapath under a unique pin root and a real socket in
 * a temp dir. Its pods attach "in pod" (programs on the pod's own interface inside its netns, the
 * IPvlan/ENI path), so nothing is attached in the test process's own netns.
 */
import { join } from 'node:path';
import type { Agent } from '../agent';
import { parseAgentFlags } from '../flags';
import { silentLogger } from '../logger';
import { createAgent } from '../main';
import { BPF_OBJECT_DIR } from './agent-process';

export interface InProcessAgentOptions {
  work: string;
  pinRoot: string;
  manifests?: string;
  nodeName?: string;
  extraArgs?: string[];
}

export async function startInProcessAgent(
  o: InProcessAgentOptions,
): Promise<{ agent: Agent; socketPath: string }> {
  const socketPath = join(o.work, 'run', 'agent.sock');
  const config = parseAgentFlags(
    [
      ...(o.manifests ? ['--manifests', o.manifests] : []),
      ...['--node-name', o.nodeName ?? 'node-t', '--socket', socketPath],
      ...['--state-dir', join(o.work, 'state'), '--queue-dir', join(o.work, 'queue')],
      ...['--pin-root', o.pinRoot, '--bpf-dir', BPF_OBJECT_DIR, '--gc-interval', '0'],
      ...(o.extraArgs ?? []),
    ],
    {},
  )!;
  const agent = await createAgent(config, silentLogger());
  await agent.start();
  await agent.whenReady();
  return { agent, socketPath };
}
