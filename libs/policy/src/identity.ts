import type {
  FIRST_LOCAL_IDENTITY as ContractFirstLocal,
  IPPROTO as ContractIpproto,
  RESERVED_IDENTITY as ContractReserved,
} from '@weft/datapath';
import { labelSetKey, reservedLabel, type LabelMap } from './labels';

/*
 * Local copies of the datapath contract's constants: @weft/datapath is imported for types only
 * (it loads the native addon at run time). `typeof` pins every number to the contract's literal,
 * so a drift fails type-checking.
 */
export const RESERVED_IDENTITY: typeof ContractReserved = {
  unknown: 0,
  host: 1,
  world: 2,
  unmanaged: 3,
  health: 4,
  init: 5,
  remoteNode: 6,
};
export const FIRST_LOCAL_IDENTITY: typeof ContractFirstLocal = 256;
export const IPPROTO: typeof ContractIpproto = { ANY: 0, ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58, SCTP: 132 };

/** Local identities stay below 2^24, like Cilium's, so they fit the datapath's tunnel/mark fields. */
export const MAX_LOCAL_IDENTITY = 0xffffff;

/** Labels of the reserved identities (what entity selectors match). */
export const RESERVED_LABELS: ReadonlyMap<number, string> = new Map([
  [RESERVED_IDENTITY.host, reservedLabel('host')],
  [RESERVED_IDENTITY.world, reservedLabel('world')],
  [RESERVED_IDENTITY.unmanaged, reservedLabel('unmanaged')],
  [RESERVED_IDENTITY.health, reservedLabel('health')],
  [RESERVED_IDENTITY.init, reservedLabel('init')],
  [RESERVED_IDENTITY.remoteNode, reservedLabel('remote-node')],
]);

/** What `IdentityAllocator.snapshot()` returns and its constructor restores (JSON-friendly). */
export interface PersistedIdentity {
  id: number;
  labels: Record<string, string>;
}

interface Slot {
  id: number;
  labels: LabelMap;
  refs: number;
}

/**
 * Numeric identities for label sets: the same label set always gets the same number while the
 * allocator (or a snapshot of it) lives. Numbers of unreferenced sets are kept, not reused, until
 * the space runs out, so a datapath entry left behind never silently means someone else.
 */
export class IdentityAllocator {
  private readonly byKey = new Map<string, Slot>();
  private readonly byId = new Map<number, Slot>();
  private next: number = FIRST_LOCAL_IDENTITY;

  constructor(restore: Iterable<PersistedIdentity> = []) {
    for (const { id, labels } of restore) {
      if (!Number.isInteger(id) || id < FIRST_LOCAL_IDENTITY || id > MAX_LOCAL_IDENTITY) {
        throw new RangeError(
          `persisted identity ${id} is outside ${FIRST_LOCAL_IDENTITY}..${MAX_LOCAL_IDENTITY}`,
        );
      }
      const map = new Map(Object.entries(labels));
      const key = labelSetKey(map);
      if (this.byId.has(id) || this.byKey.has(key))
        throw new RangeError(`persisted identity ${id} is a duplicate`);
      const slot = { id, labels: map, refs: 0 };
      this.byKey.set(key, slot);
      this.byId.set(id, slot);
      this.next = Math.max(this.next, id + 1);
    }
  }

  /** The identity of `labels`, allocated if new; takes a reference. */
  acquire(labels: LabelMap): number {
    const key = labelSetKey(labels);
    let slot = this.byKey.get(key);
    if (!slot) {
      slot = { id: this.freeId(), labels: new Map(labels), refs: 0 };
      this.byKey.set(key, slot);
      this.byId.set(slot.id, slot);
    }
    slot.refs++;
    return slot.id;
  }

  /** Drops a reference taken by `acquire`. */
  release(id: number): void {
    const slot = this.byId.get(id);
    if (slot && slot.refs > 0) slot.refs--;
  }

  lookup(labels: LabelMap): number | undefined {
    return this.byKey.get(labelSetKey(labels))?.id;
  }

  labelsOf(id: number): LabelMap | undefined {
    return this.byId.get(id)?.labels;
  }

  references(id: number): number {
    return this.byId.get(id)?.refs ?? 0;
  }

  /** Forgets label sets nobody references; returns their numbers. */
  collectGarbage(): number[] {
    const freed: number[] = [];
    for (const [key, slot] of this.byKey) {
      if (slot.refs > 0) continue;
      this.byKey.delete(key);
      this.byId.delete(slot.id);
      freed.push(slot.id);
    }
    return freed;
  }

  snapshot(): PersistedIdentity[] {
    return [...this.byId.values()]
      .sort((a, b) => a.id - b.id)
      .map((s) => ({ id: s.id, labels: Object.fromEntries(s.labels) }));
  }

  get size(): number {
    return this.byId.size;
  }

  private freeId(): number {
    if (this.next <= MAX_LOCAL_IDENTITY) return this.next++;
    this.collectGarbage();
    for (let id = FIRST_LOCAL_IDENTITY; id <= MAX_LOCAL_IDENTITY; id++) if (!this.byId.has(id)) return id;
    throw new RangeError('identity space exhausted');
  }
}
