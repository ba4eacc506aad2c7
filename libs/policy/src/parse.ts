import type { AnyPolicy, Namespace, Pod } from './model';
import { parseCiliumPolicy } from './parse-cilium';
import { parseNamespace, parseNetworkPolicy, parsePod, type ParseOptions } from './parse-k8s';
import { asObject, asString, fail } from './parse-util';

/** Any supported policy kind, dispatched on `kind`. */
export function parsePolicy(value: unknown, options: ParseOptions = {}): AnyPolicy {
  const kind = asString(asObject(value, '').kind, 'kind');
  if (kind === 'NetworkPolicy') return parseNetworkPolicy(value, options);
  if (kind === 'CiliumNetworkPolicy' || kind === 'CiliumClusterwideNetworkPolicy')
    return parseCiliumPolicy(value, options);
  fail(
    'kind',
    `unsupported policy kind ${JSON.stringify(kind)} (NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy)`,
  );
}

export type Manifest =
  | { kind: 'Namespace'; namespace: Namespace }
  | { kind: 'Pod'; pod: Pod }
  | { kind: 'Policy'; policy: AnyPolicy };

/** One object of a manifest file (as YAML/JSON decodes it): a Namespace, Pod or policy. */
export function parseManifest(value: unknown, options: ParseOptions = {}): Manifest {
  const kind = asString(asObject(value, '').kind, 'kind');
  if (kind === 'Namespace') return { kind, namespace: parseNamespace(value) };
  if (kind === 'Pod') return { kind, pod: parsePod(value, options) };
  return { kind: 'Policy', policy: parsePolicy(value, options) };
}
