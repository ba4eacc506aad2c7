/**
 * `weft`, the operator CLI. Verbs live in one table; each loads its handler lazily so `weft version`
 * stays as cheap as the CNI plugins. A verb without a handler yet is listed in --help and, when
 * run, says it is not available in this build (exit 2) instead of printing anything made up.
 *
 * To add a verb: give its row a `load` (e.g. `load: async () => (await import('./status-cli')).runStatus`).
 */
import { buildInfo } from './build-info';
import { isSingleExecutable } from './runtime';

/** Gets the arguments after the verb's words; returns the exit code. */
export type VerbHandler = (args: string[]) => Promise<number>;

interface Verb {
  words: string[];
  usage?: string;
  summary: string;
  load?: () => Promise<VerbHandler>;
  /** Internal checks: runnable, not listed in --help. */
  hidden?: boolean;
}

const VERBS: Verb[] = [
  { words: ['version'], summary: 'print the version of this build', load: async () => printVersion },
  {
    words: ['install'],
    usage: '[--bin-dir DIR] [--conf-dir DIR] [--conflist NAME]',
    summary: 'install the CNI binaries and an example conflist',
    load: async () => (await import('./install/install-cli')).runInstall,
  },
  {
    words: ['uninstall'],
    usage: '[--bin-dir DIR]',
    summary: 'remove exactly what install added',
    load: async () => (await import('./install/install-cli')).runUninstall,
  },
  {
    words: ['status'],
    usage: '[-o json] [--socket PATH]',
    summary: 'agent health and datapath state',
    load: async () => (await import('./cli/status')).runStatus,
  },
  {
    words: ['endpoint', 'list'],
    usage: '[-o json]',
    summary: 'endpoints (pods) known to the agent',
    load: async () => (await import('./cli/endpoint-list')).runEndpointList,
  },
  {
    words: ['identity', 'list'],
    usage: '[-o json]',
    summary: 'security identities and their labels',
    load: async () => (await import('./cli/identity-list')).runIdentityList,
  },
  {
    words: ['policy', 'get'],
    usage: '[NAME | NS/NAME] [-o json]',
    summary: 'network policy as the agent resolved it',
    load: async () => (await import('./cli/policy-get')).runPolicyGet,
  },
  {
    words: ['policy', 'trace'],
    usage: '--from NS/POD --to NS/POD --port 80/TCP',
    summary: 'which rule decides a flow between two endpoints',
    load: async () => (await import('./cli/policy-trace')).runPolicyTrace,
  },
  {
    words: ['bpf', 'policy', 'get'],
    usage: 'ENDPOINT [-o json]',
    summary: 'the policy map of an endpoint, as the datapath sees it',
    load: async () => (await import('./cli/bpf-policy-get')).runBpfPolicyGet,
  },
  {
    words: ['observe'],
    usage: '[--no-follow] [--type drop] [-o json]',
    summary: 'stream flow events from the datapath',
    load: async () => (await import('./cli/observe')).runObserve,
  },
  {
    words: ['__selftest-native'],
    summary: 'load the native addons and use each once',
    hidden: true,
    load: async () => (await import('./selftest-native')).runSelftestNative,
  },
];

function helpText(): string {
  const rows = VERBS.filter((v) => !v.hidden).map((v) => {
    const head = [v.words.join(' '), v.usage].filter(Boolean).join(' ');
    return `  ${head.padEnd(62)} ${v.summary}${v.load ? '' : ' (not in this build)'}`;
  });
  return [
    'usage: weft <command> [options]',
    '',
    'weft is a Kubernetes CNI with an eBPF datapath. This executable is also the CNI plugins',
    'weft-cni, weft-host-local, weft-eni and the node agent weft-agent (by the name it is run as).',
    '',
    'commands:',
    ...rows,
    '',
    'Run "weft <command> --help" for the options of a command.',
    '',
  ].join('\n');
}

async function printVersion(args: string[]): Promise<number> {
  if (args.length > 0) {
    process.stderr.write('usage: weft version\n');
    return 2;
  }
  const kind = isSingleExecutable() ? 'single executable' : 'node bundle';
  process.stdout.write(
    `weft ${buildInfo.version} (commit ${buildInfo.commit}, built ${buildInfo.builtAt}, node ${process.version}, ${kind})\n`,
  );
  return 0;
}

/** The verb whose words are the longest prefix of args. */
function findVerb(args: string[]): Verb | undefined {
  let best: Verb | undefined;
  for (const v of VERBS) {
    if (v.words.every((w, i) => args[i] === w) && v.words.length > (best?.words.length ?? 0)) best = v;
  }
  return best;
}

export async function dispatch(args: string[]): Promise<number> {
  const [first] = args;
  if (first === undefined) {
    process.stderr.write(helpText());
    return 2;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(helpText());
    return 0;
  }
  if (first === '--version') return printVersion([]);
  const verb = findVerb(args);
  if (!verb) {
    const group = VERBS.filter((v) => v.words.length > 1 && v.words[0] === first && !v.hidden);
    if (group.length > 0) {
      const subs = group.map((v) => v.words.slice(1).join(' ')).join(', ');
      process.stderr.write(`weft ${first}: expected one of: ${subs}\n`);
    } else {
      process.stderr.write(`weft: unknown command "${first}"; see "weft --help"\n`);
    }
    return 2;
  }
  if (!verb.load) {
    process.stderr.write(`weft ${verb.words.join(' ')}: not available in this build\n`);
    return 2;
  }
  return (await verb.load())(args.slice(verb.words.length));
}

export async function runWeftCli(): Promise<void> {
  process.exitCode = await dispatch(process.argv.slice(2));
}
