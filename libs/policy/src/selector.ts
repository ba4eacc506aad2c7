import { LABEL_SOURCES, type LabelMap } from './labels';
import type { LabelSelector, SelectorOperator } from './model';

/**
 * A compiled label selector over identity labels (`source:key` → value). A key `any:<k>` matches
 * a label `<k>` of any source (Cilium's source-less keys).
 */
export interface Requirement {
  key: string;
  operator: SelectorOperator;
  values?: readonly string[];
}

function lookup(labels: LabelMap, key: string): string | undefined {
  if (!key.startsWith('any:')) return labels.get(key);
  const bare = key.slice(4);
  for (const source of LABEL_SOURCES) {
    const v = labels.get(`${source}:${bare}`);
    if (v !== undefined) return v;
  }
  return undefined;
}

export class Selector {
  readonly requirements: readonly Requirement[];
  /** Canonical form: equal selectors (whatever their spelling) share one cache slot. */
  readonly key: string;
  private readonly valueSets: ReadonlyArray<ReadonlySet<string> | undefined>;

  constructor(requirements: Iterable<Requirement>) {
    const unique = new Map<string, Requirement>();
    for (const r of requirements) {
      const values = r.values && [...new Set(r.values)].sort();
      const norm: Requirement = values
        ? { key: r.key, operator: r.operator, values }
        : { key: r.key, operator: r.operator };
      unique.set(JSON.stringify([norm.key, norm.operator, norm.values ?? []]), norm);
    }
    const sorted = [...unique.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.requirements = sorted.map(([, r]) => r);
    this.key = sorted.map(([k]) => k).join('&');
    this.valueSets = this.requirements.map((r) => r.values && new Set(r.values));
  }

  matches(labels: LabelMap): boolean {
    for (let i = 0; i < this.requirements.length; i++) {
      const r = this.requirements[i]!;
      const v = lookup(labels, r.key);
      switch (r.operator) {
        case 'In':
          if (v === undefined || !this.valueSets[i]!.has(v)) return false;
          break;
        case 'NotIn':
          if (v !== undefined && this.valueSets[i]!.has(v)) return false;
          break;
        case 'Exists':
          if (v === undefined) return false;
          break;
        case 'DoesNotExist':
          if (v !== undefined) return false;
          break;
      }
    }
    return true;
  }

  toString(): string {
    if (this.requirements.length === 0) return '{}';
    return this.requirements
      .map((r) => {
        switch (r.operator) {
          case 'In':
            return r.values!.length === 1
              ? `${r.key}=${r.values![0]}`
              : `${r.key} in (${r.values!.join(',')})`;
          case 'NotIn':
            return `${r.key} notin (${r.values!.join(',')})`;
          case 'Exists':
            return r.key;
          case 'DoesNotExist':
            return `!${r.key}`;
        }
      })
      .join(',');
  }
}

/** Translates a meta/v1 LabelSelector; `mapKey` turns its keys into identity label keys. */
export function selectorRequirements(
  selector: LabelSelector,
  mapKey: (key: string) => string,
): Requirement[] {
  const out: Requirement[] = [];
  for (const [k, v] of Object.entries(selector.matchLabels ?? {}))
    out.push({ key: mapKey(k), operator: 'In', values: [v] });
  for (const e of selector.matchExpressions ?? []) {
    out.push(
      e.values
        ? { key: mapKey(e.key), operator: e.operator, values: e.values }
        : { key: mapKey(e.key), operator: e.operator },
    );
  }
  return out;
}

/**
 * An inverted index over identity labels so that a selector is evaluated against its most
 * selective `In` requirement's candidates instead of every identity.
 */
export class LabelIndex {
  private readonly byKey = new Map<string, Map<string, Set<number>>>();
  private readonly all = new Set<number>();

  add(id: number, labels: LabelMap): void {
    this.all.add(id);
    for (const [k, v] of labels) {
      let values = this.byKey.get(k);
      if (!values) this.byKey.set(k, (values = new Map()));
      let ids = values.get(v);
      if (!ids) values.set(v, (ids = new Set()));
      ids.add(id);
    }
  }

  remove(id: number, labels: LabelMap): void {
    this.all.delete(id);
    for (const [k, v] of labels) {
      const values = this.byKey.get(k);
      const ids = values?.get(v);
      if (!ids) continue;
      ids.delete(id);
      if (ids.size === 0) values!.delete(v);
      if (values!.size === 0) this.byKey.delete(k);
    }
  }

  private keysFor(key: string): string[] {
    return key.startsWith('any:') ? LABEL_SOURCES.map((s) => `${s}:${key.slice(4)}`) : [key];
  }

  /** Identities carrying `key` with one of `values` (any value when `values` is undefined). */
  private candidates(key: string, values: readonly string[] | undefined): number[] {
    const out: number[] = [];
    for (const k of this.keysFor(key)) {
      const byValue = this.byKey.get(k);
      if (!byValue) continue;
      if (values) for (const v of values) byValue.get(v)?.forEach((id) => out.push(id));
      else for (const ids of byValue.values()) ids.forEach((id) => out.push(id));
    }
    return out;
  }

  private candidateCount(key: string, values: readonly string[] | undefined): number {
    let n = 0;
    for (const k of this.keysFor(key)) {
      const byValue = this.byKey.get(k);
      if (!byValue) continue;
      if (values) for (const v of values) n += byValue.get(v)?.size ?? 0;
      else for (const ids of byValue.values()) n += ids.size;
    }
    return n;
  }

  /** All identities matching `selector`; `labelsOf` gives each candidate's labels. */
  evaluate(selector: Selector, labelsOf: (id: number) => LabelMap): Set<number> {
    let best: Requirement | undefined;
    let bestCount = Infinity;
    for (const r of selector.requirements) {
      if (r.operator !== 'In' && r.operator !== 'Exists') continue;
      const n = this.candidateCount(r.key, r.operator === 'In' ? r.values : undefined);
      if (n < bestCount) {
        best = r;
        bestCount = n;
      }
    }
    const pool: Iterable<number> = best
      ? this.candidates(best.key, best.operator === 'In' ? best.values : undefined)
      : this.all;
    const out = new Set<number>();
    for (const id of pool) if (selector.matches(labelsOf(id))) out.add(id);
    return out;
  }
}
