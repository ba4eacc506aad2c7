/** `weft policy trace --from NS/POD --to NS/POD --port 80/TCP`: which rule allows or denies a flow. */
import type { TraceRequest } from '@weft/agent-api';
import { printJson, runVerb, stdio, UsageError, type CliIo, type VerbSpec } from './agent-cli';
import { renderTrace } from './render';

export const POLICY_TRACE: VerbSpec = {
  name: 'weft policy trace',
  usage: '--from NS/POD|IP --to NS/POD|IP --port PORT[/PROTO] [-o json] [--socket PATH]',
  summary:
    'Which rule decides a flow: the egress side of the source and the ingress side of the destination, each with the policies that select it and the rules that match (PROTO: TCP, UDP or SCTP; default TCP).',
  options: { from: { type: 'string' }, to: { type: 'string' }, port: { type: 'string' } },
};

export function parsePortProto(text: string): { port: number; protocol: TraceRequest['protocol'] } {
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(text);
  const port = m ? Number(m[1]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--port: PORT[/TCP|UDP|SCTP], got ${JSON.stringify(text)}`);
  return { port, protocol: (m[2]?.toUpperCase() ?? 'TCP') as TraceRequest['protocol'] };
}

export function runPolicyTrace(args: string[], io: CliIo = stdio): Promise<number> {
  return runVerb(POLICY_TRACE, args, io, async (v) => {
    const from = v.values.from as string | undefined;
    const to = v.values.to as string | undefined;
    const port = v.values.port as string | undefined;
    if (!from || !to || !port) throw new UsageError('--from, --to and --port are required');
    const t = await v.client.trace({ from, to, ...parsePortProto(port) });
    if (v.output === 'json') printJson(io, t);
    else io.out(renderTrace(t));
  });
}
