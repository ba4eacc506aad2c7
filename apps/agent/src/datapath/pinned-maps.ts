/**
 * Read-only access to the datapath's pinned maps for what the Datapath class does not offer:
 * entry counts against max_entries (status, metrics) and the ipcache contents (a restarted agent
 * removes prefixes nobody wants any more). Counting walks the map, so results are cached briefly.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  BpfMap,
  ctEntry,
  ctKey,
  decodeAddress,
  endpointInfo,
  endpointKey,
  ipcacheKey,
  ipcacheValue,
  policyKey,
  policyValue,
  rawCodec,
} from '@weft/bpf';
import type { DatapathMaps, MapStats } from './agent-datapath';

const COUNTED = [
  ['weft_endpoints', endpointKey.size, endpointInfo.size],
  ['weft_ipcache', ipcacheKey.size, ipcacheValue.size],
  ['weft_policy', policyKey.size, policyValue.size],
  ['weft_conntrack', ctKey.size, ctEntry.size],
] as const;

export class PinnedMaps implements DatapathMaps {
  private cached?: { at: number; stats: MapStats[] };
  private readonly raw = new Map<string, BpfMap<Buffer, Buffer>>();
  private readonly ipcacheMap: BpfMap<
    ReturnType<typeof ipcacheKey.decode>,
    ReturnType<typeof ipcacheValue.decode>
  >;

  constructor(
    private readonly pinRoot: string,
    private readonly cacheMs = 5000,
  ) {
    for (const [name, k, v] of COUNTED)
      this.raw.set(name, BpfMap.openPinned(join(pinRoot, name), rawCodec(k), rawCodec(v)));
    this.ipcacheMap = BpfMap.openPinned(join(pinRoot, 'weft_ipcache'), ipcacheKey, ipcacheValue);
  }

  stats(): MapStats[] {
    const now = Date.now();
    if (this.cached && now - this.cached.at < this.cacheMs) return this.cached.stats;
    const stats = [...this.raw].map(([name, map]) => {
      let entries = 0;
      for (const _ of map.keys()) entries++;
      return { name, entries, maxEntries: map.info.maxEntries };
    });
    this.cached = { at: now, stats };
    return stats;
  }

  ipcache(): { cidr: string; identity: number }[] {
    const out: { cidr: string; identity: number }[] = [];
    for (const [k, v] of this.ipcacheMap.entries())
      out.push({ cidr: `${decodeAddress(k.family, k.addr)}/${k.prefixlen - 32}`, identity: v.identity });
    return out;
  }

  programsPinned(): boolean {
    return existsSync(join(this.pinRoot, 'from_container')) && existsSync(join(this.pinRoot, 'to_container'));
  }

  close(): void {
    for (const m of this.raw.values()) m.close();
    this.ipcacheMap.close();
  }
}
