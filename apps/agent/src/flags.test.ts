import { describe, expect, it } from 'vitest';
import { AgentConfigError } from './errors';
import { AGENT_USAGE, parseAgentFlags } from './flags';

describe('weft-agent flags', () => {
  it('has sensible defaults (the contract paths) and no source without flags or cluster env', () => {
    const c = parseAgentFlags(['--node-name', 'node-1'], {})!;
    expect(c).toMatchObject({
      source: { kind: 'none' },
      nodeName: 'node-1',
      socketPath: '/var/run/weft/agent.sock',
      stateDir: '/var/lib/weft',
      queueDir: '/var/lib/weft/queue',
      pinRoot: '/sys/fs/bpf/weft',
      logLevel: 'info',
      gcIntervalMs: 60_000,
      identityReleaseDelayMs: 60_000,
      cniServer: true,
    });
    expect(c.metricsAddress).toBeUndefined();
    expect(parseAgentFlags(['--no-cni-server', '--node-name', 'n'], {})!.cniServer).toBe(false);
  });

  it('takes the attach mechanism from --tc-mode or WEFT_TC_MODE, refusing anything else', () => {
    expect(parseAgentFlags(['--node-name', 'n'], {})!.tcMode).toBeUndefined();
    expect(parseAgentFlags(['--tc-mode', 'clsact', '--node-name', 'n'], {})!.tcMode).toBe('clsact');
    expect(parseAgentFlags(['--node-name', 'n'], { WEFT_TC_MODE: 'tcx' })!.tcMode).toBe('tcx');
    expect(() => parseAgentFlags(['--tc-mode', 'xdp', '--node-name', 'n'], {})).toThrow(/--tc-mode: one of auto, tcx, clsact/);
  });

  it('picks the source: manifests dir, kubeconfig, in-cluster (explicit or by environment)', () => {
    expect(parseAgentFlags(['--manifests', '/etc/weft/m', '--node-name', 'n'], {})!.source).toEqual({
      kind: 'manifests',
      dir: '/etc/weft/m',
    });
    expect(parseAgentFlags(['--kubeconfig', '/k', '--node-name', 'n'], {})!.source).toEqual({
      kind: 'kubernetes',
      kubeconfig: '/k',
    });
    expect(parseAgentFlags(['--in-cluster', '--node-name', 'n'], {})!.source).toEqual({ kind: 'kubernetes' });
    expect(parseAgentFlags(['--node-name', 'n'], { KUBERNETES_SERVICE_HOST: '10.0.0.1' })!.source).toEqual({
      kind: 'kubernetes',
    });
    // --manifests wins over the environment
    expect(
      parseAgentFlags(['--manifests', '/m', '--node-name', 'n'], { KUBERNETES_SERVICE_HOST: 'x' })!.source
        .kind,
    ).toBe('manifests');
  });

  it('parses the metrics address, node name from $NODE_NAME, gc interval, log level', () => {
    const c = parseAgentFlags(
      ['--metrics-address', '127.0.0.1:9962', '--gc-interval', '5s', '--log-level', 'debug', '--identity-release-delay', '0'],
      { NODE_NAME: 'worker-7' },
    )!;
    expect(c.metricsAddress).toEqual({ host: '127.0.0.1', port: 9962 });
    expect(c.nodeName).toBe('worker-7');
    expect(c.gcIntervalMs).toBe(5000);
    expect(c.identityReleaseDelayMs).toBe(0);
    expect(c.logLevel).toBe('debug');
    expect(
      parseAgentFlags(['--metrics-address', '[::1]:9962', '--node-name', 'n'], {})!.metricsAddress,
    ).toEqual({
      host: '::1',
      port: 9962,
    });
    expect(
      parseAgentFlags(['--metrics-address', ':9962', '--node-name', 'n'], {})!.metricsAddress!.host,
    ).toBe('0.0.0.0');
  });

  it('returns undefined for --help (the caller prints the usage, which lists every flag)', () => {
    expect(parseAgentFlags(['--help'], {})).toBeUndefined();
    expect(parseAgentFlags(['-h'], {})).toBeUndefined();
    for (const f of [
      '--manifests',
      '--kubeconfig',
      '--node-name',
      '--socket',
      '--state-dir',
      '--queue-dir',
      '--pin-root',
      '--metrics-address',
      '--log-level',
    ])
      expect(AGENT_USAGE).toContain(f);
  });

  it.each([
    [['--bogus'], /Unknown option '--bogus'/],
    [['stray'], /positional/i],
    [['--manifests', '/a', '--kubeconfig', '/b'], /mutually exclusive/],
    [['--log-level', 'loud'], /--log-level: one of/],
    [['--metrics-address', 'nohost'], /--metrics-address: expected HOST:PORT/],
    [['--metrics-address', '1.2.3.4:70000'], /--metrics-address/],
    [['--metrics-address', '1.2.3.4:-1'], /--metrics-address/],
    [['--gc-interval', '-1'], /--gc-interval/],
    [['--identity-release-delay', 'soon'], /--identity-release-delay: seconds/],
    [['--identity-release-delay', ''], /--identity-release-delay: seconds/],
    [['--node-name', 'Bad_Name'], /--node-name/],
    [['--socket', 'a\0b'], /NUL/],
  ])('refuses %j clearly', (argv, message) => {
    expect(() => parseAgentFlags(argv as string[], { NODE_NAME: 'n' })).toThrow(AgentConfigError);
    expect(() => parseAgentFlags(argv as string[], { NODE_NAME: 'n' })).toThrow(message);
  });
});
