/**
 * Parsing of manifest text (YAML or JSON, several documents per file, `kind: List` too) into the
 * objects a source delivers. Shared by the manifests dir and anything else that reads manifests.
 */
import { parseAllDocuments } from 'yaml';
import { parseManifest, policyKey, type AnyPolicy, type Namespace, type Pod } from '@weft/policy';

export type SourceObject =
  | { kind: 'Namespace'; namespace: Namespace }
  | { kind: 'Pod'; pod: Pod }
  | { kind: 'Policy'; policy: AnyPolicy };

/** `Namespace/x`, `Pod/x/a`, or the policy's policyKey(). */
export function objectKey(o: SourceObject): string {
  if (o.kind === 'Namespace') return `Namespace/${o.namespace.name}`;
  if (o.kind === 'Pod') return `Pod/${o.pod.namespace}/${o.pod.name}`;
  return policyKey(o.policy);
}

export class ManifestError extends Error {
  readonly code = 'MANIFEST_INVALID';
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'ManifestError';
  }
}

/** Every object of one file; throws ManifestError naming the document and field. */
export function parseManifestText(text: string, file: string): SourceObject[] {
  const values = /\.json$/i.test(file) ? [parseJson(text, file)] : parseYaml(text, file);
  const out: SourceObject[] = [];
  values.forEach((value, d) => {
    const where = values.length > 1 ? `document ${d + 1}: ` : '';
    if (value === null || value === undefined) return; // empty document ("---" at the end)
    const items = isList(value) ? (value.items as unknown[]) : [value];
    items.forEach((item, i) => {
      const at = isList(value) ? `${where}items[${i}]: ` : where;
      try {
        const m = parseManifest(item);
        out.push(m.kind === 'Namespace' ? m : m.kind === 'Pod' ? m : { kind: 'Policy', policy: m.policy });
      } catch (e) {
        throw new ManifestError(file, `${at}${(e as Error).message}`);
      }
    });
  });
  return out;
}

/** JSON is YAML, but JSON.parse is an order of magnitude faster for big files. */
function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ManifestError(file, (err as Error).message);
  }
}

function parseYaml(text: string, file: string): unknown[] {
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  return list.map((doc, d) => {
    const err = doc.errors[0];
    if (err)
      throw new ManifestError(
        file,
        `${list.length > 1 ? `document ${d + 1}: ` : ''}${err.message.split('\n')[0]}`,
      );
    return doc.toJS({ maxAliasCount: 100 }) as unknown;
  });
}

function isList(v: unknown): v is { kind: 'List'; items: unknown[] } {
  return (
    typeof v === 'object' &&
    v !== null &&
    (v as { kind?: unknown }).kind === 'List' &&
    Array.isArray((v as { items?: unknown }).items)
  );
}
