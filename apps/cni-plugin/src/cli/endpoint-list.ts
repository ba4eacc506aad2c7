/** `weft endpoint list`: the endpoints (CNI attachments) the agent manages. */
import { printJson, runVerb, stdio, type CliIo, type VerbSpec } from './agent-cli';
import { renderEndpoints } from './render';

export const ENDPOINT_LIST: VerbSpec = {
  name: 'weft endpoint list',
  usage: '[-o json] [--socket PATH]',
  summary: 'Endpoints (pods) known to the agent: id, identity, policy enforcement, addresses, state.',
};

export function runEndpointList(args: string[], io: CliIo = stdio): Promise<number> {
  return runVerb(ENDPOINT_LIST, args, io, async (v) => {
    const list = await v.client.listEndpoints();
    if (v.output === 'json') printJson(io, list);
    else io.out(renderEndpoints(list));
  });
}
