import { afterEach, describe, expect, it, vi } from 'vitest';
import { invokedName } from './invoked-name';
import { dispatch } from './weft-cli';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
  return { out: () => out.join(''), err: () => err.join('') };
}
afterEach(() => vi.restoreAllMocks());

describe('invokedName', () => {
  it('reads argv[1] in both shapes: single executable and node script', () => {
    // SEA: Node puts the resolved binary first and the name it was exec'd as second.
    expect(invokedName(['/opt/cni/bin/weft', '/opt/cni/bin/weft-cni'])).toBe('weft-cni');
    expect(invokedName(['/usr/bin/node', '/work/dist/bin/weft.cjs', 'version'])).toBe('weft');
    expect(invokedName(['/usr/bin/node', '/work/dist/bin/weft-host-local'])).toBe('weft-host-local');
    expect(invokedName(['/usr/bin/node'])).toBe('');
  });

  it('takes $WEFT_PROGRAM (what the weft-cni shim sets) first, and removes it', () => {
    const env: NodeJS.ProcessEnv = { WEFT_PROGRAM: 'weft-cni', PATH: '/bin' };
    expect(invokedName(['/opt/cni/bin/weft', '/opt/cni/bin/weft'], env)).toBe('weft-cni');
    expect(env).toEqual({ PATH: '/bin' });
  });
});

describe('weft CLI dispatch', () => {
  it('prints help on --help (exit 0) and on no arguments (stderr, exit 2)', async () => {
    let io = capture();
    expect(await dispatch(['--help'])).toBe(0);
    expect(io.out()).toMatch(/^usage: weft <command>/);
    vi.restoreAllMocks();
    io = capture();
    expect(await dispatch([])).toBe(2);
    expect(io.err()).toMatch(/^usage: weft <command>/);
  });

  it('matches the longest verb and hands it the rest of the arguments', async () => {
    const io = capture();
    // `bpf policy get` (not a shorter verb) gets "42"; with no agent it says so (exit 1).
    expect(await dispatch(['bpf', 'policy', 'get', '42', '--socket', '/nonexistent/agent.sock'])).toBe(1);
    expect(io.err()).toBe(
      'weft bpf policy get: weft-agent is not running (no socket at /nonexistent/agent.sock)\n',
    );
    expect(io.out()).toBe('');
  });

  it('runs a verb with a handler and passes the rest of the arguments', async () => {
    const io = capture();
    expect(await dispatch(['version'])).toBe(0);
    expect(io.out()).toMatch(/^weft \S+ \(commit \S+, built \S+, node v\d+/);
    expect(await dispatch(['version', 'extra'])).toBe(2);
  });

  it('says what a verb group expects, and rejects unknown commands', async () => {
    const io = capture();
    expect(await dispatch(['identity'])).toBe(2);
    expect(await dispatch(['--frob'])).toBe(2);
    expect(io.err()).toMatch(/weft identity: expected one of: list\n.*unknown command "--frob"/s);
  });
});
