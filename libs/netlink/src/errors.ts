import { getSystemErrorMap } from 'node:util';

/**
 * A request the kernel refused (or that was refused before being sent, with code EINVAL).
 * `errno` is negative like Node's system errors; `code` is its name ("EEXIST").
 */
export class NetlinkError extends Error {
  readonly errno: number;
  readonly code: string;
  /** What was asked, e.g. "RTM_NEWLINK veth wn0a1b2c". */
  readonly operation: string;

  constructor(errno: number, operation: string, detail?: string) {
    const err = errno > 0 ? -errno : errno;
    const [code, text] = getSystemErrorMap().get(err) ?? [`E${-err}`, 'unknown error'];
    super(`${operation}: ${code} (${detail ?? text})`);
    this.name = 'NetlinkError';
    this.errno = err;
    this.code = code;
    this.operation = operation;
  }

  /** Bad input caught before anything reached the kernel. */
  static invalid(detail: string, operation = 'validate'): NetlinkError {
    return new NetlinkError(-22, operation, detail);
  }
}

function codeOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null
    ? ((err as { code?: unknown }).code as string | undefined)
    : undefined;
}

/**
 * The object is not there: no such link (ENODEV), route (ESRCH), address (EADDRNOTAVAIL),
 * neighbour/rule/netns file (ENOENT). What DEL paths treat as "already done".
 */
export function isNotFound(err: unknown): boolean {
  const code = codeOf(err);
  return code === 'ENODEV' || code === 'ESRCH' || code === 'ENOENT' || code === 'EADDRNOTAVAIL';
}

export function isExists(err: unknown): boolean {
  return codeOf(err) === 'EEXIST';
}

/** The kernel lacks the link kind (module not available): EOPNOTSUPP from rtnl_newlink. */
export function isUnsupported(err: unknown): boolean {
  const code = codeOf(err);
  return code === 'EOPNOTSUPP' || code === 'ENOTSUP' || code === 'EAFNOSUPPORT' || code === 'EPROTONOSUPPORT';
}
