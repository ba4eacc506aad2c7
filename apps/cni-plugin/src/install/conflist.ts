import { readdirSync } from 'node:fs';
import { isIPv4 } from 'node:net';

export const DEFAULT_CONFLIST_NAME = '10-weft.conflist';
export const DEFAULT_POD_SUBNET = '10.99.0.0/24';

/** The example network a fresh node gets: weft-cni in veth mode, weft-host-local IPAM, portmap. */
export function exampleConflist(subnet = DEFAULT_POD_SUBNET): string {
  const conf = {
    cniVersion: '1.0.0',
    name: 'weftnet',
    plugins: [
      {
        type: 'weft-cni',
        mode: 'veth',
        mtu: 1500,
        ipam: { type: 'weft-host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
  return JSON.stringify(conf, null, 2) + '\n';
}

/** Accepts an IPv4 CIDR with a prefix that leaves room for pods (/8 to /30). */
export function isPodSubnet(cidr: string): boolean {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(cidr);
  return !!m && isIPv4(m[1]!) && Number(m[2]) >= 8 && Number(m[2]) <= 30;
}

/** Network config files the runtime would consider in `confDir` (libcni reads these extensions). */
export function networkConfigsIn(confDir: string): string[] {
  try {
    return readdirSync(confDir)
      .filter((f) => /\.(conflist|conf|json)$/.test(f) && !f.startsWith('.'))
      .sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export type ConflistPlan = { action: 'write'; content: string } | { action: 'skip'; reason: string };

/**
 * What install does about network configs. A new conflist is written only into a conf dir with no
 * other network: the runtime uses the lexically first config, so adding ours beside another CNI's
 * would silently switch (or not) which network new pods get.
 *
 * To add weft to a conf dir that has another network, chain it: `--chain-after NAME` (chain.ts).
 */
export function planConflist(confDir: string, name: string, subnet: string): ConflistPlan {
  const existing = networkConfigsIn(confDir);
  if (existing.includes(name)) return { action: 'skip', reason: `${name} exists; left as it is` };
  if (existing.length > 0) {
    return {
      action: 'skip',
      reason: `${confDir} already holds ${existing.join(', ')}; not adding ${name}, which would change which network new pods get (chain weft after it instead)`,
    };
  }
  return { action: 'write', content: exampleConflist(subnet) };
}
