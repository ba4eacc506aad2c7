/**
 * Publishes the node's allocatable pod addresses as the extended resource `weft.io/ip`
 * (status.capacity; the kubelet mirrors extended resources into allocatable), so the
 * scheduler stops placing pods that request `weft.io/ip: 1` on a node that is full.
 * Talks to the Kubernetes API directly: one JSON-patch on nodes/<name>/status when the figure changes.
 */
import { readFileSync } from 'node:fs';
import type { Log } from './log';

export const IP_RESOURCE = 'weft.io/ip';

export interface KubeTarget {
  server: string;
  /** Bearer token, or a path to one (in-cluster: /var/run/secrets/kubernetes.io/serviceaccount/token). */
  token?: string;
  nodeName: string;
}

export class CapacityPublisher {
  private published: number | undefined;
  patches = 0;

  constructor(
    private readonly kube: KubeTarget,
    private readonly allocatable: () => number,
    private readonly log: Log,
  ) {}

  private token(): string | undefined {
    const t = this.kube.token;
    if (t?.startsWith('/')) return readFileSync(t, 'utf8').trim();
    return t;
  }

  /** Patches only when the figure changed since the last successful patch. */
  async publish(force = false): Promise<boolean> {
    const value = this.allocatable();
    if (!force && value === this.published) return false;
    const path = `/status/capacity/${IP_RESOURCE.replace('~', '~0').replace('/', '~1')}`;
    const token = this.token();
    const res = await fetch(
      `${this.kube.server}/api/v1/nodes/${encodeURIComponent(this.kube.nodeName)}/status`,
      {
        method: 'PATCH',
        headers: {
          'content-type': 'application/json-patch+json',
          accept: 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify([{ op: 'add', path, value: String(value) }]),
        signal: AbortSignal.timeout(10_000),
      },
    );
    if (!res.ok)
      throw new Error(`PATCH node ${this.kube.nodeName} status: HTTP ${res.status} ${await res.text()}`);
    this.published = value;
    this.patches++;
    this.log.info('published node capacity', { resource: IP_RESOURCE, value });
    return true;
  }
}
