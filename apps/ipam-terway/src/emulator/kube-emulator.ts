/**
 * Just enough of the Kubernetes API for node capacity: GET a node, and PATCH its status with
 * a JSON patch (RFC 6902 add/replace/remove), bearer token checked. Like the kubelet, it
 * mirrors extended resources from status.capacity into status.allocatable.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface KubeNode {
  metadata: { name: string; resourceVersion: string };
  status: { capacity: Record<string, string>; allocatable: Record<string, string> };
}

export class KubeApiEmulator {
  readonly nodes = new Map<string, KubeNode>();
  readonly requests: Array<{ method: string; path: string; contentType?: string }> = [];
  private server: Server | undefined;
  private version = 1;

  constructor(private readonly token?: string) {}

  addNode(name: string): void {
    this.nodes.set(name, {
      metadata: { name, resourceVersion: String(this.version++) },
      status: { capacity: { cpu: '8', pods: '110' }, allocatable: { cpu: '8', pods: '110' } },
    });
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async start(): Promise<this> {
    this.server = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      this.requests.push({
        method: req.method ?? '',
        path: req.url ?? '',
        contentType: req.headers['content-type'],
      });
      if (this.token && req.headers.authorization !== `Bearer ${this.token}`)
        return send(401, { kind: 'Status', code: 401, reason: 'Unauthorized' });
      const m = /^\/api\/v1\/nodes\/([^/]+)(\/status)?$/.exec(req.url ?? '');
      const node = m && this.nodes.get(decodeURIComponent(m[1]!));
      if (!m || !node) return send(404, { kind: 'Status', code: 404, reason: 'NotFound' });
      if (req.method === 'GET') return send(200, node);
      if (req.method !== 'PATCH' || !m[2]) return send(405, { kind: 'Status', code: 405 });
      if (req.headers['content-type'] !== 'application/json-patch+json')
        return send(415, { kind: 'Status', code: 415 });
      const ops = JSON.parse(Buffer.concat(chunks).toString()) as Array<{
        op: string;
        path: string;
        value?: string;
      }>;
      for (const op of ops) {
        const parts = op.path
          .split('/')
          .slice(1)
          .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
        if (
          parts[0] !== 'status' ||
          (parts[1] !== 'capacity' && parts[1] !== 'allocatable') ||
          parts.length !== 3
        ) {
          return send(422, { kind: 'Status', code: 422, message: `unsupported path ${op.path}` });
        }
        const map = node.status[parts[1] as 'capacity' | 'allocatable'];
        if (op.op === 'remove') delete map[parts[2]!];
        else if (op.op === 'add' || op.op === 'replace') map[parts[2]!] = String(op.value);
        else return send(422, { kind: 'Status', code: 422, message: `unsupported op ${op.op}` });
      }
      for (const [k, v] of Object.entries(node.status.capacity))
        if (k.includes('/')) node.status.allocatable[k] = v;
      node.metadata.resourceVersion = String(this.version++);
      send(200, node);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return this;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
