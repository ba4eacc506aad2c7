/**
 * Turns an EndpointPolicy into weft_policy LPM-trie entries (see bpf/lib/policy.h):
 * - a port range becomes its aligned power-of-two blocks, each a prefix of the 16-bit port;
 * - "any port" stops the prefix before the port, "any protocol" before the protocol;
 * - "deny wins": an allow block covered by a deny of the same peer identity is written as deny
 *   (a deny block inside an allow block is the longer prefix and wins the lookup by itself).
 */
import { WEFT_DIRECTION, WEFT_POLICY_EXACT_BITS, WEFT_VERDICT, type PolicyKey } from '@weft/bpf';
import {
  IPPROTO,
  type EndpointPolicy,
  type PeerPolicyChange,
  type PolicyEntry,
  type TrafficDirection,
} from './policy-types';

export class PolicyError extends Error {
  readonly code = 'EINVAL_POLICY';
  constructor(message: string) {
    super(message);
    this.name = 'PolicyError';
  }
}

/** One trie entry: protocol null = any protocol, port null = any port. */
export interface CompiledPolicyEntry {
  direction: TrafficDirection;
  identity: number;
  protocol: number | null;
  port: { base: number; bits: number } | null;
  verdict: 'allow' | 'deny';
}

const PORT_PROTOCOLS = [IPPROTO.TCP, IPPROTO.UDP, IPPROTO.SCTP];

/** The aligned blocks covering [low, high]: at most 30 for a 16-bit range. */
export function portBlocks(low: number, high: number): { base: number; bits: number }[] {
  const blocks: { base: number; bits: number }[] = [];
  let base = low;
  while (base <= high) {
    // The largest block that starts at `base` (alignment) and fits below `high`.
    let size = base === 0 ? 65536 : base & -base;
    while (base + size - 1 > high) size >>= 1;
    blocks.push({ base, bits: 16 - Math.log2(size) });
    base += size;
  }
  return blocks;
}

function validate(e: PolicyEntry): void {
  const u32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
  const u16 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffff;
  if (!u32(e.identity)) throw new PolicyError(`bad identity ${e.identity}`);
  if (!Number.isInteger(e.protocol) || e.protocol < 0 || e.protocol > 255)
    throw new PolicyError(`bad protocol ${e.protocol}`);
  if (!u16(e.portLow) || !u16(e.portHigh) || e.portLow > e.portHigh)
    throw new PolicyError(`bad port range ${e.portLow}-${e.portHigh}`);
  if (e.direction !== 'ingress' && e.direction !== 'egress')
    throw new PolicyError(`bad direction ${String(e.direction)}`);
  if (e.verdict !== 'allow' && e.verdict !== 'deny')
    throw new PolicyError(`bad verdict ${String(e.verdict)}`);
}

/** Calls `out` with each trie entry one policy entry expands to. */
function expand(e: PolicyEntry, out: (c: CompiledPolicyEntry) => void): void {
  validate(e);
  const anyPort = (e.portLow === 0 && e.portHigh === 0) || (e.portLow === 0 && e.portHigh === 0xffff);
  // A port without a protocol means that port on every protocol that has ports.
  const protocols: readonly (number | null)[] =
    e.protocol !== IPPROTO.ANY ? [e.protocol] : anyPort ? ANY_PROTOCOL : PORT_PROTOCOLS;
  const ports = anyPort ? ANY_PORT : portBlocks(e.portLow, e.portHigh);
  for (const protocol of protocols)
    for (const port of ports)
      out({ direction: e.direction, identity: e.identity, protocol, port, verdict: e.verdict });
}

const ANY_PROTOCOL: readonly null[] = [null];
const ANY_PORT: readonly null[] = [null];

/** keyId without the identity, as a small integer (31 bits): the dedupe key inside one identity. */
function localKey(c: CompiledPolicyEntry): number {
  const port = c.port === null ? 0 : (1 << 21) | (c.port.bits << 16) | c.port.base;
  return ((c.direction === 'ingress' ? 0 : 1) << 30) | ((c.protocol ?? 256) << 21) | port;
}

function covers(outer: CompiledPolicyEntry, inner: CompiledPolicyEntry): boolean {
  if (outer.direction !== inner.direction || outer.identity !== inner.identity) return false;
  if (outer.protocol === null) return true;
  if (outer.protocol !== inner.protocol) return false;
  if (outer.port === null) return true;
  if (inner.port === null || inner.port.bits < outer.port.bits) return false;
  const shift = 16 - outer.port.bits;
  return inner.port.base >> shift === outer.port.base >> shift;
}

export function keyId(e: CompiledPolicyEntry): string {
  return `${e.direction}/${e.identity}/${e.protocol ?? '*'}/${e.port ? `${e.port.base}:${e.port.bits}` : '*'}`;
}

/** The trie entries for a policy, deduplicated, deny resolved. Unenforced directions get none. */
export function compilePolicy(policy: EndpointPolicy): CompiledPolicyEntry[] {
  // By identity, then localKey: numbers, not keyId strings (an endpoint has hundreds of entries,
  // a restore compiles ten thousand endpoints).
  const byKey = new Map<number, Map<number, CompiledPolicyEntry>>();
  let anyDeny = false;
  const add = (c: CompiledPolicyEntry) => {
    let m = byKey.get(c.identity);
    if (!m) byKey.set(c.identity, (m = new Map()));
    const k = localKey(c);
    // A deny replaces an allow of the same key, never the reverse.
    if (c.verdict === 'deny') {
      anyDeny = true;
      m.set(k, c);
    } else if (!m.has(k)) m.set(k, c);
  };
  for (const entry of policy.entries) {
    if (entry.direction === 'ingress' ? !policy.ingressEnforced : !policy.egressEnforced) continue;
    expand(entry, add);
  }
  const all: CompiledPolicyEntry[] = [];
  for (const m of byKey.values()) for (const c of m.values()) all.push(c);
  if (!anyDeny) return all;
  const denyList = all.filter((c) => c.verdict === 'deny');
  return all.map((c) =>
    c.verdict === 'allow' && denyList.some((d) => covers(d, c)) ? { ...c, verdict: 'deny' } : c,
  );
}

/** Compiled entries by peer identity, each keyed by keyId. */
export type CompiledByIdentity = Map<number, Map<string, CompiledPolicyEntry>>;

export function groupByIdentity(entries: CompiledPolicyEntry[]): CompiledByIdentity {
  const out: CompiledByIdentity = new Map();
  for (const e of entries) {
    let m = out.get(e.identity);
    if (!m) out.set(e.identity, (m = new Map()));
    m.set(keyId(e), e);
  }
  return out;
}

// Deny resolution never crosses identities, so the entries of some peers compile on their own.
// Endpoints given the same change object share its compilation; by enforcement, since a direction
// not enforced gets no entries (one change can reach endpoints enforcing differently).
const peerCompilations = new WeakMap<PeerPolicyChange, CompiledByIdentity[]>();

/** The trie entries of a peer-confined change, by identity (memoized per change object). */
export function compilePeerEntries(policy: EndpointPolicy, change: PeerPolicyChange): CompiledByIdentity {
  const { ingressEnforced, egressEnforced } = policy;
  const slot = (ingressEnforced ? 1 : 0) + (egressEnforced ? 2 : 0);
  let byEnforcement = peerCompilations.get(change);
  if (!byEnforcement) peerCompilations.set(change, (byEnforcement = []));
  let out = byEnforcement[slot];
  if (!out) {
    // Not a spread of `policy`: its entries may be computed when read, and only the change's are needed.
    out = groupByIdentity(compilePolicy({ ingressEnforced, egressEnforced, entries: [...change.entries] }));
    byEnforcement[slot] = out;
  }
  return out;
}

export function toPolicyKey(endpointId: number, e: CompiledPolicyEntry): PolicyKey {
  return {
    prefixlen: WEFT_POLICY_EXACT_BITS + (e.protocol === null ? 0 : 8 + (e.port?.bits ?? 0)),
    endpoint_id: endpointId,
    identity: e.identity,
    direction: e.direction === 'ingress' ? WEFT_DIRECTION.WEFT_DIR_INGRESS : WEFT_DIRECTION.WEFT_DIR_EGRESS,
    protocol: e.protocol ?? 0,
    dport_be16: e.port?.base ?? 0,
  };
}

export function fromPolicyKey(k: PolicyKey, verdict: number): CompiledPolicyEntry & { endpointId: number } {
  const bits = k.prefixlen - WEFT_POLICY_EXACT_BITS;
  return {
    endpointId: k.endpoint_id,
    direction: k.direction === WEFT_DIRECTION.WEFT_DIR_INGRESS ? 'ingress' : 'egress',
    identity: k.identity,
    protocol: bits >= 8 ? k.protocol : null,
    port: bits > 8 ? { base: k.dport_be16, bits: bits - 8 } : null,
    verdict: verdict === WEFT_VERDICT.WEFT_VERDICT_DENY ? 'deny' : 'allow',
  };
}
