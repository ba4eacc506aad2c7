/** Spec well-known error codes (CNI spec, "Error" section). 1-99 are reserved for the spec. */
export const CNI_ERR_INCOMPATIBLE_VERSION = 1;
export const CNI_ERR_UNSUPPORTED_FIELD = 2;
export const CNI_ERR_UNKNOWN_CONTAINER = 3;
export const CNI_ERR_INVALID_ENV = 4;
export const CNI_ERR_IO = 5;
export const CNI_ERR_DECODE = 6;
export const CNI_ERR_INVALID_NETCONF = 7;
export const CNI_ERR_TRY_AGAIN_LATER = 11;
export const CNI_ERR_PLUGIN_NOT_AVAILABLE = 50;
export const CNI_ERR_LIMITED_CONNECTIVITY = 51;
/** First code free for plugin-specific errors. */
export const CNI_ERR_PLUGIN_SPECIFIC = 100;
/** What libcni's skel reports for an error that carries no code: we do the same for crashes. */
export const CNI_ERR_INTERNAL = 999;

/** The error object a plugin prints on stdout (spec "Error" section). */
export interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

/**
 * A spec error. `retryable` tells callers (and the runtime, via code 11) that the same request
 * may succeed later; it defaults to true for code 11 only.
 */
export class CniError extends Error {
  readonly code: number;
  readonly msg: string;
  readonly details: string | undefined;
  readonly retryable: boolean;

  constructor(
    code: number,
    msg: string,
    details?: string,
    options?: { retryable?: boolean; cause?: unknown },
  ) {
    super(
      details ? `${msg}: ${details}` : msg,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'CniError';
    this.code = code;
    this.msg = msg;
    this.details = details || undefined;
    this.retryable = options?.retryable ?? code === CNI_ERR_TRY_AGAIN_LATER;
  }

  /** The spec error object; `cniVersion` is the version of the conf being answered. */
  toJSON(cniVersion?: string): CniErrorJson {
    // JSON.stringify passes the property key ('' at top level): treat anything empty as "latest".
    const out: CniErrorJson = { cniVersion: cniVersion || '1.1.0', code: this.code, msg: this.msg };
    if (this.details) out.details = this.details;
    return out;
  }

  /** Wraps anything thrown into a CniError; non-CNI errors become code 999 keeping only the message. */
  static from(err: unknown): CniError {
    if (err instanceof CniError) return err;
    const msg = err instanceof Error ? err.message : String(err);
    return new CniError(CNI_ERR_INTERNAL, msg || 'internal error', undefined, { cause: err });
  }
}

export function isCniError(err: unknown, code?: number): err is CniError {
  return err instanceof CniError && (code === undefined || err.code === code);
}
