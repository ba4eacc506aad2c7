import { describe, expect, it } from 'vitest';
import { backoffDelay, jitter, withBackoff } from './backoff';
import { TokenBucket } from './limiter';

describe('token bucket', () => {
  it('lets a burst through, then paces at the rate, in FIFO order', async () => {
    let now = 0;
    const b = new TokenBucket({ ratePerMinute: 600, burst: 3, now: () => now });
    const order: number[] = [];
    for (let i = 0; i < 3; i++) await b.take().then(() => order.push(i));
    expect(order).toEqual([0, 1, 2]);
    const waiting = [3, 4].map((i) => b.take().then(() => order.push(i)));
    await new Promise((r) => setTimeout(r, 30));
    expect(order).toEqual([0, 1, 2]);
    now = 100; // 600/min = one token per 100 ms
    await new Promise((r) => setTimeout(r, 150));
    expect(order).toEqual([0, 1, 2, 3]);
    now = 200;
    await Promise.all(waiting);
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });

  it('defaults the burst to one second of tokens', () => {
    expect(new TokenBucket({ ratePerMinute: 400 }).burst).toBe(6);
    expect(new TokenBucket({ ratePerMinute: 30 }).burst).toBe(1);
    expect(() => new TokenBucket({ ratePerMinute: 0 })).toThrow(RangeError);
  });
});

describe('backoff', () => {
  it('grows exponentially with full jitter under a cap, never zero', () => {
    const opts = { baseMs: 100, capMs: 1_000, maxAttempts: 5 };
    expect(backoffDelay(0, { ...opts, random: () => 1 })).toBe(100);
    expect(backoffDelay(3, { ...opts, random: () => 1 })).toBe(800);
    expect(backoffDelay(9, { ...opts, random: () => 1 })).toBe(1_000);
    expect(backoffDelay(9, { ...opts, random: () => 0 })).toBe(25);
    expect(jitter(1000, 0.2, () => 0)).toBe(800);
    expect(jitter(1000, 0.2, () => 1)).toBeCloseTo(1200);
  });

  it('retries only what is retryable, up to maxAttempts', async () => {
    let n = 0;
    const retried: number[] = [];
    const ok = await withBackoff(
      async () => {
        if (++n < 3) throw new Error('transient');
        return 'done';
      },
      () => true,
      { baseMs: 1, capMs: 2, maxAttempts: 5 },
      (_e, attempt) => retried.push(attempt),
    );
    expect(ok).toBe('done');
    expect(retried).toEqual([0, 1]);
    n = 0;
    await expect(
      withBackoff(
        async () => {
          n++;
          throw new Error('business');
        },
        () => false,
        { baseMs: 1, capMs: 2, maxAttempts: 5 },
      ),
    ).rejects.toThrow('business');
    expect(n).toBe(1);
    n = 0;
    await expect(
      withBackoff(
        async () => {
          n++;
          throw new Error('down');
        },
        () => true,
        { baseMs: 1, capMs: 2, maxAttempts: 4 },
      ),
    ).rejects.toThrow('down');
    expect(n).toBe(4);
  });
});
