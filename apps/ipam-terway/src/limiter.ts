/**
 * Token bucket: `ratePerMinute` tokens refill continuously into a bucket of `burst`.
 * Over any window of length W at most `burst + rate·W` calls pass — the property the
 * tests check against the emulator's call log.
 */
export interface TokenBucketOptions {
  ratePerMinute: number;
  /** Bucket size; defaults to one second's worth of tokens (at least 1). */
  burst?: number;
  now?: () => number;
}

export class TokenBucket {
  readonly ratePerMs: number;
  readonly burst: number;
  private tokens: number;
  private last: number;
  private readonly now: () => number;
  /** FIFO of callers waiting for a token, so that nobody starves. */
  private queue: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: TokenBucketOptions) {
    if (!(opts.ratePerMinute > 0))
      throw new RangeError(`ratePerMinute must be > 0, got ${opts.ratePerMinute}`);
    this.ratePerMs = opts.ratePerMinute / 60_000;
    this.burst = Math.max(1, Math.floor(opts.burst ?? opts.ratePerMinute / 60));
    this.now = opts.now ?? (() => performance.now());
    this.tokens = this.burst;
    this.last = this.now();
  }

  /** Resolves when a token has been taken. */
  take(): Promise<void> {
    this.refill();
    if (this.queue.length === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.queue.push(resolve);
      this.schedule();
    });
  }

  /** Tokens now available (fractional), for metrics and tests. */
  available(): number {
    this.refill();
    return this.tokens;
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + (t - this.last) * this.ratePerMs);
    this.last = t;
  }

  private schedule(): void {
    if (this.timer) return;
    const wait = Math.max(1, Math.ceil((1 - this.tokens) / this.ratePerMs));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refill();
      while (this.queue.length > 0 && this.tokens >= 1) {
        this.tokens -= 1;
        this.queue.shift()!();
      }
      if (this.queue.length > 0) this.schedule();
    }, wait);
  }
}
