/** Structured logs: JSON lines on stderr (pino), synchronous so the last lines survive a crash. */
import { pino, type Logger } from 'pino';
import type { LogLevel } from './flags';

export type { Logger };

export function createLogger(level: LogLevel = 'info', fd = 2): Logger {
  return pino(
    { level, base: { pid: process.pid, name: 'weft-agent' }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd, sync: true }),
  );
}

/** A logger that drops everything (tests, benchmarks). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
