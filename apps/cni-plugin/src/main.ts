/**
 * One executable, several names (busybox style): the name it was invoked by picks the program.
 * Each program is imported lazily so that `weft-cni` never pays for the agent's modules.
 */
import { basename } from 'node:path';

type Program = () => Promise<void>;

const PROGRAMS: Record<string, () => Promise<Program>> = {
  'weft-cni': async () => (await import('./cni-main')).runWeftCni,
};

function invokedName(): string {
  // In a SEA argv[0] and argv[1] are both the executable; under node, argv[1] is the script/link.
  const viaNode = basename(process.execPath) === 'node' || basename(process.execPath).startsWith('node');
  return basename(viaNode ? (process.argv[1] ?? '') : process.argv[0] ?? '').replace(/\.c?js$/, '');
}

export async function main(): Promise<void> {
  const name = invokedName();
  const load = PROGRAMS[name];
  if (!load) {
    process.stderr.write(`weft: invoked as "${name}"; known names: ${Object.keys(PROGRAMS).join(', ')}\n`);
    process.exitCode = 2;
    return;
  }
  await (await load())();
}

void main();
