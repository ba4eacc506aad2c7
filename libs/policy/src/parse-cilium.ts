import type {
  CiliumCidrRule,
  CiliumClusterwideNetworkPolicy,
  CiliumEgressRule,
  CiliumEntity,
  CiliumIcmpRule,
  CiliumIngressRule,
  CiliumL7Rules,
  CiliumNetworkPolicy,
  CiliumPortProtocol,
  CiliumPortRule,
  CiliumProtocol,
  CiliumRule,
} from './model';
import { CILIUM_ENTITIES } from './model';
import type { ParseOptions } from './parse-k8s';
import {
  asArray,
  asBoolean,
  asCidr,
  asInteger,
  asLabelSelector,
  asObject,
  asObjectMeta,
  asString,
  at,
  checkLabelKey,
  checkPortName,
  expectKind,
  fail,
  onlyKeys,
  optional,
  type Obj,
} from './parse-util';
import { cidrContainsCidr, parseCidr } from './ip';

/** Fields Cilium has that weft refuses loudly rather than ignoring (ignoring would change what a policy allows). */
const UNSUPPORTED: Record<string, string> = {
  fromRequires: 'is deprecated upstream and not supported',
  toRequires: 'is deprecated upstream and not supported',
  fromGroups: 'cloud provider groups are not supported',
  toGroups: 'cloud provider groups are not supported',
  fromNodes: 'node selectors are not supported',
  toNodes: 'node selectors are not supported',
  toServices: 'service peers are not supported yet',
  authentication: 'mutual authentication is not supported',
  nodeSelector: 'host policies (nodeSelector) are not supported',
};

/** Cilium selector keys may carry a source: `k8s:app`, `reserved:host`, `any:app`. */
function checkCiliumKey(key: string, path: string): void {
  const m = /^([a-z0-9-]+):(.*)$/.exec(key);
  if (m && !['k8s', 'any', 'reserved', 'cidr', 'unspec', 'container'].includes(m[1]!)) {
    fail(path, `unknown label source ${JSON.stringify(m[1])} in ${JSON.stringify(key)}`);
  }
  checkLabelKey(m ? m[2]! : key, path);
}

const ciliumSelector = (v: unknown, p: string) => asLabelSelector(v, p, checkCiliumKey);

function rejectUnsupported(obj: Obj, path: string): void {
  for (const key of Object.keys(obj)) {
    const why = UNSUPPORTED[key];
    if (why !== undefined) fail(at(path, key), why);
  }
}

function parseCidrSet(value: unknown, path: string): CiliumCidrRule {
  const obj = asObject(value, path);
  rejectUnsupported(obj, path);
  if (obj.cidrGroupRef !== undefined || obj.cidrGroupSelector !== undefined) {
    fail(
      at(path, obj.cidrGroupRef !== undefined ? 'cidrGroupRef' : 'cidrGroupSelector'),
      'CIDR groups are not supported',
    );
  }
  onlyKeys(obj, path, ['cidr', 'except']);
  const cidr = asCidr(obj.cidr, at(path, 'cidr'));
  const outer = parseCidr(cidr)!;
  const except = optional(obj, 'except', path, (v, p) =>
    asArray(v, p, (item, ip) => {
      const text = asCidr(item, ip);
      if (!cidrContainsCidr(outer, parseCidr(text)!)) fail(ip, `${text} is not within ${cidr}`);
      return text;
    }),
  );
  return except && except.length > 0 ? { cidr, except } : { cidr };
}

function parseEntity(value: unknown, path: string): CiliumEntity {
  const text = asString(value, path);
  if (!CILIUM_ENTITIES.includes(text as CiliumEntity)) {
    fail(path, `unsupported entity ${JSON.stringify(text)} (supported: ${CILIUM_ENTITIES.join(', ')})`);
  }
  return text as CiliumEntity;
}

function parsePortProtocol(value: unknown, path: string): CiliumPortProtocol {
  const obj = asObject(value, path);
  onlyKeys(obj, path, ['port', 'endPort', 'protocol']);
  const out: CiliumPortProtocol = {};
  const port = optional(obj, 'port', path, (v, p) => {
    // The CRD says string, YAML authors write numbers: both are accepted.
    const text = typeof v === 'number' ? String(v) : asString(v, p);
    if (/^\d+$/.test(text)) {
      asInteger(Number(text), p, 0, 65535);
      return String(Number(text));
    }
    return checkPortName(text, p);
  });
  if (port !== undefined) out.port = port;
  const endPort = optional(obj, 'endPort', path, (v, p) => asInteger(v, p, 0, 65535));
  if (endPort !== undefined && endPort !== 0) {
    if (port === undefined || !/^\d+$/.test(port))
      fail(at(path, 'endPort'), 'may only be set with a numeric port');
    if (endPort < Number(port)) fail(at(path, 'endPort'), `must be >= port (${port}), got ${endPort}`);
    out.endPort = endPort;
  }
  const protocol = optional(obj, 'protocol', path, (v, p) => {
    const text = asString(v, p);
    if (!['TCP', 'UDP', 'SCTP', 'ANY'].includes(text))
      fail(p, `must be TCP, UDP, SCTP or ANY, got ${JSON.stringify(text)}`);
    return text as CiliumProtocol;
  });
  if (protocol) out.protocol = protocol;
  return out;
}

const L7_KEYS = ['http', 'dns', 'kafka', 'l7proto', 'l7'] as const;
/** TLS interception and SNI rules are L7 features too: accepted, reported, not enforced. */
const L7_PORT_KEYS = ['terminatingTLS', 'originatingTLS', 'serverNames', 'listener'] as const;

function parsePortRule(value: unknown, path: string, deny: boolean): CiliumPortRule {
  const obj = asObject(value, path);
  onlyKeys(obj, path, ['ports', 'rules', ...L7_PORT_KEYS]);
  const out: CiliumPortRule = {};
  const ports = optional(obj, 'ports', path, (v, p) => asArray(v, p, parsePortProtocol));
  if (ports) out.ports = ports;
  const l7: CiliumL7Rules = {};
  const rules = optional(obj, 'rules', path, asObject);
  if (rules) {
    onlyKeys(rules, at(path, 'rules'), L7_KEYS);
    for (const key of L7_KEYS) {
      const v = rules[key];
      if (v === undefined || v === null) continue;
      if (key === 'l7proto') l7.l7proto = asString(v, at(at(path, 'rules'), key));
      else l7[key] = asArray(v, at(at(path, 'rules'), key), (x) => x);
    }
  }
  for (const key of L7_PORT_KEYS)
    if (obj[key] !== undefined && obj[key] !== null) l7.l7 = [...(l7.l7 ?? []), { [key]: obj[key] }];
  if (Object.keys(l7).length > 0) {
    if (deny) fail(at(path, 'rules'), 'deny rules cannot have L7 rules');
    out.rules = l7;
  }
  return out;
}

function parseIcmps(value: unknown, path: string): CiliumIcmpRule[] {
  return asArray(value, path, (item, ip) => {
    const obj = asObject(item, ip);
    onlyKeys(obj, ip, ['fields']);
    const fields = asArray(obj.fields, at(ip, 'fields'), (f, fp) => {
      const field = asObject(f, fp);
      onlyKeys(field, fp, ['type', 'family']);
      // 0 is "any port" in the datapath contract, so echo-reply (type 0) cannot be expressed.
      const type = asInteger(field.type, at(fp, 'type'), 1, 255);
      const family = optional(field, 'family', fp, (v, p) => {
        const text = asString(v, p);
        if (text !== 'IPv4' && text !== 'IPv6') fail(p, `must be IPv4 or IPv6, got ${JSON.stringify(text)}`);
        return text as 'IPv4' | 'IPv6';
      });
      return family ? { type, family } : { type };
    });
    return { fields };
  });
}

type Direction = 'ingress' | 'egress';

function parseDirectionalRule(value: unknown, path: string, direction: Direction, deny: boolean) {
  const obj = asObject(value, path);
  rejectUnsupported(obj, path);
  const p = direction === 'ingress' ? 'from' : 'to';
  const keys = [`${p}Endpoints`, `${p}CIDR`, `${p}CIDRSet`, `${p}Entities`, 'toPorts', 'icmps'];
  if (direction === 'egress' && !deny) keys.push('toFQDNs');
  onlyKeys(obj, path, keys);
  const out: Record<string, unknown> = {};
  const set = (key: string, v: unknown) => v !== undefined && (out[key] = v);
  set(
    `${p}Endpoints`,
    optional(obj, `${p}Endpoints`, path, (v, pp) => asArray(v, pp, ciliumSelector)),
  );
  set(
    `${p}CIDR`,
    optional(obj, `${p}CIDR`, path, (v, pp) => asArray(v, pp, asCidr)),
  );
  set(
    `${p}CIDRSet`,
    optional(obj, `${p}CIDRSet`, path, (v, pp) => asArray(v, pp, parseCidrSet)),
  );
  set(
    `${p}Entities`,
    optional(obj, `${p}Entities`, path, (v, pp) => asArray(v, pp, parseEntity)),
  );
  set(
    'toPorts',
    optional(obj, 'toPorts', path, (v, pp) => asArray(v, pp, (r, rp) => parsePortRule(r, rp, deny))),
  );
  set('icmps', optional(obj, 'icmps', path, parseIcmps));
  set(
    'toFQDNs',
    optional(obj, 'toFQDNs', path, (v, pp) =>
      asArray(v, pp, (f, fp) => {
        const fq = asObject(f, fp);
        onlyKeys(fq, fp, ['matchName', 'matchPattern']);
        return {
          ...(fq.matchName !== undefined && { matchName: asString(fq.matchName, at(fp, 'matchName')) }),
          ...(fq.matchPattern !== undefined && {
            matchPattern: asString(fq.matchPattern, at(fp, 'matchPattern')),
          }),
        };
      }),
    ),
  );
  return out;
}

function parseRule(value: unknown, path: string): CiliumRule {
  const obj = asObject(value, path);
  rejectUnsupported(obj, path);
  onlyKeys(obj, path, [
    'endpointSelector',
    'ingress',
    'ingressDeny',
    'egress',
    'egressDeny',
    'enableDefaultDeny',
    'description',
    'labels',
  ]);
  if (obj.endpointSelector === undefined || obj.endpointSelector === null) {
    fail(at(path, 'endpointSelector'), 'is required (use {} to select all endpoints)');
  }
  const rule: CiliumRule = {
    endpointSelector: ciliumSelector(obj.endpointSelector, at(path, 'endpointSelector')),
  };
  const list = <T>(key: string, direction: Direction, deny: boolean) =>
    optional(obj, key, path, (v, p) =>
      asArray(v, p, (r, rp) => parseDirectionalRule(r, rp, direction, deny) as T),
    );
  const ingress = list<CiliumIngressRule>('ingress', 'ingress', false);
  const ingressDeny = list<CiliumIngressRule>('ingressDeny', 'ingress', true);
  const egress = list<CiliumEgressRule>('egress', 'egress', false);
  const egressDeny = list<CiliumEgressRule>('egressDeny', 'egress', true);
  if (ingress) rule.ingress = ingress;
  if (ingressDeny) rule.ingressDeny = ingressDeny;
  if (egress) rule.egress = egress;
  if (egressDeny) rule.egressDeny = egressDeny;
  const dd = optional(obj, 'enableDefaultDeny', path, (v, p) => {
    const o = asObject(v, p);
    onlyKeys(o, p, ['ingress', 'egress']);
    return {
      ...(o.ingress !== undefined && { ingress: asBoolean(o.ingress, at(p, 'ingress')) }),
      ...(o.egress !== undefined && { egress: asBoolean(o.egress, at(p, 'egress')) }),
    };
  });
  if (dd) rule.enableDefaultDeny = dd;
  const description = optional(obj, 'description', path, asString);
  if (description !== undefined) rule.description = description;
  return rule;
}

/** Parses a `cilium.io/v2` CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy. */
export function parseCiliumPolicy(
  value: unknown,
  options: ParseOptions = {},
): CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy {
  const obj = asObject(value, '');
  onlyKeys(obj, '', ['apiVersion', 'kind', 'metadata', 'spec', 'specs', 'status']);
  const kind = expectKind(obj, 'cilium.io/v2', ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy']);
  const meta = asObjectMeta(obj.metadata, 'metadata');
  const spec = optional(obj, 'spec', '', parseRule);
  const specs = optional(obj, 'specs', '', (v, p) => asArray(v, p, parseRule));
  if (!spec && (!specs || specs.length === 0)) fail('spec', 'one of spec or specs is required');
  const body = { ...(spec && { spec }), ...(specs && { specs }) };
  const metadata = { name: meta.name, ...(meta.labels && { labels: meta.labels }) };
  if (kind === 'CiliumClusterwideNetworkPolicy') {
    return { apiVersion: 'cilium.io/v2', kind, metadata, ...body };
  }
  const namespace = meta.namespace ?? options.defaultNamespace ?? 'default';
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { ...metadata, namespace },
    ...body,
  };
}
