/** `weft identity list`: security identities and their labels. */
import { printJson, runVerb, stdio, type CliIo, type VerbSpec } from './agent-cli';
import { renderIdentities } from './render';

export const IDENTITY_LIST: VerbSpec = {
  name: 'weft identity list',
  usage: '[-o json] [--socket PATH]',
  summary: 'Security identities (reserved ones, pods, CIDRs) with their labels and local endpoints.',
};

export function runIdentityList(args: string[], io: CliIo = stdio): Promise<number> {
  return runVerb(IDENTITY_LIST, args, io, async (v) => {
    const list = await v.client.listIdentities();
    if (v.output === 'json') printJson(io, list);
    else io.out(renderIdentities(list));
  });
}
