import type { Logger } from '@weft/cni';

/**
 * Where an invocation's time goes, logged at debug level (WEFT_LOG_LEVEL=debug or the conf's
 * logLevel): the process start up to the mode's first line, then each phase. A CNI plugin runs
 * once per pod, so this is how its latency is taken apart in the field and in benchmarks.
 */
export function phaseTimer(logger: Logger, what: string) {
  const phases: Record<string, number> = { start: round(performance.now()) };
  let last = performance.now();
  return {
    mark(phase: string): void {
      const now = performance.now();
      phases[phase] = round(now - last);
      last = now;
    },
    done(): void {
      phases.total = round(performance.now());
      logger.debug(`${what} timings (ms)`, phases);
    },
  };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
