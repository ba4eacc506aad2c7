/**
 * Errors of the ENI IPAM. Each carries a stable `code`; those that reach a CNI caller carry the
 * CNI spec number (`cniCode`), and cloud errors say whether a retry can help (`retryable`).
 */

/** CNI spec error numbers used here. */
export const CNI_CODES = {
  incompatibleVersion: 1,
  unknownContainer: 3,
  invalidEnv: 4,
  ioFailure: 5,
  decodeFailure: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  pluginNotAvailable: 50,
} as const;

/** An error returned by the ECS OpenAPI (or raised while calling it). */
export class CloudApiError extends Error {
  override readonly name = 'CloudApiError';
  constructor(
    readonly action: string,
    /** The API's error code, e.g. "Throttling" or "InvalidVSwitchId.IpNotEnough". */
    readonly code: string,
    message: string,
    /** HTTP status, 0 when the request never got an answer. */
    readonly httpStatus: number,
    readonly requestId?: string,
  ) {
    super(`${action}: ${code}: ${message}`);
  }

  /** Throttling, 5xx and transport failures may succeed later; business errors will not. */
  get retryable(): boolean {
    return isRetryableCloudCode(this.code, this.httpStatus);
  }

  get throttled(): boolean {
    return this.code.includes('Throttling');
  }
}

export function isRetryableCloudCode(code: string, httpStatus: number): boolean {
  if (code.includes('Throttling')) return true;
  if (httpStatus === 0 || httpStatus >= 500) return true;
  return code === 'ServiceUnavailable' || code === 'InternalError' || code === 'OperationConflict';
}

/** The vSwitch(es) ran out of addresses: no retry on this vSwitch will help soon. */
export const IP_NOT_ENOUGH = 'InvalidVSwitchId.IpNotEnough';

/** An IPAM failure meant for a CNI caller: `cniCode` is the spec number. */
export class EniIpamError extends Error {
  override readonly name = 'EniIpamError';
  constructor(
    readonly cniCode: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
  }

  get retryable(): boolean {
    return this.cniCode === CNI_CODES.tryAgainLater;
  }
}
