import { describe, expect, it } from 'vitest';
import {
  CniError,
  isCniError,
  CNI_ERR_DECODE,
  CNI_ERR_INCOMPATIBLE_VERSION,
  CNI_ERR_INTERNAL,
  CNI_ERR_INVALID_ENV,
  CNI_ERR_INVALID_NETCONF,
  CNI_ERR_IO,
  CNI_ERR_LIMITED_CONNECTIVITY,
  CNI_ERR_PLUGIN_NOT_AVAILABLE,
  CNI_ERR_PLUGIN_SPECIFIC,
  CNI_ERR_TRY_AGAIN_LATER,
  CNI_ERR_UNKNOWN_CONTAINER,
  CNI_ERR_UNSUPPORTED_FIELD,
} from './errors';

describe('CniError', () => {
  it('has the spec code numbers', () => {
    expect([
      CNI_ERR_INCOMPATIBLE_VERSION,
      CNI_ERR_UNSUPPORTED_FIELD,
      CNI_ERR_UNKNOWN_CONTAINER,
      CNI_ERR_INVALID_ENV,
      CNI_ERR_IO,
      CNI_ERR_DECODE,
      CNI_ERR_INVALID_NETCONF,
      CNI_ERR_TRY_AGAIN_LATER,
      CNI_ERR_PLUGIN_NOT_AVAILABLE,
      CNI_ERR_LIMITED_CONNECTIVITY,
      CNI_ERR_PLUGIN_SPECIFIC,
    ]).toEqual([1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100]);
  });

  it('serialises to the spec error object', () => {
    const e = new CniError(7, 'invalid network config: mtu "x"', 'expected a number');
    expect(e.toJSON('1.0.0')).toEqual({
      cniVersion: '1.0.0',
      code: 7,
      msg: 'invalid network config: mtu "x"',
      details: 'expected a number',
    });
    expect(JSON.parse(JSON.stringify(new CniError(4, 'bad env')))).toEqual({
      cniVersion: '1.1.0',
      code: 4,
      msg: 'bad env',
    });
    expect(e).toBeInstanceOf(Error);
    expect(e.message).toContain('expected a number');
  });

  it('is retryable for code 11 unless told otherwise', () => {
    expect(new CniError(11, 'busy').retryable).toBe(true);
    expect(new CniError(7, 'bad').retryable).toBe(false);
    expect(new CniError(105, 'agent restarting', undefined, { retryable: true }).retryable).toBe(true);
  });

  it('wraps foreign errors as 999 keeping only the message', () => {
    const wrapped = CniError.from(new TypeError('boom'));
    expect(wrapped.code).toBe(CNI_ERR_INTERNAL);
    expect(wrapped.toJSON()).toEqual({ cniVersion: '1.1.0', code: 999, msg: 'boom' });
    const same = new CniError(3, 'gone');
    expect(CniError.from(same)).toBe(same);
    expect(isCniError(same, 3)).toBe(true);
    expect(isCniError(same, 4)).toBe(false);
  });
});
