import { createHash } from 'node:crypto';

/**
 * The host-side veth of an attachment: "lxc" + 11 hex digits of a hash of container id and
 * interface name (14 bytes, under IFNAMSIZ). Derived, not stored, so DEL finds it even when every
 * record is gone; Cilium's links use the same prefix, so GC only ever touches links it has a
 * record of.
 */
export function hostVethName(containerId: string, ifname: string): string {
  return `lxc${createHash('sha256').update(`${containerId}:${ifname}`).digest('hex').slice(0, 11)}`;
}

/**
 * The endpoint id weft-cni uses when it attaches the datapath itself (agent down, degraded):
 * top bit set, so it can never collide with an id the agent allocated (those stay below 2^31).
 */
export function degradedEndpointId(containerId: string, ifname: string): number {
  const h = createHash('sha256').update(`${containerId}:${ifname}`).digest();
  return (h.readUInt32BE(0) | 0x80000000) >>> 0;
}
