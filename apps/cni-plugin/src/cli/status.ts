/** `weft status`: agent health, source, counts, datapath maps and queue. */
import { printJson, runVerb, stdio, type CliIo, type VerbSpec } from './agent-cli';
import { renderStatus } from './render';

export const STATUS: VerbSpec = {
  name: 'weft status',
  usage: '[-o json] [--socket PATH]',
  summary: 'Agent health and datapath state.',
};

export function runStatus(args: string[], io: CliIo = stdio): Promise<number> {
  return runVerb(STATUS, args, io, async (v) => {
    const s = await v.client.status();
    if (v.output === 'json') printJson(io, s);
    else io.out(renderStatus(s));
    return s.ready === false ? 1 : 0;
  });
}
