import { basename } from 'node:path';

/** Set by the weft-cni shim when it runs a request here instead of in the agent (shim/). */
export const PROGRAM_ENV = 'WEFT_PROGRAM';

/**
 * The program name the executable was started as.
 *
 * In both cases it is argv[1]: a single executable gets `[execPath, <argv[0] as exec'd>, ...args]`
 * (Node puts the resolved binary in argv[0] and shifts the invoked name to argv[1]); under
 * `node dist/bin/weft.cjs` or through a link to it, argv[1] is the script path. A trailing
 * `.cjs`/`.js` is dropped so `node weft.cjs` means `weft`. $WEFT_PROGRAM overrides both, and is
 * removed from the environment so that plugins this one starts do not inherit it.
 */
export function invokedName(argv: readonly string[] = process.argv, env: NodeJS.ProcessEnv = process.env): string {
  const named = env[PROGRAM_ENV];
  if (named) {
    delete env[PROGRAM_ENV];
    return named;
  }
  return basename(argv[1] ?? '').replace(/\.c?js$/, '');
}
