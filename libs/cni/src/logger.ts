import { appendFileSync, writeSync } from 'node:fs';

/**
 * A tiny synchronous JSON-lines logger for short-lived plugin processes: no dependencies (pino
 * costs start-up time on every pod), nothing buffered that could be lost at exit, never stdout.
 */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFields = Record<string, unknown>;

export interface Logger {
  readonly name: string;
  readonly level: LogLevel;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger for a part of the program, sharing destination and level. */
  child(name: string, fields?: LogFields): Logger;
  /** Re-points the logger (and its children), e.g. once the conf's `logFile`/`logLevel` are known. */
  configure(options: { file?: string; level?: string }): void;
}

export interface LoggerOptions {
  /** Where to read WEFT_LOG_LEVEL / WEFT_LOG_FILE (default process.env). */
  env?: Record<string, string | undefined>;
  /** Log file to append to; overrides WEFT_LOG_FILE. Without one, stderr. */
  file?: string;
  /** Overrides WEFT_LOG_LEVEL. Default: silent, or info when a log file is configured. */
  level?: string;
  /** Replaces the destination entirely (tests). */
  sink?: (line: string) => void;
}

function toLevel(s: string | undefined): LogLevel | undefined {
  const l = s?.toLowerCase();
  return (LOG_LEVELS as readonly string[]).includes(l ?? '') ? (l as LogLevel) : undefined;
}

interface Shared {
  envLevel: LogLevel | undefined;
  envFile: string | undefined;
  file: string | undefined;
  level: LogLevel;
  sink: ((line: string) => void) | undefined;
}

function resolveLevel(s: Shared, requested?: string): LogLevel {
  return s.envLevel ?? toLevel(requested) ?? (s.file ? 'info' : 'silent');
}

export function createLogger(name: string, options: LoggerOptions = {}): Logger {
  const env = options.env ?? process.env;
  const shared: Shared = {
    envLevel: toLevel(env.WEFT_LOG_LEVEL),
    envFile: env.WEFT_LOG_FILE || undefined,
    file: undefined,
    level: 'silent',
    sink: options.sink,
  };
  shared.file = options.file ?? shared.envFile;
  shared.level = options.level ? (toLevel(options.level) ?? 'silent') : resolveLevel(shared);
  return makeLogger(shared, name, {});
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

function makeLogger(shared: Shared, name: string, bound: LogFields): Logger {
  const write = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (RANK[level] < RANK[shared.level]) return;
    let line: string;
    try {
      line = JSON.stringify({
        time: new Date().toISOString(),
        level,
        name,
        pid: process.pid,
        msg,
        ...bound,
        ...fields,
      });
    } catch {
      line = JSON.stringify({
        time: new Date().toISOString(),
        level,
        name,
        msg,
        note: 'fields not serialisable',
      });
    }
    try {
      if (shared.sink) shared.sink(line);
      else if (shared.file) appendFileSync(shared.file, line + '\n', { mode: 0o600 });
      else writeSync(2, line + '\n');
    } catch {
      // Logging must never change a plugin's answer.
    }
  };
  return {
    name,
    get level() {
      return shared.level;
    },
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (child, fields) => makeLogger(shared, `${name}.${child}`, { ...bound, ...fields }),
    configure: ({ file, level }) => {
      if (file !== undefined && !shared.envFile) shared.file = file || undefined;
      shared.level = resolveLevel(shared, level);
    },
  };
}
