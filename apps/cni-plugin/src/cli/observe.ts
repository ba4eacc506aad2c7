/**
 * `weft observe`: datapath events (drops, and policy verdicts or traces when asked) as the agent
 * reads them from the events ring: the last kept ones, then live ones until interrupted.
 */
import type { FlowEvent } from '@weft/agent-api';
import { runVerb, stdio, UsageError, type CliIo, type VerbSpec } from './agent-cli';
import { renderFlow } from './render';

export const OBSERVE: VerbSpec = {
  name: 'weft observe',
  usage: '[--no-follow] [--last N] [--type drop|policy-verdict|trace] [--verdicts] [-o json] [--socket PATH]',
  summary:
    'Stream datapath events: the last N kept by the agent (default 20), then live ones until Ctrl-C. --no-follow: the kept ones only (default 100). --verdicts: also ask the datapath for policy-verdict events (one per new flow). -o json: one JSON object per line.',
  options: {
    'no-follow': { type: 'boolean' },
    last: { type: 'string' },
    type: { type: 'string' },
    verdicts: { type: 'boolean' },
  },
};

const TYPES: FlowEvent['type'][] = ['drop', 'policy-verdict', 'trace'];

export function runObserve(args: string[], io: CliIo = stdio, signal?: AbortSignal): Promise<number> {
  return runVerb(OBSERVE, args, io, async (v) => {
    const follow = !v.values['no-follow'];
    const lastText = v.values.last as string | undefined;
    const last = lastText === undefined ? (follow ? 20 : 100) : Number(lastText);
    if (!Number.isInteger(last) || last < 0)
      throw new UsageError(`--last: a count, got ${JSON.stringify(lastText)}`);
    const type = v.values.type as FlowEvent['type'] | undefined;
    if (type !== undefined && !TYPES.includes(type))
      throw new UsageError(`--type: one of ${TYPES.join(', ')}`);
    const abort = new AbortController();
    const stop = () => abort.abort();
    signal?.addEventListener('abort', stop, { once: true });
    if (follow) process.once('SIGINT', stop);
    try {
      for await (const e of v.client.observe(
        { follow, last, ...(type && { type }), verdicts: v.values.verdicts === true },
        abort.signal,
      )) {
        io.out(v.output === 'json' ? `${JSON.stringify(e)}\n` : renderFlow(e));
      }
    } finally {
      process.off('SIGINT', stop);
      signal?.removeEventListener('abort', stop);
    }
  });
}
