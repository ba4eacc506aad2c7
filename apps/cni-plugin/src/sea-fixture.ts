import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = join(__dirname, '..', '..', '..');
const nativeAddon = join(root, 'libs/native/build/Release/weft_native.node');

/** Why the single executable cannot be built here, or undefined if it can. */
export function cannotBuildSea(): string | undefined {
  if (!existsSync(nativeAddon))
    return `${nativeAddon} is not built (flock /tmp/weft-native.lock bash scripts/build-native.sh)`;
  return undefined;
}

/**
 * Builds weft.cjs + the SEA into `out` with apps/cni-plugin/bundle.mjs (the real build). Async: a
 * build can take tens of seconds on a busy machine, too long to block a vitest worker.
 */
export function buildInto(out: string, ...args: string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [join(root, 'apps/cni-plugin/bundle.mjs'), '--out', out, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: cleanEnv(),
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done() : fail(new Error(`bundle.mjs exited ${code}: ${output}`))));
  });
}

/** Copies the executable alone into `dir` (no node_modules, no repository next to it). */
export function copyAlone(binary: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const copy = join(dir, 'weft');
  copyFileSync(binary, copy);
  return copy;
}

/** An environment like a CNI runtime gives: no NODE_OPTIONS (a SEA honours it) or test runner vars. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...extra };
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function run(file: string, args: string[] = [], env: Record<string, string> = {}, input = ''): Run {
  const r = spawnSync(file, args, { cwd: dirname(file), env: cleanEnv(env), input, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function runAsync(file: string, args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      cwd: dirname(file),
      env: cleanEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}
