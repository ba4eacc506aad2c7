import { basename } from 'node:path';

/**
 * The program name the executable was started as.
 *
 * In both cases it is argv[1]: a single executable gets `[execPath, <argv[0] as exec'd>, ...args]`
 * (Node puts the resolved binary in argv[0] and shifts the invoked name to argv[1]); under
 * `node dist/bin/weft.cjs` or through a link to it, argv[1] is the script path. A trailing
 * `.cjs`/`.js` is dropped so `node weft.cjs` means `weft`.
 */
export function invokedName(argv: readonly string[] = process.argv): string {
  return basename(argv[1] ?? '').replace(/\.c?js$/, '');
}
