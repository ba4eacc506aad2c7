import { NLA_TYPE_MASK } from './constants';

// Netlink attributes: { u16 len (header included), u16 type, payload, padding to 4 bytes }.

const align4 = (n: number) => (n + 3) & ~3;

export function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

/**
 * A nested attribute. Like iproute2, without NLA_F_NESTED: the rtnetlink attributes we nest
 * (IFLA_LINKINFO, IFLA_INFO_DATA) predate the flag and are parsed either way.
 */
export function nested(type: number, children: Buffer[]): Buffer {
  return attr(type, Buffer.concat(children));
}

export function u8Attr(type: number, value: number): Buffer {
  return attr(type, Buffer.from([value]));
}

export function u16Attr(type: number, value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(value);
  return attr(type, b);
}

export function u32Attr(type: number, value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return attr(type, b);
}

/** NUL-terminated string, as the kernel's NLA_STRING/NLA_NUL_STRING policies accept. */
export function strAttr(type: number, value: string): Buffer {
  return attr(type, Buffer.concat([Buffer.from(value, 'utf8'), Buffer.from([0])]));
}

/** String without the NUL (IFLA_INFO_KIND is sent that way by iproute2; the kernel takes both). */
export function rawStrAttr(type: number, value: string): Buffer {
  return attr(type, Buffer.from(value, 'utf8'));
}

/** Attributes in `buf` from `offset`, by type (nested/byte-order flags masked off; last one wins). */
export function parseAttrs(buf: Buffer, offset = 0): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = offset;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    out.set(buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

export function readStr(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  const end = b.indexOf(0);
  return b.toString('utf8', 0, end < 0 ? b.length : end);
}

export function readU32(b: Buffer | undefined): number | undefined {
  return b && b.length >= 4 ? b.readUInt32LE(0) : undefined;
}

export function readS32(b: Buffer | undefined): number | undefined {
  return b && b.length >= 4 ? b.readInt32LE(0) : undefined;
}

export function readU16(b: Buffer | undefined): number | undefined {
  return b && b.length >= 2 ? b.readUInt16LE(0) : undefined;
}

export function readU8(b: Buffer | undefined): number | undefined {
  return b && b.length >= 1 ? b.readUInt8(0) : undefined;
}
