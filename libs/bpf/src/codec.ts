/**
 * Fixed-size binary codecs for BPF map keys, values and ring-buffer records. A StructCodec mirrors
 * one C struct: it carries the C struct's name and every field's offset, which the struct contract
 * test checks against the compiled object's BTF. Field names are the C names, byte order included
 * (`dport_be16` is written big-endian; plain integers are host order, little-endian here).
 */
export interface Codec<T> {
  readonly size: number;
  encode(value: T, into?: Buffer): Buffer;
  decode(bytes: Buffer): T;
}

export type FieldKind = 'u8' | 'u16' | 'u32' | 'u64' | 'be16' | 'be32' | { bytes: number };

export interface StructField {
  /** The C member name. */
  name: string;
  offset: number;
  kind: FieldKind;
  size: number;
}

type FieldValue<K> = K extends 'u64' ? bigint : K extends { bytes: number } ? Buffer : number;

/** The TS shape of a struct from its field specs. */
export type StructOf<S extends Record<string, readonly [number, FieldKind]>> = {
  -readonly [N in keyof S]: FieldValue<S[N][1]>;
};

export interface StructCodec<T> extends Codec<T> {
  /** The C struct this mirrors, e.g. "policy_key". */
  readonly cStruct: string;
  readonly fields: readonly StructField[];
}

function kindSize(kind: FieldKind): number {
  if (typeof kind === 'object') return kind.bytes;
  return { u8: 1, u16: 2, u32: 4, u64: 8, be16: 2, be32: 4 }[kind];
}

/**
 * Declares a mirror: `defineStruct('ipcache_value', 8, { identity: [0, 'u32'], flags: [4, 'u32'] })`.
 * Fields not listed (C padding) are written as zero.
 */
export function defineStruct<const S extends Record<string, readonly [number, FieldKind]>>(
  cStruct: string,
  size: number,
  spec: S,
): StructCodec<StructOf<S>> {
  const fields: StructField[] = Object.entries(spec).map(([name, [offset, kind]]) => ({
    name,
    offset,
    kind,
    size: kindSize(kind),
  }));
  for (const f of fields) {
    if (f.offset + f.size > size)
      throw new Error(`${cStruct}.${f.name} lies outside the struct's ${size} bytes`);
  }
  return {
    cStruct,
    size,
    fields,
    encode(value, into) {
      const buf = into ?? Buffer.alloc(size);
      if (into) buf.fill(0, 0, size);
      const v = value as Record<string, unknown>;
      for (const f of fields) writeField(buf, f, v[f.name], cStruct);
      return buf;
    },
    decode(bytes) {
      if (bytes.length < size) throw new RangeError(`${cStruct}: ${bytes.length} bytes, need ${size}`);
      const out: Record<string, unknown> = {};
      for (const f of fields) out[f.name] = readField(bytes, f);
      return out as StructOf<S>;
    },
  };
}

function writeField(buf: Buffer, f: StructField, value: unknown, cStruct: string): void {
  if (value === undefined) return; // zero, like a C designated initializer
  const k = f.kind;
  if (typeof k === 'object') {
    const src = value as Buffer;
    if (!Buffer.isBuffer(src) || src.length > k.bytes)
      throw new TypeError(`${cStruct}.${f.name}: want a Buffer of ≤ ${k.bytes} bytes`);
    src.copy(buf, f.offset);
    return;
  }
  switch (k) {
    case 'u8':
      buf.writeUInt8(value as number, f.offset);
      break;
    case 'u16':
      buf.writeUInt16LE(value as number, f.offset);
      break;
    case 'u32':
      buf.writeUInt32LE(value as number, f.offset);
      break;
    case 'u64':
      buf.writeBigUInt64LE(BigInt(value as bigint), f.offset);
      break;
    case 'be16':
      buf.writeUInt16BE(value as number, f.offset);
      break;
    case 'be32':
      buf.writeUInt32BE(value as number, f.offset);
      break;
  }
}

function readField(buf: Buffer, f: StructField): unknown {
  const k = f.kind;
  if (typeof k === 'object') return Buffer.from(buf.subarray(f.offset, f.offset + k.bytes));
  switch (k) {
    case 'u8':
      return buf.readUInt8(f.offset);
    case 'u16':
      return buf.readUInt16LE(f.offset);
    case 'u32':
      return buf.readUInt32LE(f.offset);
    case 'u64':
      return buf.readBigUInt64LE(f.offset);
    case 'be16':
      return buf.readUInt16BE(f.offset);
    case 'be32':
      return buf.readUInt32BE(f.offset);
  }
}

/** A u32 key, e.g. of array maps. */
export const u32Codec: Codec<number> = {
  size: 4,
  encode(value, into) {
    const buf = into ?? Buffer.alloc(4);
    buf.writeUInt32LE(value, 0);
    return buf;
  },
  decode: (bytes) => bytes.readUInt32LE(0),
};

/** Raw bytes of a given size: for maps whose layout the caller handles. */
export function rawCodec(size: number): Codec<Buffer> {
  return {
    size,
    encode(value, into) {
      const buf = into ?? Buffer.alloc(size);
      value.copy(buf, 0, 0, size);
      return buf;
    },
    decode: (bytes) => Buffer.from(bytes.subarray(0, size)),
  };
}
