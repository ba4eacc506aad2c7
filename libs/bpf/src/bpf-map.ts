import { native } from '@weft/native';
import type { Codec } from './codec';

/** BPF_MAP_TYPE_* numbers we name (linux/bpf.h). */
export const BPF_MAP_TYPE = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LPM_TRIE: 11,
  RINGBUF: 27,
} as const;

/** Update flags (linux/bpf.h). */
export const BPF_UPDATE = { ANY: 0, NOEXIST: 1, EXIST: 2 } as const;

export interface BpfMapInfo {
  id: number;
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export class BpfMapLayoutError extends Error {
  readonly code = 'EBPF_MAP_LAYOUT';
  constructor(message: string) {
    super(message);
    this.name = 'BpfMapLayoutError';
  }
}

// Maps that support BPF_MAP_LOOKUP_BATCH (not LPM tries, not rings).
const BATCHABLE = new Set<number>([BPF_MAP_TYPE.HASH, BPF_MAP_TYPE.ARRAY, BPF_MAP_TYPE.LRU_HASH]);

/** A BPF map with typed keys and values. Not for per-CPU maps (their values are per CPU). */
export class BpfMap<K, V> {
  private constructor(
    readonly fd: number,
    readonly info: BpfMapInfo,
    private readonly keyCodec: Codec<K>,
    private readonly valueCodec: Codec<V>,
    private readonly ownsFd: boolean,
  ) {
    if (info.keySize !== keyCodec.size || info.valueSize !== valueCodec.size) {
      throw new BpfMapLayoutError(
        `map ${info.name}: kernel key/value ${info.keySize}/${info.valueSize} bytes, codecs ${keyCodec.size}/${valueCodec.size}`,
      );
    }
  }

  /** Opens a pinned map (e.g. /sys/fs/bpf/weft/weft_policy); the sizes must match the codecs. */
  static openPinned<K, V>(path: string, keyCodec: Codec<K>, valueCodec: Codec<V>): BpfMap<K, V> {
    const fd = native().bpfObjGet(path);
    try {
      return new BpfMap(fd, native().bpfMapInfo(fd), keyCodec, valueCodec, true);
    } catch (err) {
      native().bpfClose(fd);
      throw err;
    }
  }

  /** Wraps an fd owned by someone else (a loaded BpfObject): close() leaves it open. */
  static fromFd<K, V>(fd: number, keyCodec: Codec<K>, valueCodec: Codec<V>): BpfMap<K, V> {
    return new BpfMap(fd, native().bpfMapInfo(fd), keyCodec, valueCodec, false);
  }

  get(key: K): V | undefined {
    const value = Buffer.alloc(this.valueCodec.size);
    return native().bpfMapLookup(this.fd, this.keyCodec.encode(key), value)
      ? this.valueCodec.decode(value)
      : undefined;
  }

  set(key: K, value: V, flags: number = BPF_UPDATE.ANY): void {
    native().bpfMapUpdate(this.fd, this.keyCodec.encode(key), this.valueCodec.encode(value), flags);
  }

  /** false when the key was absent. */
  delete(key: K): boolean {
    return native().bpfMapDelete(this.fd, this.keyCodec.encode(key));
  }

  /** All keys (a snapshot walk: entries changed meanwhile may be missed or seen twice). */
  *keys(): Generator<K> {
    for (const raw of this.rawKeys()) yield this.keyCodec.decode(raw);
  }

  *entries(): Generator<[K, V]> {
    if (BATCHABLE.has(this.info.type)) {
      yield* this.batchEntries();
      return;
    }
    const value = Buffer.alloc(this.valueCodec.size);
    for (const raw of this.rawKeys()) {
      if (native().bpfMapLookup(this.fd, raw, value))
        yield [this.keyCodec.decode(raw), this.valueCodec.decode(value)];
    }
  }

  /** Deletes many keys; returns how many existed. */
  deleteMany(keys: Iterable<K>): number {
    let n = 0;
    for (const k of keys) if (this.delete(k)) n++;
    return n;
  }

  close(): void {
    if (this.ownsFd) native().bpfClose(this.fd);
  }

  private *rawKeys(): Generator<Buffer> {
    // Collect first: deleting while walking get_next_key would restart the walk.
    const keys: Buffer[] = [];
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keyCodec.size);
      if (!native().bpfMapGetNextKey(this.fd, prev, next)) break;
      keys.push(next);
      prev = next;
    }
    yield* keys;
  }

  private *batchEntries(): Generator<[K, V]> {
    const count = 256;
    const ks = this.keyCodec.size;
    const vs = this.valueCodec.size;
    const keys = Buffer.alloc(ks * count);
    const values = Buffer.alloc(vs * count);
    // The batch cursor is opaque; for hash maps it is a bucket index (u32), keys fit too.
    let inBatch: Buffer | null = null;
    const outBatch = Buffer.alloc(Math.max(ks, 8));
    for (;;) {
      const r = native().bpfMapLookupBatch(this.fd, inBatch, outBatch, keys, values, count);
      for (let i = 0; i < r.count; i++) {
        yield [
          this.keyCodec.decode(keys.subarray(i * ks, (i + 1) * ks)),
          this.valueCodec.decode(values.subarray(i * vs, (i + 1) * vs)),
        ];
      }
      if (r.done) return;
      inBatch = Buffer.from(outBatch);
    }
  }
}
