import { describe, expect, it } from 'vitest';
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse, WireError } from './wire';

describe('the weft-cni shim wire format', () => {
  const req = { env: { CNI_COMMAND: 'ADD', PATH: '/bin:/usr/bin', EMPTY: '', 'X=Y': 'a=b' }, stdin: Buffer.from('{"x":1}') };

  it('round-trips a request, including values with "=" and empty ones', () => {
    const decoded = decodeRequest(encodeRequest(req))!;
    // "X=Y" cannot be a key (the first "=" splits), as in a process environment.
    expect(decoded.env).toEqual({ CNI_COMMAND: 'ADD', PATH: '/bin:/usr/bin', EMPTY: '', X: 'Y=a=b' });
    expect(decoded.stdin.toString()).toBe('{"x":1}');
  });

  it('asks for more bytes until the request is complete, at every cut', () => {
    const whole = encodeRequest(req);
    for (let cut = 0; cut < whole.length; cut++) expect(decodeRequest(whole.subarray(0, cut))).toBeUndefined();
    expect(decodeRequest(whole)).toBeDefined();
  });

  it('refuses what is not a request', () => {
    expect(() => decodeRequest(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toThrow(WireError);
  });

  it('round-trips a response', () => {
    expect(decodeResponse(encodeResponse(1, '{"code":7}\n', 'warn\n'))).toEqual({
      exitCode: 1,
      stdout: '{"code":7}\n',
      stderr: 'warn\n',
    });
  });
});
