import { PolicyValidationError } from './errors';
import { parseCidr } from './ip';
import type { LabelSelector, LabelSelectorRequirement, SelectorOperator } from './model';

/** Small helpers to walk untrusted plain objects, naming the field on every error. */
export type Obj = Record<string, unknown>;

export function fail(path: string, reason: string): never {
  throw new PolicyValidationError(path, reason);
}

export function at(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path ? `${path}.${key}` : key;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}

export function asObject(value: unknown, path: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(path, `must be an object, got ${describe(value)}`);
  }
  return value as Obj;
}

/** Unknown fields are errors: a typo (`podselector`) must not silently widen a policy. */
export function onlyKeys(obj: Obj, path: string, allowed: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) fail(at(path, key), `unknown field (expected one of: ${allowed.join(', ')})`);
  }
}

export function asString(value: unknown, path: string): string {
  if (typeof value !== 'string') fail(path, `must be a string, got ${describe(value)}`);
  return value;
}

export function asBoolean(value: unknown, path: string): boolean {
  if (typeof value !== 'boolean') fail(path, `must be a boolean, got ${describe(value)}`);
  return value;
}

export function asInteger(value: unknown, path: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value))
    fail(path, `must be an integer, got ${describe(value)}`);
  if (value < min || value > max) fail(path, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

/** `null` is treated like an absent field, as the Kubernetes API server does. */
export function optional<T>(
  obj: Obj,
  key: string,
  path: string,
  read: (v: unknown, p: string) => T,
): T | undefined {
  const value = obj[key];
  return value === undefined || value === null ? undefined : read(value, at(path, key));
}

export function asArray<T>(value: unknown, path: string, each: (v: unknown, p: string) => T): T[] {
  if (!Array.isArray(value)) fail(path, `must be a list, got ${describe(value)}`);
  return value.map((item, i) => each(item, at(path, i)));
}

export function asStringMap(
  value: unknown,
  path: string,
  checkEntry?: (k: string, v: string, p: string) => void,
) {
  const obj = asObject(value, path);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj)) {
    const p = at(path, k);
    out[k] = asString(v, p);
    checkEntry?.(k, out[k], p);
  }
  return out;
}

// ---- Kubernetes name/label rules ----

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export function checkDnsLabel(value: string, path: string): string {
  if (value.length > 63 || !DNS_LABEL.test(value))
    fail(path, `${JSON.stringify(value)} is not a valid DNS label`);
  return value;
}

export function checkDnsSubdomain(value: string, path: string): string {
  if (value.length > 253 || !DNS_SUBDOMAIN.test(value)) {
    fail(path, `${JSON.stringify(value)} is not a valid DNS subdomain name`);
  }
  return value;
}

/** A label key: `[prefix/]name` (the Kubernetes qualified-name rule). */
export function checkLabelKey(key: string, path: string): string {
  const slash = key.lastIndexOf('/');
  const name = slash < 0 ? key : key.slice(slash + 1);
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    fail(path, `label key ${JSON.stringify(key)} has an invalid prefix`);
  }
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) {
    fail(path, `${JSON.stringify(key)} is not a valid label key`);
  }
  return key;
}

export function checkLabelValue(value: string, path: string): string {
  if (value.length > 63 || (value !== '' && !QUALIFIED_NAME.test(value))) {
    fail(path, `${JSON.stringify(value)} is not a valid label value`);
  }
  return value;
}

export function asLabels(value: unknown, path: string): Record<string, string> {
  return asStringMap(value, path, (k, v, p) => {
    checkLabelKey(k, p);
    checkLabelValue(v, p);
  });
}

/** IANA_SVC_NAME: what a named port may be called. */
export function checkPortName(value: string, path: string): string {
  if (
    value.length === 0 ||
    value.length > 15 ||
    !/^[a-z0-9-]+$/.test(value) ||
    !/[a-z]/.test(value) ||
    value.startsWith('-') ||
    value.endsWith('-') ||
    value.includes('--')
  ) {
    fail(path, `${JSON.stringify(value)} is not a valid port name (IANA_SVC_NAME)`);
  }
  return value;
}

export function asCidr(value: unknown, path: string): string {
  const text = asString(value, path);
  if (!text.includes('/') || !parseCidr(text)) fail(path, `${JSON.stringify(text)} is not a valid CIDR`);
  return text;
}

const OPERATORS: readonly SelectorOperator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

/**
 * A meta/v1 LabelSelector. `checkKey` validates keys: Kubernetes keys are qualified names,
 * Cilium keys may carry a `source:` prefix.
 */
export function asLabelSelector(
  value: unknown,
  path: string,
  checkKey: (key: string, path: string) => void = checkLabelKey,
): LabelSelector {
  const obj = asObject(value, path);
  onlyKeys(obj, path, ['matchLabels', 'matchExpressions']);
  const out: LabelSelector = {};
  const matchLabels = optional(obj, 'matchLabels', path, (v, p) =>
    asStringMap(v, p, (k, val, pp) => {
      checkKey(k, pp);
      checkLabelValue(val, pp);
    }),
  );
  if (matchLabels) out.matchLabels = matchLabels;
  const expressions = optional(obj, 'matchExpressions', path, (v, p) =>
    asArray(v, p, (item, ip): LabelSelectorRequirement => {
      const e = asObject(item, ip);
      onlyKeys(e, ip, ['key', 'operator', 'values']);
      const key = asString(e.key, at(ip, 'key'));
      checkKey(key, at(ip, 'key'));
      const operator = asString(e.operator, at(ip, 'operator'));
      if (!OPERATORS.includes(operator as SelectorOperator)) {
        fail(at(ip, 'operator'), `must be one of ${OPERATORS.join(', ')}, got ${JSON.stringify(operator)}`);
      }
      const values = optional(e, 'values', ip, (vv, vp) =>
        asArray(vv, vp, (s, sp) => checkLabelValue(asString(s, sp), sp)),
      );
      if ((operator === 'In' || operator === 'NotIn') && (!values || values.length === 0)) {
        fail(at(ip, 'values'), `must be non-empty when operator is ${operator}`);
      }
      if ((operator === 'Exists' || operator === 'DoesNotExist') && values && values.length > 0) {
        fail(at(ip, 'values'), `must be empty when operator is ${operator}`);
      }
      const req: LabelSelectorRequirement = { key, operator: operator as SelectorOperator };
      if (values && values.length > 0) req.values = values;
      return req;
    }),
  );
  if (expressions && expressions.length > 0) out.matchExpressions = expressions;
  return out;
}

const OBJECT_META_KEYS = [
  'name',
  'generateName',
  'namespace',
  'selfLink',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'labels',
  'annotations',
  'ownerReferences',
  'finalizers',
  'managedFields',
];

export interface ParsedMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
}

export function asObjectMeta(value: unknown, path: string): ParsedMeta {
  const obj = asObject(value, path);
  onlyKeys(obj, path, OBJECT_META_KEYS);
  const name = asString(obj.name, at(path, 'name'));
  checkDnsSubdomain(name, at(path, 'name'));
  const out: ParsedMeta = { name };
  const namespace = optional(obj, 'namespace', path, (v, p) => checkDnsLabel(asString(v, p), p));
  if (namespace !== undefined) out.namespace = namespace;
  const labels = optional(obj, 'labels', path, asLabels);
  if (labels) out.labels = labels;
  return out;
}

export function expectKind(obj: Obj, apiVersion: string, kinds: readonly string[]): string {
  const version = asString(obj.apiVersion, 'apiVersion');
  const kind = asString(obj.kind, 'kind');
  if (!kinds.includes(kind)) fail('kind', `must be ${kinds.join(' or ')}, got ${JSON.stringify(kind)}`);
  if (version !== apiVersion)
    fail('apiVersion', `must be ${apiVersion} for ${kind}, got ${JSON.stringify(version)}`);
  return kind;
}
