import { native } from '@weft/native';
import type { Codec } from './codec';

/**
 * Reads a BPF ring buffer without blocking the event loop (the addon watches its epoll fd with
 * libuv). Records are decoded with `codec`; iterate with `for await`, or pass `onRecord`.
 */
export class RingBuffer<T> implements AsyncIterable<T> {
  private readonly id: number;
  private readonly fd: number;
  private readonly queue: T[] = [];
  private waiters: ((r: IteratorResult<T>) => void)[] = [];
  private closed = false;
  private readonly maxQueued: number;
  /** Records dropped because nobody read them fast enough (queue above maxQueued). */
  lost = 0;

  constructor(
    pinnedPath: string,
    private readonly codec: Codec<T>,
    opts: { ref?: boolean; maxQueued?: number; onRecord?: (record: T) => void } = {},
  ) {
    this.maxQueued = opts.maxQueued ?? 65536;
    this.fd = native().bpfObjGet(pinnedPath);
    const onRecord = opts.onRecord;
    try {
      this.id = native().bpfRingBufferOpen(this.fd, (records) => {
        for (const raw of records) {
          if (raw.length < this.codec.size) continue;
          const rec = this.codec.decode(raw);
          if (onRecord) onRecord(rec);
          else this.push(rec);
        }
      });
    } catch (err) {
      native().bpfClose(this.fd);
      throw err;
    }
    if (opts.ref === false) native().bpfRingBufferRef(this.id, false);
  }

  /** Drains what is in the ring now (otherwise the event loop does it when data arrives). */
  consume(): void {
    if (!this.closed) native().bpfRingBufferConsume(this.id);
  }

  /** Waits until `predicate` matches a record (records before it are discarded), or times out. */
  async waitFor(predicate: (record: T) => boolean, timeoutMs: number): Promise<T | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.consume();
      const i = this.queue.findIndex(predicate);
      if (i >= 0) return this.queue.splice(0, i + 1)[i];
      this.queue.length = 0;
      if (Date.now() >= deadline || this.closed) return undefined;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    native().bpfRingBufferClose(this.id);
    native().bpfClose(this.fd);
    for (const w of this.waiters.splice(0)) w({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const value = this.queue.shift();
        if (value !== undefined) return Promise.resolve({ value, done: false });
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.waiters.push(resolve));
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  private push(rec: T): void {
    const waiter = this.waiters.shift();
    if (waiter) return waiter({ value: rec, done: false });
    if (this.queue.length >= this.maxQueued) {
      this.queue.shift();
      this.lost++;
    }
    this.queue.push(rec);
  }
}
