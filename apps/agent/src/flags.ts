/**
 * weft-agent's command line. Parsing is strict (unknown flags and stray arguments are errors) so
 * a typo never silently runs an agent with defaults it was not meant to have.
 */
import { hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_AGENT_QUEUE_DIR, DEFAULT_AGENT_SOCKET } from '@weft/agent-api';
import { AgentConfigError } from './errors';

export const DEFAULT_STATE_DIR = '/var/lib/weft';
export const DEFAULT_PIN_ROOT = '/sys/fs/bpf/weft';
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type SourceConfig =
  | { kind: 'manifests'; dir: string }
  /** kubeconfig undefined: in-cluster (service account). */
  | { kind: 'kubernetes'; kubeconfig?: string }
  | { kind: 'none' };

export interface AgentConfig {
  source: SourceConfig;
  nodeName: string;
  socketPath: string;
  stateDir: string;
  queueDir: string;
  pinRoot: string;
  /** BPF objects folder (default: found, see @weft/datapath findBpfObjectDir). */
  bpfDir?: string;
  /** How programs are attached: tcx links (kernel 6.6+), clsact filters, or auto (tcx where it exists). */
  tcMode?: 'auto' | 'tcx' | 'clsact';
  /** Serve the weft-cni shim's requests on cni.sock beside the API socket (default true). */
  cniServer: boolean;
  metricsAddress?: { host: string; port: number };
  logLevel: LogLevel;
  /** Endpoint GC period (netns gone); 0 disables the periodic run (the start-up one stays). */
  gcIntervalMs: number;
  /** How long an identity no pod holds stays allocated (0: released at once). */
  identityReleaseDelayMs: number;
}

export const AGENT_USAGE = `usage: weft-agent [options]

The weft node agent: keeps the BPF datapath's endpoints, identities and policy in step with
the pods on this node and the network policies that select them, and serves the agent API
(for weft-cni and the weft CLI) on a unix socket.

Policy source (at most one; none: endpoints without policy):
  --manifests DIR          watch a directory of YAML manifests (Namespace, Pod, NetworkPolicy,
                           CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy)
  --kubeconfig FILE        watch a Kubernetes API server (pods of this node, namespaces, policies)
  --in-cluster             the same with the pod's service account (default when
                           KUBERNETES_SERVICE_HOST is set and no other source is given)

Options:
  --node-name NAME         this node (default: the hostname; $NODE_NAME if set)
  --socket PATH            agent API socket, mode 0600 (default ${DEFAULT_AGENT_SOCKET})
  --state-dir DIR          persistent state (default ${DEFAULT_STATE_DIR})
  --queue-dir DIR          work weft-cni queued while the agent was down (default ${DEFAULT_AGENT_QUEUE_DIR})
  --pin-root DIR           bpffs folder of the pinned maps and programs (default ${DEFAULT_PIN_ROOT})
  --bpf-dir DIR            folder of from-container.o / to-container.o (default: found)
  --tc-mode MODE           auto (default: tcx links where the kernel has them, else clsact), tcx or
                           clsact. tcx lets the bandwidth plugin chain after weft; clsact attaches
                           and detaches faster (no RCU grace period per hook)
  --no-cni-server          do not run CNI requests for the weft-cni shim (on --socket's path with
                           .sock -> -cni.sock, e.g. /var/run/weft/agent-cni.sock);
                           each request then runs in a weft-cni process of its own (~20 ms slower)
  --metrics-address H:P    also serve Prometheus /metrics on TCP, e.g. 127.0.0.1:9962
                           (always served at /metrics on the socket)
  --gc-interval SECONDS    how often endpoints whose netns is gone are removed (default 60; 0: only at start)
  --identity-release-delay SECONDS
                           how long an identity no pod holds any more stays allocated (default 60;
                           0: at once). A pod relabelled back or replaced by a rolling update finds
                           it still there, and no other endpoint's policy is rewritten twice
  --log-level LEVEL        ${LOG_LEVELS.join(', ')} (default info); logs are JSON lines on stderr
  -h, --help               this text

On SIGTERM/SIGINT the agent closes its socket and exits; pinned maps and attached programs stay,
so policy keeps being enforced until it starts again.
`;

/** A duration flag in seconds (a trailing `s` allowed), 0..86400, as milliseconds. */
function seconds(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback * 1000;
  const s = Number(value.replace(/s$/, ''));
  if (value.trim() === '' || !Number.isFinite(s) || s < 0 || s > 86_400)
    throw new AgentConfigError(`${flag}: seconds 0..86400, got ${JSON.stringify(value)}`);
  return Math.round(s * 1000);
}

function absolute(flag: string, value: string): string {
  if (value.includes('\0')) throw new AgentConfigError(`${flag}: contains a NUL byte`);
  return isAbsolute(value) ? value : resolve(value);
}

function parseAddress(value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  // Port 0: any free port (logged at start; tests use it).
  if (!m || port < 0 || port > 65535)
    throw new AgentConfigError(
      `--metrics-address: expected HOST:PORT (e.g. 127.0.0.1:9962), got ${JSON.stringify(value)}`,
    );
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** undefined: --help was asked for. */
export function parseAgentFlags(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): AgentConfig | undefined {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        manifests: { type: 'string' },
        kubeconfig: { type: 'string' },
        'in-cluster': { type: 'boolean' },
        'node-name': { type: 'string' },
        socket: { type: 'string' },
        'state-dir': { type: 'string' },
        'queue-dir': { type: 'string' },
        'pin-root': { type: 'string' },
        'bpf-dir': { type: 'string' },
        'tc-mode': { type: 'string' },
        'no-cni-server': { type: 'boolean' },
        'metrics-address': { type: 'string' },
        'gc-interval': { type: 'string' },
        'identity-release-delay': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new AgentConfigError(`${(err as Error).message} (see weft-agent --help)`);
  }
  const v = parsed.values;
  if (v.help) return undefined;

  const chosen = [v.manifests !== undefined, v.kubeconfig !== undefined, v['in-cluster'] === true].filter(
    Boolean,
  );
  if (chosen.length > 1)
    throw new AgentConfigError('--manifests, --kubeconfig and --in-cluster are mutually exclusive');
  let source: SourceConfig;
  if (v.manifests !== undefined) source = { kind: 'manifests', dir: absolute('--manifests', v.manifests) };
  else if (v.kubeconfig !== undefined)
    source = { kind: 'kubernetes', kubeconfig: absolute('--kubeconfig', v.kubeconfig) };
  else if (v['in-cluster'] || env.KUBERNETES_SERVICE_HOST) source = { kind: 'kubernetes' };
  else source = { kind: 'none' };

  const logLevel = (v['log-level'] ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel))
    throw new AgentConfigError(
      `--log-level: one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`,
    );

  const gcIntervalMs = seconds('--gc-interval', v['gc-interval'], 60);
  const identityReleaseDelayMs = seconds('--identity-release-delay', v['identity-release-delay'], 60);

  const nodeName = v['node-name'] ?? env.NODE_NAME ?? hostname();
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(nodeName))
    throw new AgentConfigError(`--node-name: ${JSON.stringify(nodeName)} is not a valid node name`);

  const tcMode = v['tc-mode'] ?? env.WEFT_TC_MODE;
  if (tcMode !== undefined && !['auto', 'tcx', 'clsact'].includes(tcMode))
    throw new AgentConfigError(`--tc-mode: one of auto, tcx, clsact, got ${JSON.stringify(tcMode)}`);

  const stateDir = absolute('--state-dir', v['state-dir'] ?? DEFAULT_STATE_DIR);
  return {
    source,
    nodeName,
    socketPath: absolute('--socket', v.socket ?? DEFAULT_AGENT_SOCKET),
    stateDir,
    queueDir: absolute('--queue-dir', v['queue-dir'] ?? DEFAULT_AGENT_QUEUE_DIR),
    pinRoot: absolute('--pin-root', v['pin-root'] ?? DEFAULT_PIN_ROOT),
    ...(v['bpf-dir'] !== undefined && { bpfDir: absolute('--bpf-dir', v['bpf-dir']) }),
    ...(tcMode !== undefined && { tcMode: tcMode as 'auto' | 'tcx' | 'clsact' }),
    ...(v['metrics-address'] !== undefined && { metricsAddress: parseAddress(v['metrics-address']) }),
    logLevel,
    gcIntervalMs,
    identityReleaseDelayMs,
    cniServer: v['no-cni-server'] !== true,
  };
}
