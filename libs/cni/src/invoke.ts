import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import type { CniArgs } from './cni-args';
import type { CniCommand, EnvSource } from './env';
import {
  CniError,
  CNI_ERR_DECODE,
  CNI_ERR_INCOMPATIBLE_VERSION,
  CNI_ERR_INTERNAL,
  CNI_ERR_INVALID_NETCONF,
  CNI_ERR_PLUGIN_NOT_AVAILABLE,
  CNI_ERR_TRY_AGAIN_LATER,
  CNI_ERR_UNKNOWN_CONTAINER,
} from './errors';
import type { Logger } from './logger';
import { decodeJsonObject } from './netconf';
import { convertResult, parseResult, short } from './result';
import { CNI_SPEC_VERSIONS, compareVersions, highestCommonVersion, versionAtLeast } from './versions';
import type { CniResult, NetConf, PluginVersionInfo } from './types';

/** Default time a delegated plugin may take before it is killed (error 11). */
export const DEFAULT_PLUGIN_TIMEOUT_MS = 30_000;
/** Most stdout we accept from a plugin; a result is a few KiB. */
const MAX_PLUGIN_OUTPUT = 4 * 1024 * 1024;

/**
 * Finds the executable for a plugin `type` in CNI_PATH. A type that is not a plain file name
 * (empty, ".", "..", containing "/" or NUL) is error 7; a plugin found nowhere is error 50.
 */
export function findPlugin(type: string, cniPath: readonly string[]): string {
  if (typeof type !== 'string' || type === '' || type === '.' || type === '..' || /[/\0]/.test(type)) {
    throw new CniError(
      CNI_ERR_INVALID_NETCONF,
      `invalid plugin type ${short(type)}: must be a plain file name`,
    );
  }
  for (const dir of cniPath) {
    const candidate = join(dir, type);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here (or not executable): keep looking
    }
  }
  throw new CniError(
    CNI_ERR_PLUGIN_NOT_AVAILABLE,
    `plugin "${type}" not found`,
    cniPath.length ? `searched CNI_PATH ${cniPath.join(':')}` : 'CNI_PATH is empty',
  );
}

/** The CNI_* values passed to a delegated plugin. */
export interface ExecEnv {
  containerId?: string;
  netns?: string;
  ifname?: string;
  /** CNI_ARGS as a string, or parsed (its `raw` is passed on). */
  args?: string | CniArgs;
  path: readonly string[];
}

export interface ExecPluginOptions {
  pluginPath: string;
  command: CniCommand;
  /** The network config, JSON-encoded onto the plugin's stdin (VERSION may omit it). */
  conf?: Record<string, unknown>;
  env: ExecEnv;
  /** Default DEFAULT_PLUGIN_TIMEOUT_MS. On expiry the plugin is SIGKILLed and error 11 thrown. */
  timeoutMs?: number;
  /** ADD: version to convert the result to (default the conf's cniVersion). */
  resultVersion?: string;
  /** 'inherit' (default; spec: delegate stderr goes to the caller's stderr) or 'pipe' (kept for error details). */
  stderr?: 'inherit' | 'pipe';
  /** Environment the CNI_* variables are layered on (default process.env, its CNI_* removed). */
  baseEnv?: EnvSource;
}

interface RawRun {
  stdout: Buffer;
  stderr: string;
}

function runPlugin(o: ExecPluginOptions): Promise<RawRun> {
  const base = o.baseEnv ?? process.env;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined && !k.startsWith('CNI_')) env[k] = v;
  env.CNI_COMMAND = o.command;
  if (o.env.containerId) env.CNI_CONTAINERID = o.env.containerId;
  if (o.env.netns) env.CNI_NETNS = o.env.netns;
  if (o.env.ifname) env.CNI_IFNAME = o.env.ifname;
  const args = typeof o.env.args === 'string' ? o.env.args : o.env.args?.raw;
  if (args) env.CNI_ARGS = args;
  env.CNI_PATH = o.env.path.join(':');
  const timeoutMs = o.timeoutMs ?? DEFAULT_PLUGIN_TIMEOUT_MS;
  const name = o.pluginPath.split('/').pop() ?? o.pluginPath;

  return new Promise((resolve, reject) => {
    // Own process group, so that a timeout kills the plugin and anything it started (a shell's
    // children would otherwise keep our pipes open).
    const child = spawn(o.pluginPath, [], {
      env,
      detached: true,
      stdio: ['pipe', 'pipe', o.stderr === 'pipe' ? 'pipe' : 'inherit'],
    });
    const out: Buffer[] = [];
    let outSize = 0;
    let errText = '';
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const killGroup = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      child.stdout?.destroy();
      child.stderr?.destroy();
    };
    const timer = setTimeout(() => {
      killGroup();
      settle(() =>
        reject(
          new CniError(
            CNI_ERR_TRY_AGAIN_LATER,
            `plugin ${name} timed out after ${timeoutMs} ms on ${o.command}`,
            undefined,
            {
              retryable: true,
            },
          ),
        ),
      );
    }, timeoutMs);

    child.stdout!.on('data', (b: Buffer) => {
      outSize += b.byteLength;
      if (outSize <= MAX_PLUGIN_OUTPUT) return void out.push(b);
      killGroup();
      settle(() =>
        reject(
          new CniError(
            CNI_ERR_DECODE,
            `plugin ${name} wrote more than ${MAX_PLUGIN_OUTPUT} bytes on ${o.command}`,
          ),
        ),
      );
    });
    child.stderr?.on('data', (b: Buffer) => {
      errText = (errText + b.toString()).slice(-4096);
    });
    child.stdin!.on('error', () => {
      /* the plugin may exit without reading stdin (e.g. VERSION); its exit status tells the story */
    });
    child.stdin!.end(o.conf === undefined ? '' : JSON.stringify(o.conf));

    child.on('error', (err: NodeJS.ErrnoException) => {
      settle(() =>
        reject(
          new CniError(
            CNI_ERR_PLUGIN_NOT_AVAILABLE,
            `cannot execute plugin ${o.pluginPath}`,
            err.code ?? err.message,
          ),
        ),
      );
    });
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out);
      settle(() =>
        code === 0
          ? resolve({ stdout, stderr: errText })
          : reject(pluginFailure(name, o.command, code, signal, stdout, errText)),
      );
    });
  });
}

/** A failed plugin's spec error object rethrown as CniError; otherwise 999 with what we know. */
function pluginFailure(
  name: string,
  command: string,
  code: number | null,
  signal: string | null,
  stdout: Buffer,
  stderr: string,
): CniError {
  try {
    const o = decodeJsonObject(stdout, `${name} error output`);
    if (typeof o.code === 'number' && Number.isInteger(o.code)) {
      return new CniError(
        o.code,
        typeof o.msg === 'string' ? o.msg : '',
        typeof o.details === 'string' ? o.details : undefined,
      );
    }
  } catch {
    // not a spec error object: fall through
  }
  const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
  const text = (stdout.toString().trim() || stderr.trim()).slice(-1024);
  return new CniError(CNI_ERR_INTERNAL, `plugin ${name} ${how} on ${command}`, text || undefined);
}

/**
 * Runs a CNI plugin (libcni `invoke`): CNI_* set, the rest of the environment inherited, the
 * conf on stdin. ADD returns the result converted to `resultVersion` (default conf.cniVersion);
 * other commands return undefined. A plugin's error object becomes a CniError with its
 * code/msg/details; a timeout is error 11 (retryable: the usual cause is a busy or restarting
 * dependency, and the runtime will retry the sandbox anyway).
 */
export async function execPlugin(options: ExecPluginOptions): Promise<CniResult | undefined> {
  const { stdout } = await runPlugin(options);
  if (options.command !== 'ADD') return undefined;
  const name = options.pluginPath.split('/').pop();
  const raw = decodeJsonObject(stdout, `${name} ADD result`);
  const confVersion = typeof options.conf?.cniVersion === 'string' ? options.conf.cniVersion : undefined;
  const target =
    options.resultVersion ?? confVersion ?? (typeof raw.cniVersion === 'string' ? raw.cniVersion : '1.1.0');
  const parsed = parseResult(raw, { defaultVersion: confVersion, what: `${name} result` });
  return parseResult(convertResult(parsed, target));
}

/** Asks a plugin which versions it speaks (VERSION). */
export async function pluginVersions(
  pluginPath: string,
  options: { cniVersion?: string; timeoutMs?: number; baseEnv?: EnvSource } = {},
): Promise<PluginVersionInfo> {
  const { stdout } = await runPlugin({
    pluginPath,
    command: 'VERSION',
    conf: options.cniVersion ? { cniVersion: options.cniVersion } : {},
    env: { path: [] },
    timeoutMs: options.timeoutMs,
    baseEnv: options.baseEnv,
    stderr: 'pipe',
  });
  const o = decodeJsonObject(stdout, 'VERSION output');
  if (!Array.isArray(o.supportedVersions) || o.supportedVersions.some((v) => typeof v !== 'string')) {
    throw new CniError(CNI_ERR_DECODE, `plugin ${pluginPath} gave no supportedVersions`, short(o));
  }
  return { cniVersion: String(o.cniVersion ?? ''), supportedVersions: o.supportedVersions as string[] };
}

// ---- delegation (spec section 4) ------------------------------------------------------------

/** What a delegating plugin passes on; a dispatch CniContext fits. */
export interface DelegateContext {
  containerId: string;
  netns: string;
  ifname: string;
  args: CniArgs | string;
  path: readonly string[];
  logger?: Logger;
}

export interface DelegateOptions {
  timeoutMs?: number;
  stderr?: 'inherit' | 'pipe';
  /**
   * When the delegate refuses the conf's version (error 1), ask it for its versions and retry
   * with the highest common older one, converting prevResult down and the result back up
   * (default true). Lets a 1.1.0 config use the 1.0.0 reference plugins. GC/STATUS (and CHECK
   * before 0.4.0) are skipped for a delegate too old to have them.
   */
  negotiateVersion?: boolean;
  baseEnv?: EnvSource;
}

function minimumFor(command: CniCommand): string {
  return command === 'GC' || command === 'STATUS' ? '1.1.0' : command === 'CHECK' ? '0.4.0' : '0.3.0';
}

async function delegate(
  command: CniCommand,
  type: string,
  conf: NetConf,
  ctx: DelegateContext,
  options: DelegateOptions,
): Promise<CniResult | undefined> {
  const pluginPath = findPlugin(type, ctx.path);
  const bare = command === 'GC' || command === 'STATUS';
  const env: ExecEnv = bare
    ? { path: ctx.path }
    : { containerId: ctx.containerId, netns: ctx.netns, ifname: ctx.ifname, args: ctx.args, path: ctx.path };
  const run = (c: NetConf, resultVersion?: string) =>
    execPlugin({
      pluginPath,
      command,
      conf: c,
      env,
      timeoutMs: options.timeoutMs,
      stderr: options.stderr,
      baseEnv: options.baseEnv,
      resultVersion,
    });
  const negotiate = options.negotiateVersion !== false;
  // GC and STATUS are newer than most delegates: ask first rather than send them a command
  // they would misread (older skels answer an unknown command with a confusing error).
  if (negotiate && bare) {
    const info = await pluginVersions(pluginPath, { timeoutMs: options.timeoutMs, baseEnv: options.baseEnv });
    if (!info.supportedVersions.includes(conf.cniVersion))
      return retryOlder(err1(type, conf, info.supportedVersions), info.supportedVersions);
  }
  try {
    return await run(conf);
  } catch (err) {
    if (!(err instanceof CniError) || err.code !== CNI_ERR_INCOMPATIBLE_VERSION || !negotiate) throw err;
    const info = await pluginVersions(pluginPath, { timeoutMs: options.timeoutMs, baseEnv: options.baseEnv });
    return retryOlder(err, info.supportedVersions);
  }

  async function retryOlder(err: CniError, theirs: readonly string[]): Promise<CniResult | undefined> {
    const older = CNI_SPEC_VERSIONS.filter((v) => compareVersions(v, conf.cniVersion) < 0);
    const version = highestCommonVersion(theirs, older);
    if (version === undefined) throw err;
    if (!versionAtLeast(version, minimumFor(command))) {
      ctx.logger?.info(`delegate ${type} speaks at most ${version}: skipping ${command}`);
      return undefined;
    }
    ctx.logger?.debug(`delegate ${type} refused ${conf.cniVersion}; retrying with ${version}`);
    const downgraded: NetConf = { ...conf, cniVersion: version };
    if (conf.prevResult) {
      const prev = parseResult(conf.prevResult, { defaultVersion: conf.cniVersion, what: 'prevResult' });
      downgraded.prevResult = convertResult(prev, version) as unknown as Record<string, unknown>;
    }
    const result = await run(downgraded, version);
    return result && parseResult(convertResult(result, conf.cniVersion));
  }
}

function err1(type: string, conf: NetConf, theirs: readonly string[]): CniError {
  return new CniError(
    CNI_ERR_INCOMPATIBLE_VERSION,
    `delegate ${type} does not support CNI version ${conf.cniVersion}`,
    `it supports ${theirs.join(', ')}`,
  );
}

/**
 * ADD through a delegate (typically IPAM): `conf` is the whole network config, as the spec
 * says; the result comes back in conf.cniVersion.
 */
export async function delegateAdd(
  type: string,
  conf: NetConf,
  ctx: DelegateContext,
  options: DelegateOptions = {},
): Promise<CniResult> {
  const result = await delegate('ADD', type, conf, ctx, options);
  if (!result) throw new CniError(CNI_ERR_DECODE, `delegate ${type} returned no result`);
  return result;
}

/**
 * DEL through a delegate. Best effort as DEL must be: a delegate that is not installed, or that
 * says the container is unknown (3), counts as done. Other errors are thrown for the caller to
 * decide (and should not stop it from cleaning up the rest).
 */
export async function delegateDel(
  type: string,
  conf: NetConf,
  ctx: DelegateContext,
  options: DelegateOptions = {},
): Promise<void> {
  try {
    await delegate('DEL', type, conf, ctx, options);
  } catch (err) {
    if (
      err instanceof CniError &&
      (err.code === CNI_ERR_PLUGIN_NOT_AVAILABLE || err.code === CNI_ERR_UNKNOWN_CONTAINER)
    ) {
      ctx.logger?.warn(`DEL via ${type} treated as done: ${err.message}`);
      return;
    }
    throw err;
  }
}

export async function delegateCheck(
  type: string,
  conf: NetConf,
  ctx: DelegateContext,
  options: DelegateOptions = {},
): Promise<void> {
  await delegate('CHECK', type, conf, ctx, options);
}

/** GC through a delegate: `conf` must carry `cni.dev/valid-attachments`. */
export async function delegateGc(
  type: string,
  conf: NetConf,
  ctx: Pick<DelegateContext, 'path' | 'logger'>,
  options: DelegateOptions = {},
): Promise<void> {
  await delegate('GC', type, conf, { containerId: '', netns: '', ifname: '', args: '', ...ctx }, options);
}

export async function delegateStatus(
  type: string,
  conf: NetConf,
  ctx: Pick<DelegateContext, 'path' | 'logger'>,
  options: DelegateOptions = {},
): Promise<void> {
  await delegate('STATUS', type, conf, { containerId: '', netns: '', ifname: '', args: '', ...ctx }, options);
}
