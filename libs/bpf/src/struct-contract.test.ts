import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireCommands } from '@weft/testkit';
import { MIRRORED_ENUMS, STRUCT_MIRRORS } from './index';
import { buildBpfObjects } from './testing/bpf-objects';

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  members?: { name: string; type_id: number; bits_offset: number; bitfield_size?: number }[];
  values?: { name: string; val: number }[];
  type_id?: number;
  nr_elems?: number;
}

function readBtf(object: string): Map<string, BtfType> & { byId: Map<number, BtfType> } {
  const json = JSON.parse(
    execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', object], { encoding: 'utf8' }),
  ) as { types: BtfType[] };
  const byName = new Map<string, BtfType>() as Map<string, BtfType> & { byId: Map<number, BtfType> };
  byName.byId = new Map(json.types.map((t) => [t.id, t]));
  for (const t of json.types) if (t.name && t.name !== '(anon)') byName.set(`${t.kind}:${t.name}`, t);
  return byName;
}

// Size in bytes of a BTF type, following typedefs/modifiers and arrays.
function sizeOf(btf: Map<number, BtfType>, id: number): number {
  const t = btf.get(id);
  if (!t) throw new Error(`no BTF type ${id}`);
  if (t.size !== undefined) return t.size;
  if (t.kind === 'ARRAY') return (t.nr_elems ?? 0) * sizeOf(btf, t.type_id!);
  if (t.type_id !== undefined) return sizeOf(btf, t.type_id);
  throw new Error(`BTF type ${id} (${t.kind}) has no size`);
}

describe("struct contract: TS mirrors vs the compiled objects' BTF", () => {
  for (const objectName of ['from-container.o', 'to-container.o']) {
    it(`every mirror matches ${objectName}`, (ctx) => {
      requireCommands(ctx, 'bpftool', 'clang', 'make');
      const btf = readBtf(join(buildBpfObjects(), objectName));
      for (const mirror of STRUCT_MIRRORS) {
        const s = btf.get(`STRUCT:${mirror.cStruct}`);
        expect(s, `struct ${mirror.cStruct} in BTF`).toBeDefined();
        expect(mirror.size, `sizeof(struct ${mirror.cStruct})`).toBe(s!.size);
        const members = new Map(s!.members!.map((m) => [m.name, m]));
        for (const f of mirror.fields) {
          const m = members.get(f.name);
          expect(m, `${mirror.cStruct}.${f.name} exists in C`).toBeDefined();
          expect(f.offset * 8, `offset of ${mirror.cStruct}.${f.name}`).toBe(m!.bits_offset);
          const cSize = m!.bitfield_size ? m!.bitfield_size / 8 : sizeOf(btf.byId, m!.type_id);
          expect(f.size, `size of ${mirror.cStruct}.${f.name}`).toBe(cSize);
        }
        // Every C member is mirrored, except explicit padding.
        const unmirrored = [...members.keys()].filter(
          (n) => !n.startsWith('pad') && !mirror.fields.some((f) => f.name === n),
        );
        expect(unmirrored, `C members of ${mirror.cStruct} missing in the mirror`).toEqual([]);
      }
    });
  }

  it('the TS enums name and number every C enumerator', (ctx) => {
    requireCommands(ctx, 'bpftool', 'clang', 'make');
    const btf = readBtf(join(buildBpfObjects(), 'from-container.o'));
    for (const [cName, mirror] of Object.entries(MIRRORED_ENUMS)) {
      const e = btf.get(`ENUM:${cName}`);
      expect(e, `enum ${cName} in BTF`).toBeDefined();
      const fromC = Object.fromEntries(e!.values!.map((v) => [v.name, v.val]));
      expect(mirror, `enum ${cName}`).toEqual(fromC);
    }
    expect(Object.keys(MIRRORED_ENUMS)).toContain('weft_drop_reason');
  });
});
