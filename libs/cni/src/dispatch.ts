import type { CniArgs } from './cni-args';
import { parseCniEnv, type CniCommand, type EnvSource, type ParseCniEnvOptions } from './env';
import { CniError, CNI_ERR_DECODE, CNI_ERR_INCOMPATIBLE_VERSION, CNI_ERR_INTERNAL } from './errors';
import { createLogger, type Logger } from './logger';
import { decodeJsonObject, MAX_CONF_BYTES, parseNetConf, parsePrevResult, validAttachments } from './netconf';
import { convertResult, parseResult } from './result';
import { CNI_LATEST_VERSION, CNI_SPEC_VERSIONS, highestCommonVersion, versionAtLeast } from './versions';
import type { CniResult, GcAttachment, NetConf, PluginVersionInfo, VersionedResult } from './types';

/** What a handler gets: the validated environment and network config of one invocation. */
export interface CniContext {
  command: CniCommand;
  /** '' for GC and STATUS. */
  containerId: string;
  /** '' for GC/STATUS, and on DEL when not given or already gone. */
  netns: string;
  ifname: string;
  args: CniArgs;
  /** CNI_PATH as a list of directories. */
  path: string[];
  conf: NetConf;
  /** stdin exactly as read (what IPAM delegation passes on). */
  rawConf: Buffer;
  /** conf.prevResult parsed (same version as the conf), when present. */
  prevResult: CniResult | undefined;
  /** GC: `cni.dev/valid-attachments`; [] for other commands. */
  validAttachments: GcAttachment[];
  logger: Logger;
}

/**
 * Command handlers. ADD returns the result (internal form or any supported version; it is
 * printed converted to the conf's cniVersion). A missing del/check/gc/status succeeds silently.
 */
export interface CniHandlers {
  add(ctx: CniContext): Promise<CniResult | VersionedResult>;
  del?(ctx: CniContext): Promise<void>;
  check?(ctx: CniContext): Promise<void>;
  gc?(ctx: CniContext): Promise<void>;
  status?(ctx: CniContext): Promise<void>;
}

export interface Output {
  write(chunk: string): unknown;
}

export interface DispatchOptions {
  /** Default process.env. */
  env?: EnvSource;
  /** Default process.stdin (not read for VERSION when it is a terminal). */
  stdin?: NodeJS.ReadableStream | Buffer | string;
  /** Default process.stdout. Exactly one JSON document or nothing is written to it. */
  stdout?: Output;
  /** Versions this plugin speaks (default all of CNI_SPEC_VERSIONS). */
  supportedVersions?: readonly string[];
  /** Name in logs (default "cni"). */
  pluginName?: string;
  /** Default createLogger(pluginName, {env}); reconfigured from the conf's logFile/logLevel. */
  logger?: Logger;
  envOptions?: ParseCniEnvOptions;
}

/** Reads a stream to its end, refusing more than `limit` bytes (error 6) without buffering them. */
export async function readLimited(stream: NodeJS.ReadableStream, limit = MAX_CONF_BYTES): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += b.byteLength;
    if (size > limit) {
      // Stop reading; the writer gets EPIPE, which is its problem, not a reason to hang.
      (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      throw new CniError(CNI_ERR_DECODE, `network config is too large: more than ${limit} bytes on stdin`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

async function readInput(stdin: DispatchOptions['stdin'], command: CniCommand): Promise<Buffer> {
  if (stdin === undefined) {
    if (command === 'VERSION' && process.stdin.isTTY) return Buffer.alloc(0);
    return readLimited(process.stdin);
  }
  if (typeof stdin === 'string') return Buffer.from(stdin);
  if (Buffer.isBuffer(stdin)) return stdin;
  return readLimited(stdin);
}

/** The answer to VERSION, in the version the caller asked with when we speak it. */
export function versionInfo(rawStdin: Buffer, supported: readonly string[]): PluginVersionInfo {
  let asked: unknown;
  try {
    asked = decodeJsonObject(rawStdin, 'VERSION input').cniVersion;
  } catch {
    asked = undefined; // VERSION needs no input at all
  }
  const cniVersion =
    typeof asked === 'string' && supported.includes(asked)
      ? asked
      : (highestCommonVersion(supported) ?? CNI_LATEST_VERSION);
  return { cniVersion, supportedVersions: [...supported] };
}

/**
 * Our `skel`: validates the CNI_* environment for the command, reads stdin (≤ 1 MiB), answers
 * VERSION itself, parses and validates the network config, and calls the handler. Prints the ADD
 * result (converted to the conf's cniVersion) or a spec error object on stdout; never anything
 * else. Returns the exit code (0 on success, 1 on error); the caller sets process.exitCode.
 */
export async function dispatch(handlers: CniHandlers, options: DispatchOptions = {}): Promise<number> {
  const env = options.env ?? process.env;
  const stdout = options.stdout ?? process.stdout;
  const supported = options.supportedVersions ?? CNI_SPEC_VERSIONS;
  const logger = options.logger ?? createLogger(options.pluginName ?? 'cni', { env });
  let answerVersion: string = highestCommonVersion(supported) ?? CNI_LATEST_VERSION;

  try {
    const cniEnv = parseCniEnv(env, options.envOptions);
    const rawConf = await readInput(options.stdin, cniEnv.command);
    if (cniEnv.command === 'VERSION') {
      stdout.write(JSON.stringify(versionInfo(rawConf, supported)) + '\n');
      return 0;
    }

    const conf = parseNetConf(rawConf);
    answerVersion = conf.cniVersion;
    logger.configure({ file: conf.logFile, level: conf.logLevel });
    if (!supported.includes(conf.cniVersion)) {
      throw new CniError(
        CNI_ERR_INCOMPATIBLE_VERSION,
        'incompatible CNI versions',
        `config is "${conf.cniVersion}", plugin supports ${JSON.stringify(supported)}`,
      );
    }
    requireVersionFor(cniEnv.command, conf.cniVersion);

    const ctx: CniContext = {
      ...cniEnv,
      conf,
      rawConf,
      prevResult: parsePrevResult(conf),
      validAttachments: cniEnv.command === 'GC' ? validAttachments(conf) : [],
      logger,
    };
    logger.debug('invoked', {
      command: ctx.command,
      containerId: ctx.containerId,
      ifname: ctx.ifname,
      netns: ctx.netns,
    });

    switch (ctx.command) {
      case 'ADD': {
        const result = await handlers.add(ctx);
        if (!result || typeof result !== 'object') throw new Error('ADD handler returned no result');
        // Our own handler's output is checked too: a malformed result is a bug (999), not the caller's fault.
        let parsed: CniResult;
        try {
          parsed = parseResult(result, { defaultVersion: conf.cniVersion, what: 'ADD result' });
        } catch (err) {
          throw new Error(`plugin produced an invalid result: ${(err as Error).message}`);
        }
        stdout.write(JSON.stringify(convertResult(parsed, conf.cniVersion)) + '\n');
        break;
      }
      case 'DEL':
        await handlers.del?.(ctx);
        break;
      case 'CHECK':
        await handlers.check?.(ctx);
        break;
      case 'GC':
        await handlers.gc?.(ctx);
        break;
      case 'STATUS':
        await handlers.status?.(ctx);
        break;
    }
    return 0;
  } catch (err) {
    const cniErr = CniError.from(err);
    if (cniErr.code === CNI_ERR_INTERNAL) {
      logger.error('unexpected failure', { err: cniErr.msg, stack: (err as Error)?.stack });
    } else {
      logger.info('request refused', { code: cniErr.code, msg: cniErr.msg, details: cniErr.details });
    }
    stdout.write(JSON.stringify(cniErr.toJSON(answerVersion)) + '\n');
    return 1;
  }
}

/** CHECK exists from 0.4.0 on, GC and STATUS from 1.1.0 on (error 1 for older configs, as skel). */
export function requireVersionFor(command: CniCommand, cniVersion: string): void {
  const minimum =
    command === 'CHECK' ? '0.4.0' : command === 'GC' || command === 'STATUS' ? '1.1.0' : undefined;
  if (minimum && !versionAtLeast(cniVersion, minimum)) {
    throw new CniError(
      CNI_ERR_INCOMPATIBLE_VERSION,
      `config version ${cniVersion} does not allow ${command}`,
      `${command} needs cniVersion >= ${minimum}`,
    );
  }
}
