/**
 * weft-agent runs with at most two glibc malloc arenas.
 *
 * glibc gives a thread that meets contention in malloc an arena of its own, up to 8 per core, and
 * rarely gives their free pages back; V8's GC and compiler threads allocate with malloc. In the
 * agent bench, RSS after 300 label changes was 238-243 MiB with glibc's default and 179-186 MiB
 * with MALLOC_ARENA_MAX=1 or 2 (or with --single-threaded-gc), at the same heap size; later runs
 * differ less (211-232 either way): the bench prints both. glibc reads MALLOC_ARENA_MAX only when
 * a process starts, so the agent re-executes itself once, same pid, with it set. A value already
 * in the environment is left alone (MALLOC_ARENA_MAX=0 keeps glibc's default).
 */
export const ARENA_ENV = 'MALLOC_ARENA_MAX';
export const AGENT_ARENAS = '2';

export interface ReexecPlan {
  path: string;
  argv: string[];
  env: string[];
}

export interface ProcessView {
  platform: NodeJS.Platform;
  env: NodeJS.ProcessEnv;
  execPath: string;
  /** process.argv: [execPath, script or invoked name, ...args]. */
  argv: readonly string[];
  execArgv: readonly string[];
  argv0: string;
  /** A single executable: argv[1] is the name it was invoked as, there is no script. */
  isSea: boolean;
}

/** How to start this same program again with the arena limit, or undefined when it is set. */
export function boundedArenasPlan(
  proc: ProcessView,
  extraEnv: Readonly<Record<string, string>> = {},
): ReexecPlan | undefined {
  if (proc.platform !== 'linux' || proc.env[ARENA_ENV] !== undefined) return undefined;
  const env = { ...proc.env, ...extraEnv, [ARENA_ENV]: AGENT_ARENAS };
  const [, second, ...args] = proc.argv;
  if (second === undefined) return undefined;
  const argv = proc.isSea ? [second, ...args] : [proc.argv0, ...proc.execArgv, second, ...args];
  return {
    path: proc.execPath,
    argv,
    env: Object.entries(env)
      .filter((e): e is [string, string] => e[1] !== undefined)
      .map(([k, v]) => `${k}=${v}`),
  };
}

export function currentProcess(): ProcessView {
  let isSea = false;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    isSea = (require('node:sea') as { isSea(): boolean }).isSea();
  } catch {
    // a Node without node:sea is never a single executable
  }
  return {
    platform: process.platform,
    env: process.env,
    execPath: process.execPath,
    argv: process.argv,
    execArgv: process.execArgv,
    argv0: process.argv0,
    isSea,
  };
}
