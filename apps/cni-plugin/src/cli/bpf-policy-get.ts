/** `weft bpf policy get ENDPOINT`: the endpoint's entries in the pinned policy map, with counters. */
import { printJson, runVerb, stdio, type CliIo, type VerbSpec } from './agent-cli';
import { renderBpfPolicy } from './render';

export const BPF_POLICY_GET: VerbSpec = {
  name: 'weft bpf policy get',
  usage: 'ENDPOINT [-o json] [--socket PATH]',
  summary:
    'The policy map of one endpoint as the datapath sees it (ENDPOINT: its id, <containerId>:<ifname>, or NS/POD): verdict, direction, peer identity and labels, port/protocol, packet and byte counters.',
  positionals: { min: 1, max: 1 },
};

export function runBpfPolicyGet(args: string[], io: CliIo = stdio): Promise<number> {
  return runVerb(BPF_POLICY_GET, args, io, async (v) => {
    const list = await v.client.bpfPolicy(v.positionals[0]!);
    if (v.output === 'json') printJson(io, list);
    else io.out(renderBpfPolicy(list));
  });
}
