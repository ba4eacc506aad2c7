/**
 * One executable, several names (busybox style): the name it was invoked by picks the program.
 * Each program is imported lazily so that `weft-cni` never pays for the agent's modules: esbuild
 * turns each `import()` below into a deferred module initialiser inside the one CJS bundle, so a
 * program's modules are parsed with the file but only evaluated when that program runs. Programs
 * too big to be parsed at every start (the agent) are built apart: see CHUNKED_PROGRAMS in
 * bundle.mjs, which reads the table below.
 */
import { startupSnapshot } from 'node:v8';
import { invokedName } from './invoked-name';

type Program = () => Promise<void>;

// One line per program. Keep the shape: name -> lazy loader of the program's entry function.
const PROGRAMS: Record<string, () => Promise<Program>> = {
  'weft-cni': async () => (await import('./cni-main')).runWeftCni,
  'weft-host-local': async () => (await import('./host-local/main')).runWeftHostLocal,
  weft: async () => (await import('./weft-cli')).runWeftCli,
  'weft-eni': async () => (await import('@weft/ipam-terway')).runWeftEni,
  'weft-agent': async () => (await import('./agent-main')).runWeftAgentWithCni,
};

async function main(): Promise<void> {
  const name = invokedName();
  const load = Object.hasOwn(PROGRAMS, name) ? PROGRAMS[name] : undefined;
  if (!load) {
    // No --help here on purpose: a CNI plugin name must keep CNI semantics; only `weft` has a CLI.
    process.stderr.write(
      `weft: invoked as "${name}", which is not one of: ${Object.keys(PROGRAMS).join(', ')}\n`,
    );
    process.exitCode = 2;
    return;
  }
  try {
    const program = await load();
    await program();
  } catch (err) {
    // Programs report their own errors (CNI ones as JSON on stdout); this is the last resort.
    process.stderr.write(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    if (!process.exitCode) process.exitCode = 1;
  }
}

// A startup-snapshot build (SEA `useSnapshot`) runs this file at build time; the program must then
// start from the deserialized snapshot instead, when the real argv and environment exist.
if (startupSnapshot?.isBuildingSnapshot()) startupSnapshot.setDeserializeMainFunction(() => void main());
else void main();
