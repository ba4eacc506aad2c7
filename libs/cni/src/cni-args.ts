import { CniError, CNI_ERR_INVALID_ENV } from './errors';
import { short } from './result';

/** The CNI_ARGS keys Kubernetes runtimes pass (CONVENTIONS.md). */
export const K8S_CNI_ARGS = [
  'K8S_POD_NAMESPACE',
  'K8S_POD_NAME',
  'K8S_POD_UID',
  'K8S_POD_INFRA_CONTAINER_ID',
] as const;

/** CNI_ARGS parsed: every pair in `values`, plus typed access to the Kubernetes keys. */
export interface CniArgs {
  /** The string as received. */
  readonly raw: string;
  readonly values: Readonly<Record<string, string>>;
  /** `IgnoreUnknown=1|true` was given: unknown keys are allowed. */
  readonly ignoreUnknown: boolean;
  readonly K8S_POD_NAMESPACE?: string;
  readonly K8S_POD_NAME?: string;
  readonly K8S_POD_UID?: string;
  readonly K8S_POD_INFRA_CONTAINER_ID?: string;
}

export interface ParseCniArgsOptions {
  /** Keys this plugin understands besides the Kubernetes ones and IgnoreUnknown. */
  knownKeys?: readonly string[];
  /** Accept unknown keys even without IgnoreUnknown (default false, as the reference plugins). */
  allowUnknown?: boolean;
}

const KEY = /^[A-Za-z0-9_.-]+$/;

function bad(msg: string): never {
  throw new CniError(CNI_ERR_INVALID_ENV, `invalid CNI_ARGS: ${msg}`);
}

/**
 * Parses `K=V;K2=V2`. Each non-empty segment must be one KEY=VALUE (value may be empty, never
 * contain control characters); keys must be unique. Unknown keys are error 4 unless the string
 * carries `IgnoreUnknown=1` (or `true`), which is how runtimes say "take what you understand".
 */
export function parseCniArgs(raw: string | undefined, options: ParseCniArgsOptions = {}): CniArgs {
  const text = raw ?? '';
  const values: Record<string, string> = Object.create(null);
  for (const segment of text.split(';')) {
    if (segment === '') continue; // tolerate "A=1;" and ";;"
    const eq = segment.indexOf('=');
    if (eq <= 0) bad(`${short(segment)} is not KEY=VALUE`);
    const key = segment.slice(0, eq);
    const value = segment.slice(eq + 1);
    if (!KEY.test(key)) bad(`key ${short(key)} has characters outside [A-Za-z0-9_.-]`);
    if (value.includes('=')) bad(`${short(segment)} has more than one "="`);
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x1f\x7f]/.test(value)) bad(`value of ${key} contains control characters`);
    if (key in values) bad(`key ${key} is given twice`);
    values[key] = value;
  }
  const ignore = values.IgnoreUnknown;
  const ignoreUnknown = ignore !== undefined && ['1', 'true'].includes(ignore.toLowerCase());
  if (ignore !== undefined && !ignoreUnknown && !['0', 'false'].includes(ignore.toLowerCase())) {
    bad(`IgnoreUnknown=${short(ignore)} is not a boolean (1, 0, true, false)`);
  }
  if (!ignoreUnknown && !options.allowUnknown) {
    const known = new Set<string>(['IgnoreUnknown', ...K8S_CNI_ARGS, ...(options.knownKeys ?? [])]);
    const unknown = Object.keys(values).filter((k) => !known.has(k));
    if (unknown.length) bad(`unknown keys ${unknown.join(', ')} (add IgnoreUnknown=1 to allow them)`);
  }
  const args: Record<string, unknown> = { raw: text, values: Object.freeze({ ...values }), ignoreUnknown };
  for (const k of K8S_CNI_ARGS) if (values[k] !== undefined) args[k] = values[k];
  return Object.freeze(args) as unknown as CniArgs;
}
