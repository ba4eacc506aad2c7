/** Exponential backoff with full jitter: delay_n = random(0, min(cap, base·2^n)). */
export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  /** Attempts in total (the first try included). */
  maxAttempts: number;
  random?: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 200, capMs: 10_000, maxAttempts: 8 };

export function backoffDelay(attempt: number, opts: BackoffOptions): number {
  const ceiling = Math.min(opts.capMs, opts.baseMs * 2 ** attempt);
  // Never zero: a throttled caller that retries at once only makes the throttling worse.
  return Math.max(opts.baseMs / 4, (opts.random ?? Math.random)() * ceiling);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `fn` until it succeeds, `isRetryable` says no, or the attempts run out.
 * `onRetry` sees every retried error (for metrics and logs).
 */
export async function withBackoff<T>(
  fn: (attempt: number) => Promise<T>,
  isRetryable: (err: unknown) => boolean,
  opts: BackoffOptions = DEFAULT_BACKOFF,
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt + 1 >= opts.maxAttempts || !isRetryable(err)) throw err;
      const delay = backoffDelay(attempt, opts);
      onRetry?.(err, attempt, delay);
      await sleep(delay);
    }
  }
}

/** `ms` ± `fraction`·ms, so that a fleet of nodes does not act in lock step. */
export function jitter(ms: number, fraction = 0.2, random: () => number = Math.random): number {
  return Math.max(0, ms * (1 - fraction + 2 * fraction * random()));
}
