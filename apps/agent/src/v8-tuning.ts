/**
 * V8 settings weft-agent applies to itself at start (it runs inside weft's single-executable
 * binary, so there is no command line of node's to put them on).
 *
 * --no-concurrent-sweeping: measured with apps/agent/bench (10,000 endpoints, 1,000 policies,
 * then 300 label changes): with V8's background sweeping the agent's resident memory grew from
 * ~195 MiB to 220-235 MiB over the changes while the V8 heap itself grew by 3 MiB; with sweeping
 * on the main thread it stays at ~180 MiB, and neither the full computation nor the label-change
 * latency moved beyond the run-to-run noise. A flag the operator set (NODE_OPTIONS) wins.
 */
import { setFlagsFromString } from 'node:v8';

const AGENT_V8_FLAGS = ['--no-concurrent-sweeping'];

/** The flags applied (those the operator did not set either way already). */
export function applyAgentV8Flags(
  operatorArgs: string = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' '),
): string[] {
  const applied: string[] = [];
  for (const flag of AGENT_V8_FLAGS) {
    const name = flag.replace(/^--(no-)?/, '');
    const spelled = `(${name}|${name.replace(/-/g, '_')})`;
    const mentioned = new RegExp(`(^|\\s)--(no-?)?${spelled}(?=[\\s=]|$)`).test(operatorArgs);
    if (mentioned) continue;
    setFlagsFromString(flag);
    applied.push(flag);
  }
  return applied;
}
