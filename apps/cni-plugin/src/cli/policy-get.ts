/** `weft policy get [NAME | NS/NAME]`: the policies the agent loaded, what they select, warnings. */
import { printJson, runVerb, stdio, type CliIo, type VerbSpec } from './agent-cli';
import { renderPolicies } from './render';

export const POLICY_GET: VerbSpec = {
  name: 'weft policy get',
  usage: '[NAME | NS/NAME] [-o json] [--socket PATH]',
  summary:
    'Network policies as the agent resolved them: the endpoints of this node each selects, and what is accepted but not enforced (L7, FQDN).',
  positionals: { min: 0, max: 1 },
};

export function runPolicyGet(args: string[], io: CliIo = stdio): Promise<number> {
  return runVerb(POLICY_GET, args, io, async (v) => {
    let list = await v.client.listPolicies();
    const filter = v.positionals[0];
    if (filter !== undefined) {
      const [a, b] = filter.includes('/') ? filter.split('/', 2) : [undefined, filter];
      list = list.filter((p) => p.name === b && (a === undefined || p.namespace === a));
      if (list.length === 0) {
        io.err(`weft policy get: no policy ${filter}\n`);
        return 1;
      }
    }
    if (v.output === 'json') printJson(io, list);
    else io.out(renderPolicies(list));
  });
}
