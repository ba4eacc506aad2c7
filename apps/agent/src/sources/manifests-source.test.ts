import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../logger';
import { ManifestsSource } from './manifests-source';
import type { SourceChange } from './source';

const dirs: string[] = [];
const sources: ManifestsSource[] = [];
afterEach(async () => {
  for (const s of sources.splice(0)) await s.stop();
  dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
});

function setup(files: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'weft-manifests-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const batches: SourceChange[][] = [];
  let synced = 0;
  const source = new ManifestsSource({ dir, logger: silentLogger(), debounceMs: 20, rescanMs: 0 });
  sources.push(source);
  const sink = { apply: (c: SourceChange[]) => batches.push(c), synced: () => synced++ };
  return { dir, source, sink, batches, synced: () => synced };
}

/** A compact view of a batch: "upsert Pod/x/a", "delete Policy NetworkPolicy/x/p". */
function summary(batch: SourceChange[]): string[] {
  return batch
    .map((c) => {
      if (c.kind === 'Namespace') return `${c.op} Namespace/${c.op === 'upsert' ? c.namespace.name : c.name}`;
      if (c.kind === 'Pod')
        return `${c.op} Pod/${c.op === 'upsert' ? `${c.pod.namespace}/${c.pod.name}` : `${c.namespace}/${c.name}`}`;
      return `${c.op} ${c.op === 'upsert' ? `${c.policy.kind}/${c.policy.metadata.namespace ?? ''}/${c.policy.metadata.name}` : c.key}`;
    })
    .sort();
}

const NS = (name: string, labels = `ns: ${name}`) => `apiVersion: v1
kind: Namespace
metadata:
  name: ${name}
  labels: {${labels}}
`;
const POD = (ns: string, name: string, app = name) => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${ns}, labels: {app: ${app}}}
spec:
  nodeName: node-1
  containers:
    - name: c
      image: nginx
      ports: [{name: http, containerPort: 8080}]
`;
const NP = (ns: string, name: string, from = 'b') => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ${name}, namespace: ${ns}}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{from: [{podSelector: {matchLabels: {app: ${from}}}}], ports: [{port: http}]}]
`;
const CNP = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c1, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: a}}
  ingress: [{fromEntities: [cluster]}]
`;
const CCNP = `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: cc1}
spec:
  endpointSelector: {}
  egress: [{toEntities: [world]}]
`;

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('manifests dir source', () => {
  it('loads multi-document files (and kind: List) of every supported kind, then reports synced', async () => {
    const t = setup({
      'cluster.yaml':
        [NS('x'), POD('x', 'a'), POD('x', 'b'), NP('x', 'allow-b'), CNP, CCNP].join('---\n') + '---\n',
      'list.yml': `apiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: Namespace, metadata: {name: y}}\n`,
      'ignored.txt': 'not a manifest',
      '.hidden.yaml': 'kind: Nonsense',
    });
    await t.source.start(t.sink);
    expect(t.synced()).toBe(1);
    expect(t.batches).toHaveLength(1);
    expect(summary(t.batches[0]!)).toEqual([
      'upsert CiliumClusterwideNetworkPolicy//cc1',
      'upsert CiliumNetworkPolicy/x/c1',
      'upsert Namespace/x',
      'upsert Namespace/y',
      'upsert NetworkPolicy/x/allow-b',
      'upsert Pod/x/a',
      'upsert Pod/x/b',
    ]);
    const pod = t.batches[0]!.find((c) => c.kind === 'Pod' && c.op === 'upsert');
    expect(pod).toMatchObject({
      pod: {
        labels: { app: 'a' },
        nodeName: 'node-1',
        ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
      },
    });
  });

  it('applies a changed file as the difference: only changed objects upserted, removed ones deleted', async () => {
    const t = setup({ 'a.yaml': [NS('x'), POD('x', 'a'), POD('x', 'b'), NP('x', 'p1')].join('---\n') });
    await t.source.start(t.sink);
    writeFileSync(join(t.dir, 'a.yaml'), [NS('x'), POD('x', 'a', 'changed'), NP('x', 'p1')].join('---\n'));
    t.source.scan();
    expect(summary(t.batches[1]!)).toEqual(['delete Pod/x/b', 'upsert Pod/x/a']);
    // Unchanged content again: nothing.
    t.source.scan();
    expect(t.batches).toHaveLength(2);
  });

  it('deletes every object of a removed file; follows renames; watches the dir (debounced)', async () => {
    const t = setup({ 'a.yaml': NS('x'), 'b.yaml': NP('x', 'p1') });
    await t.source.start(t.sink);
    rmSync(join(t.dir, 'b.yaml'));
    await until(() => t.batches.length === 2);
    expect(summary(t.batches[1]!)).toEqual(['delete NetworkPolicy/x/p1']);
    // An editor's atomic save: write a temp file, rename over.
    writeFileSync(join(t.dir, '.a.yaml.swp'), NS('x', 'ns: x, team: blue'));
    renameSync(join(t.dir, '.a.yaml.swp'), join(t.dir, 'a.yaml'));
    await until(() => t.batches.length === 3);
    expect(t.batches[2]).toEqual([
      { op: 'upsert', kind: 'Namespace', namespace: { name: 'x', labels: { ns: 'x', team: 'blue' } } },
    ]);
  });

  it('keeps the previous objects of a file that stops parsing, and reports the error', async () => {
    const t = setup({ 'a.yaml': [NS('x'), NP('x', 'p1')].join('---\n'), 'b.yaml': NS('y') });
    await t.source.start(t.sink);
    // Half-saved YAML, then a valid YAML with an invalid policy: both keep p1 in force.
    writeFileSync(join(t.dir, 'a.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: x\n');
    t.source.scan();
    expect(t.batches).toHaveLength(1);
    expect(t.source.fileErrors()).toEqual([{ file: 'a.yaml', error: expect.stringMatching(/^a\.yaml: /) }]);
    writeFileSync(
      join(t.dir, 'a.yaml'),
      [NS('x'), NP('x', 'p1').replace('ports: [{port: http}]', 'ports: [{port: http, endPort: 90}]')].join(
        '---\n',
      ),
    );
    t.source.scan();
    expect(t.batches).toHaveLength(1);
    expect(t.source.fileErrors()[0]!.error).toMatch(/document 2: .*endPort/);
    // An unknown kind is an error too (a typo must not silently drop a policy).
    writeFileSync(
      join(t.dir, 'b.yaml'),
      NS('y') + '---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n',
    );
    t.source.scan();
    expect(t.batches).toHaveLength(1);
    expect(t.source.fileErrors().map((e) => e.file)).toEqual(['a.yaml', 'b.yaml']);
    // Fixed: the difference to what was in force is applied.
    writeFileSync(join(t.dir, 'a.yaml'), [NS('x'), NP('x', 'p1', 'c')].join('---\n'));
    t.source.scan();
    expect(summary(t.batches[1]!)).toEqual(['upsert NetworkPolicy/x/p1']);
    expect(t.source.fileErrors().map((e) => e.file)).toEqual(['b.yaml']);
  });

  it('resolves an object defined in two files to the first file by name', async () => {
    const t = setup({ '10-a.yaml': NS('x', 'ns: first'), '20-b.yaml': NS('x', 'ns: second') });
    await t.source.start(t.sink);
    expect(t.batches[0]).toEqual([
      { op: 'upsert', kind: 'Namespace', namespace: { name: 'x', labels: { ns: 'first' } } },
    ]);
    rmSync(join(t.dir, '10-a.yaml'));
    t.source.scan();
    expect(t.batches[1]).toEqual([
      { op: 'upsert', kind: 'Namespace', namespace: { name: 'x', labels: { ns: 'second' } } },
    ]);
  });

  it('refuses to start on a missing dir', async () => {
    const t = setup({});
    const s = new ManifestsSource({ dir: join(t.dir, 'nope'), logger: silentLogger() });
    await expect(s.start(t.sink)).rejects.toThrow(/is not a directory/);
  });
});
