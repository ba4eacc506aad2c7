/**
 * Server-side check of the two signatures the Alibaba Cloud SDKs send for RPC-style APIs:
 * - ACS3-HMAC-SHA256 (the default of @alicloud/openapi-core): an `Authorization` header over a
 *   canonical request (method, path, sorted query, signed headers, payload hash);
 * - the legacy RPC signature (`signatureAlgorithm: 'v2'`): `Signature` in the query,
 *   HMAC-SHA1 keyed with `AccessKeySecret&` over `METHOD&%2F&encode(sorted params)`.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Percent-encoding as the SDK signs it (RFC 3986: also ! ' ( ) *). */
export function acsEncode(s: string): string {
  return encodeURIComponent(s)
    .replace(/!/g, '%21')
    .replace(/'/g, '%27')
    .replace(/\(/g, '%28')
    .replace(/\)/g, '%29')
    .replace(/\*/g, '%2A');
}

export interface SignedRequest {
  method: string;
  pathname: string;
  /** Decoded query parameters. */
  query: Record<string, string>;
  /** Lower-cased header names. */
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** Form parameters of an x-www-form-urlencoded body (signed by the v2 algorithm). */
  form: Record<string, string>;
}

export type SignatureCheck =
  { ok: true; accessKeyId: string; algorithm: string } | { ok: false; code: string; message: string };

const header = (req: SignedRequest, name: string): string => {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : (v ?? '');
};

const safeEqual = (a: string, b: string): boolean =>
  a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

export function verifyAcs3(req: SignedRequest, secretOf: (ak: string) => string | undefined): SignatureCheck {
  const auth = header(req, 'authorization');
  const m = /^(ACS3-HMAC-SHA256) Credential=([^,]+),SignedHeaders=([^,]*),Signature=([0-9a-f]+)$/.exec(auth);
  if (!m) return { ok: false, code: 'IncompleteSignature', message: 'malformed Authorization header' };
  const [, algorithm, accessKeyId, signedHeaderList, signature] = m as unknown as [
    string,
    string,
    string,
    string,
    string,
  ];
  const secret = secretOf(accessKeyId);
  if (secret === undefined)
    return { ok: false, code: 'InvalidAccessKeyId.NotFound', message: `unknown key ${accessKeyId}` };
  const signed = signedHeaderList.split(';');
  for (const required of [
    'host',
    'x-acs-action',
    'x-acs-date',
    'x-acs-signature-nonce',
    'x-acs-content-sha256',
  ]) {
    if (!signed.includes(required))
      return { ok: false, code: 'IncompleteSignature', message: `${required} is not signed` };
  }
  const payloadHash = createHash('sha256').update(req.body).digest('hex');
  if (header(req, 'x-acs-content-sha256') !== payloadHash) {
    return {
      ok: false,
      code: 'IncompleteSignature',
      message: 'x-acs-content-sha256 does not match the body',
    };
  }
  const canonicalQuery = Object.keys(req.query)
    .sort()
    .map((k) => `${k}=${acsEncode(req.query[k]!)}`)
    .join('&');
  const canonicalHeaders = signed.map((h) => `${h}:${header(req, h).trim()}\n`).join('');
  const canonicalRequest = [
    req.method,
    req.pathname,
    canonicalQuery,
    canonicalHeaders,
    signed.join(';'),
    payloadHash,
  ].join('\n');
  const stringToSign = `${algorithm}\n${createHash('sha256').update(canonicalRequest).digest('hex')}`;
  const expected = createHmac('sha256', secret).update(stringToSign).digest('hex');
  if (!safeEqual(expected, signature)) {
    return { ok: false, code: 'SignatureDoesNotMatch', message: 'the request signature does not match' };
  }
  return { ok: true, accessKeyId, algorithm };
}

export function verifyRpcV2(
  req: SignedRequest,
  secretOf: (ak: string) => string | undefined,
): SignatureCheck {
  const params = { ...req.query, ...req.form };
  const { Signature: signature, AccessKeyId: accessKeyId, SignatureMethod: method } = params;
  if (!signature || !accessKeyId)
    return { ok: false, code: 'MissingParameter', message: 'Signature/AccessKeyId missing' };
  if (method !== 'HMAC-SHA1')
    return { ok: false, code: 'InvalidParameter', message: `SignatureMethod ${method}` };
  const secret = secretOf(accessKeyId);
  if (secret === undefined)
    return { ok: false, code: 'InvalidAccessKeyId.NotFound', message: `unknown key ${accessKeyId}` };
  const canonical = Object.keys(params)
    .filter((k) => k !== 'Signature')
    .sort()
    .map((k) => `${acsEncode(k)}=${acsEncode(params[k]!)}`)
    .join('&');
  const stringToSign = `${req.method}&${acsEncode('/')}&${acsEncode(canonical)}`;
  const expected = createHmac('sha1', `${secret}&`).update(stringToSign).digest('base64');
  if (!safeEqual(expected, signature)) {
    return { ok: false, code: 'SignatureDoesNotMatch', message: 'the request signature does not match' };
  }
  return { ok: true, accessKeyId, algorithm: 'HMAC-SHA1' };
}

/** Picks the algorithm the request used. */
export function verifySignature(
  req: SignedRequest,
  secretOf: (ak: string) => string | undefined,
): SignatureCheck {
  if (header(req, 'authorization')) return verifyAcs3(req, secretOf);
  return verifyRpcV2(req, secretOf);
}
