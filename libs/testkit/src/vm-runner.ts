/**
 * The test VM from the test suite: Debian's kernel under qemu (scripts/vm/run-in-vm.sh), for what
 * the host kernel lacks (ipvlan, SCTP, dummy, ...). The guest sees the host's / read-only (writes
 * land in guest memory) with the repo at the same path, so a test file can run itself, or any
 * command, inside:
 *
 *   if (!kernelHasLinkKind('ipvlan')) {
 *     const vm = vmRunnerAvailable();
 *     if (!vm.ok) skip(vm.reason);
 *     const r = await runVitestInVm(['libs/netlink/src/rtnl.privileged.test.ts'], { testNamePattern: 'ipvlan' });
 *     expect(r.tests.find((t) => t.title.includes('ipvlan'))?.status).toBe('passed');
 *   }
 *
 * Software emulation is slow: a boot costs ~10-25 s, a vitest start-up inside ~10-20 s. Boot once
 * and run everything that needs the VM in that one boot.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { SkipContext } from './privileged';

/** The repository this file belongs to (the caller's checkout, wherever it was cloned). */
export const REPO_ROOT = resolve(__dirname, '../../..');
export const VM_RUNNER = resolve(REPO_ROOT, 'scripts/vm/run-in-vm.sh');

/**
 * How vitest runs inside the VM: one fork (no worker pool to start under emulation), and hook/test
 * timeouts that allow for a CPU ~10-30x slower than the host's.
 */
export const VM_VITEST_ARGS = [
  '--pool=forks',
  '--poolOptions.forks.singleFork',
  '--hookTimeout=600000',
  '--testTimeout=300000',
];

export type VmAvailability = { ok: true; detail: string } | { ok: false; reason: string };

export interface VmRunOptions {
  /** Overall limit, boot included (default 15 min). The VM is killed when it expires (code 124). */
  timeoutMs?: number;
  /** Extra environment for the command inside the VM (passed through the runner). */
  env?: Record<string, string>;
  /** Working directory inside the VM (same path as on the host); default: the repo root. */
  cwd?: string;
  /** Called with each chunk of the command's output as it arrives. */
  onOutput?: (chunk: string, stream: 'stdout' | 'stderr') => void;
}

export interface VmResult {
  /** The command's exit code; the runner's own: 3 (cannot run), 4 (guest died), 124 (timeout). */
  code: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

export interface VmTest {
  file: string;
  /** describe titles and the test title, joined by " > " */
  fullName: string;
  title: string;
  status: 'passed' | 'failed' | 'skipped' | 'pending' | 'todo' | string;
  failureMessages: string[];
}

export interface VmVitestResult extends VmResult {
  /** Every test vitest reported inside the VM ([] when no JSON report came back). */
  tests: VmTest[];
  /** stdout without the JSON report. */
  log: string;
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

/** Whether runInVm can work here; when not, why (for a loud skip). Never boots the VM. */
export function vmRunnerAvailable(): VmAvailability {
  if (truthy(process.env.WEFT_SKIP_VM))
    return { ok: false, reason: `WEFT_SKIP_VM=${process.env.WEFT_SKIP_VM}: the test VM is opted out` };
  if (truthy(process.env.WEFT_IN_VM)) return { ok: false, reason: 'already inside the test VM' };
  if (process.platform !== 'linux') return { ok: false, reason: 'the test VM runs on Linux hosts only' };
  if (process.getuid?.() !== 0)
    return { ok: false, reason: 'the test VM needs root (it reads /boot/vmlinuz-*, the guest runs as root)' };
  if (!existsSync(VM_RUNNER)) return { ok: false, reason: `${VM_RUNNER} is missing` };
  const r = spawnSync('bash', [VM_RUNNER, '--check'], { encoding: 'utf8', timeout: 60_000 });
  if (r.status === 0) return { ok: true, detail: r.stdout.trim() };
  const why = `${r.stderr ?? ''}\n${r.stdout ?? ''}`
    .split('\n')
    .map((l) => l.replace(/^run-in-vm: /, '').trim())
    .filter(Boolean)
    .join('; ');
  return {
    ok: false,
    reason: `the test VM cannot run here: ${why || r.error?.message || `exit ${r.status}`}`,
  };
}

/** Skips the test, saying why on stdout, unless the VM can run here. */
export function requireVm(ctx: SkipContext): void {
  const vm = vmRunnerAvailable();
  if (!vm.ok) {
    console.log(`SKIPPED: ${vm.reason}`);
    ctx.skip(vm.reason);
  }
}

/** Boots the VM, runs `command` (bash) inside, and returns its exit code and output. */
export function runInVm(command: string, opts: VmRunOptions = {}): Promise<VmResult> {
  const timeoutMs = opts.timeoutMs ?? 15 * 60_000;
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  env.WEFT_VM_TIMEOUT = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
  const passNames = Object.keys(opts.env ?? {}).filter((k) => !k.startsWith('WEFT_VM_'));
  env.WEFT_VM_ENV = [process.env.WEFT_VM_ENV ?? '', ...passNames].join(' ').trim();
  delete env.NODE_EXTRA_CA_CERTS;

  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    // Its own process group: on our timeout the runner, qemu and its helpers go together.
    const child = spawn('bash', [VM_RUNNER, command], {
      cwd: opts.cwd ?? REPO_ROOT,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: string[] = [];
    const err: string[] = [];
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      out.push(c);
      opts.onOutput?.(c, 'stdout');
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      err.push(c);
      opts.onOutput?.(c, 'stderr');
    });
    let timedOut = false;
    const killGroup = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig);
      } catch {
        /* gone */
      }
    };
    // The runner enforces the limit itself; this is the backstop if it hangs.
    const backstop = setTimeout(() => {
      timedOut = true;
      killGroup('SIGTERM');
      setTimeout(() => killGroup('SIGKILL'), 15_000).unref();
    }, timeoutMs + 60_000);
    child.on('error', (e) => {
      clearTimeout(backstop);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(backstop);
      const c = code ?? (signal ? 128 : 1);
      resolvePromise({
        code: timedOut ? 124 : c,
        stdout: out.join(''),
        stderr: err.join(''),
        durationMs: Date.now() - started,
        timedOut: timedOut || c === 124,
      });
    });
  });
}

/** Single-quotes a word for bash. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const JSON_MARK = '@@weft-vm-vitest-json@@';

export interface VmVitestOptions {
  /** vitest -t: only tests whose full name matches (a regular expression). */
  testNamePattern?: string;
  /** More vitest arguments. */
  args?: string[];
}

/**
 * The bash command that runs vitest inside the VM on `files` (paths relative to the repo root) and
 * prints its JSON report after a marker; parse the output with parseVitestInVm. Exits with vitest's code.
 */
export function vitestInVmCommand(files: string[], opts: VmVitestOptions = {}): string {
  const args = [
    ...files,
    ...(opts.testNamePattern ? ['-t', opts.testNamePattern] : []),
    ...VM_VITEST_ARGS,
    ...(opts.args ?? []),
    '--reporter=default',
    '--reporter=json',
    '--outputFile.json=/tmp/weft-vm-vitest.json',
  ];
  return [
    `cd ${shellQuote(REPO_ROOT)} || exit 1`,
    `node node_modules/vitest/vitest.mjs run ${args.map(shellQuote).join(' ')}`,
    'rc=$?',
    `echo; echo ${JSON_MARK}; cat /tmp/weft-vm-vitest.json 2>/dev/null; echo`,
    'exit $rc',
  ].join('\n');
}

interface JsonReport {
  testResults?: Array<{
    name: string;
    assertionResults?: Array<{
      ancestorTitles?: string[];
      title: string;
      fullName?: string;
      status: string;
      failureMessages?: string[];
    }>;
  }>;
}

/** Splits the output of vitestInVmCommand into vitest's log and the tests of its JSON report. */
export function parseVitestInVm(stdout: string): { log: string; tests: VmTest[] } {
  const at = stdout.lastIndexOf(JSON_MARK);
  if (at < 0) return { log: stdout, tests: [] };
  const log = stdout.slice(0, at);
  let report: JsonReport;
  try {
    report = JSON.parse(stdout.slice(at + JSON_MARK.length).trim()) as JsonReport;
  } catch {
    return { log, tests: [] };
  }
  const tests: VmTest[] = [];
  for (const f of report.testResults ?? []) {
    for (const a of f.assertionResults ?? []) {
      tests.push({
        file: f.name,
        fullName: [...(a.ancestorTitles ?? []), a.title].join(' > '),
        title: a.title,
        status: a.status,
        failureMessages: a.failureMessages ?? [],
      });
    }
  }
  return { log, tests };
}

/** Boots the VM and runs vitest on `files` inside; the tests' statuses come back parsed. */
export async function runVitestInVm(
  files: string[],
  opts: VmVitestOptions & VmRunOptions = {},
): Promise<VmVitestResult> {
  const r = await runInVm(vitestInVmCommand(files, opts), opts);
  return { ...r, ...parseVitestInVm(r.stdout) };
}

/**
 * The tests of a VM run: its JSON report's, else vitest's own reporter lines ("✓ a > b 12ms"): the
 * report can be lost when the guest's node aborts at exit or the runner loses its run dir after the
 * tests ran (seen, runner-side).
 */
export function vmTestsOf(r: VmVitestResult): VmTest[] {
  if (r.tests.length > 0) return r.tests;
  const out: VmTest[] = [];
  for (const line of r.log.split('\n')) {
    const m = /^\s{3,}(✓|×|↓) (.+?)(?:\s+\d+ms)?(?:\s+\[.*\])?\s*$/.exec(line);
    if (!m) continue;
    const fullName = m[2]!;
    out.push({
      file: '',
      fullName,
      title: fullName.split(' > ').at(-1)!,
      status: m[1] === '✓' ? 'passed' : m[1] === '×' ? 'failed' : 'skipped',
      failureMessages: [],
    });
  }
  return out;
}

/** For the CI log: how long the run took, each test's status, vitest's summary from inside, the runner's lines. */
export function logVmVitest(what: string, r: VmVitestResult): void {
  const skipped = r.tests.filter((t) => t.status === 'skipped').length;
  console.log(
    `${what} in the VM: ${(r.durationMs / 1000).toFixed(0)} s (boot included), exit ${r.code}; ` +
      r.tests
        .filter((t) => t.status !== 'skipped')
        .map((t) => `${t.status}: ${t.fullName}`)
        .join('; ') +
      (skipped > 0 ? `; ${skipped} skipped (not selected, or skipped inside)` : ''),
  );
  const summary = r.log.split('\n').filter((l) => /^\s*(✓|×|↓|Test Files|Tests|Duration)|SKIPPED/.test(l));
  const runner = r.stderr.split('\n').filter((l) => l.startsWith('run-in-vm:'));
  console.log(`--- vitest inside the VM ---\n${summary.join('\n')}\n${runner.join('\n')}`);
  if (r.code !== 0 || r.tests.length === 0) console.log(r.log.slice(-6000), r.stderr.slice(-3000));
}
