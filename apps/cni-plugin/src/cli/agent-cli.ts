/**
 * What every `weft` verb that talks to the agent shares: the options (`--socket PATH`, `-o
 * json|table`, `-h`), the client, and one way to report errors, above all "the agent is not
 * running". Only @weft/agent-api is imported so the CLI stays light.
 */
import { existsSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AgentApiError, AgentClient, AgentUnavailableError, DEFAULT_AGENT_SOCKET } from '@weft/agent-api';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export const stdio: CliIo = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
};

export type OutputFormat = 'table' | 'json';

export interface VerbSpec {
  /** e.g. "weft endpoint list" */
  name: string;
  usage: string;
  summary: string;
  options?: ParseArgsConfig['options'];
  positionals?: { min: number; max: number };
}

export interface ParsedVerb {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  output: OutputFormat;
  client: AgentClient;
  socketPath: string;
}

/** Exit codes: 0 ok, 1 the agent said no / is not running, 2 bad usage. */
export const EXIT_USAGE = 2;
export const EXIT_FAILED = 1;

export class UsageError extends Error {
  readonly code = 'USAGE';
}

const COMMON_HELP = `  --socket PATH     agent API socket (default $WEFT_AGENT_SOCKET or ${DEFAULT_AGENT_SOCKET})
  -o, --output FMT  table (default) or json
  -h, --help        this text`;

export function helpOf(spec: VerbSpec): string {
  return `usage: ${spec.name} ${spec.usage}\n\n${spec.summary}\n\noptions:\n${COMMON_HELP}\n`;
}

/** undefined: --help was printed. Throws UsageError for bad arguments. */
export function parseVerb(spec: VerbSpec, args: string[], io: CliIo): ParsedVerb | undefined {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        socket: { type: 'string' },
        output: { type: 'string', short: 'o' },
        help: { type: 'boolean', short: 'h' },
        ...spec.options,
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const values = parsed.values as ParsedVerb['values'];
  if (values.help) {
    io.out(helpOf(spec));
    return undefined;
  }
  const output = (values.output ?? 'table') as string;
  if (output !== 'table' && output !== 'json')
    throw new UsageError(`-o: table or json, got ${JSON.stringify(output)}`);
  const { min, max } = spec.positionals ?? { min: 0, max: 0 };
  if (parsed.positionals.length < min || parsed.positionals.length > max)
    throw new UsageError(
      max === 0 ? `unexpected argument ${JSON.stringify(parsed.positionals[0])}` : `expected ${spec.usage}`,
    );
  const socketPath =
    (values.socket as string | undefined) ?? process.env.WEFT_AGENT_SOCKET ?? DEFAULT_AGENT_SOCKET;
  return {
    values,
    positionals: parsed.positionals,
    output,
    socketPath,
    client: new AgentClient({ socketPath, timeoutMs: 10_000 }),
  };
}

/** Runs a verb body with the shared error handling; returns the exit code. */
export async function runVerb(
  spec: VerbSpec,
  args: string[],
  io: CliIo,
  body: (v: ParsedVerb) => Promise<number | void>,
): Promise<number> {
  let v: ParsedVerb | undefined;
  try {
    v = parseVerb(spec, args, io);
    if (!v) return 0;
    return (await body(v)) ?? 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`${spec.name}: ${err.message}\nusage: ${spec.name} ${spec.usage}\n`);
      return EXIT_USAGE;
    }
    io.err(`${spec.name}: ${describeError(err, v?.socketPath)}\n`);
    return EXIT_FAILED;
  }
}

export function describeError(err: unknown, socketPath = DEFAULT_AGENT_SOCKET): string {
  if (err instanceof AgentUnavailableError) {
    if (!existsSync(err.socketPath)) return `weft-agent is not running (no socket at ${err.socketPath})`;
    if (/EACCES/.test(err.message))
      return `permission denied on ${err.socketPath} (the agent socket is root's: run as root)`;
    if (/ECONNREFUSED/.test(err.message))
      return `weft-agent is not running (nothing listens on ${err.socketPath}; a stale socket from a stopped agent)`;
    return `weft-agent is not answering on ${err.socketPath}: ${err.message}`;
  }
  if (err instanceof AgentApiError) return `${err.message} (${err.code})`;
  void socketPath;
  return err instanceof Error ? err.message : String(err);
}

export function printJson(io: CliIo, value: unknown): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`);
}
