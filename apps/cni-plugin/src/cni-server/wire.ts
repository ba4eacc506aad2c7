/**
 * The weft-cni shim's wire format (shim/weft-cni-shim.c); integers are u32 little-endian:
 *   request:  "WEFTCNI1" n_env { len "KEY=VALUE" }*n_env len stdin
 *   response: "WEFTCNI1" exit_code len stdout len stderr
 */
export const WIRE_MAGIC = Buffer.from('WEFTCNI1');
/** More than the shim ever sends (1 MiB + 1 of stdin, an environment): a broken or hostile peer. */
export const MAX_REQUEST_BYTES = 8 << 20;

export interface CniWireRequest {
  env: Record<string, string>;
  stdin: Buffer;
}

export class WireError extends Error {
  readonly code = 'EPROTO';
}

/** Decodes a complete request; undefined while more bytes are needed. */
export function decodeRequest(buf: Buffer): CniWireRequest | undefined {
  if (buf.length >= WIRE_MAGIC.length && !buf.subarray(0, WIRE_MAGIC.length).equals(WIRE_MAGIC))
    throw new WireError('not a weft-cni request');
  let at = WIRE_MAGIC.length;
  const u32 = (): number | undefined => {
    if (buf.length < at + 4) return undefined;
    const v = buf.readUInt32LE(at);
    at += 4;
    return v;
  };
  const block = (): Buffer | undefined => {
    const n = u32();
    if (n === undefined || buf.length < at + n) return undefined;
    const b = buf.subarray(at, at + n);
    at += n;
    return b;
  };
  const count = u32();
  if (count === undefined) return undefined;
  const env: Record<string, string> = {};
  for (let i = 0; i < count; i++) {
    const kv = block();
    if (!kv) return undefined;
    const text = kv.toString('utf8');
    const eq = text.indexOf('=');
    if (eq > 0) env[text.slice(0, eq)] = text.slice(eq + 1);
  }
  const stdin = block();
  return stdin && { env, stdin: Buffer.from(stdin) };
}

export function encodeRequest(req: CniWireRequest): Buffer {
  const parts: Buffer[] = [WIRE_MAGIC, u32le(Object.keys(req.env).length)];
  for (const [k, v] of Object.entries(req.env)) {
    const kv = Buffer.from(`${k}=${v}`);
    parts.push(u32le(kv.length), kv);
  }
  parts.push(u32le(req.stdin.length), req.stdin);
  return Buffer.concat(parts);
}

export function encodeResponse(exitCode: number, stdout: string, stderr: string): Buffer {
  const out = Buffer.from(stdout);
  const err = Buffer.from(stderr);
  return Buffer.concat([WIRE_MAGIC, u32le(exitCode), u32le(out.length), out, u32le(err.length), err]);
}

export function decodeResponse(buf: Buffer): { exitCode: number; stdout: string; stderr: string } {
  if (!buf.subarray(0, WIRE_MAGIC.length).equals(WIRE_MAGIC)) throw new WireError('not a weft-cni response');
  let at = WIRE_MAGIC.length;
  const exitCode = buf.readUInt32LE(at);
  at += 4;
  const text = () => {
    const n = buf.readUInt32LE(at);
    const s = buf.subarray(at + 4, at + 4 + n).toString('utf8');
    at += 4 + n;
    return s;
  };
  const stdout = text();
  return { exitCode, stdout, stderr: text() };
}

function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
