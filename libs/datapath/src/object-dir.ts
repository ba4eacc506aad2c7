import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { seaFileGroup } from '@weft/native';

/** Where installed BPF objects live (the package/installer puts them here). */
export const INSTALLED_OBJECT_DIR = '/usr/lib/weft/bpf';

/**
 * The folder holding from-container.o and to-container.o: $WEFT_BPF_DIR, the objects the single
 * executable carries (written once to its cache), the installed folder, a `bpf/` beside the
 * running bundle, or the repository's bpf/build (development, tests).
 */
export function findBpfObjectDir(): string {
  const here = typeof __dirname === 'string' ? __dirname : process.cwd();
  const fromEnv = process.env.WEFT_BPF_DIR;
  const candidates = [fromEnv, fromEnv ? undefined : seaFileGroup('bpf'), INSTALLED_OBJECT_DIR, join(here, 'bpf'), join(here, '..', 'bpf')];
  // Walk up from this file to the repository root's bpf/build.
  for (let dir = here; dir !== dirname(dir); dir = dirname(dir)) candidates.push(join(dir, 'bpf', 'build'));
  const found = candidates.find(
    (d) => d && existsSync(join(d, 'from-container.o')) && existsSync(join(d, 'to-container.o')),
  );
  if (!found) {
    throw Object.assign(
      new Error(
        `BPF objects not found (build them with "make -C bpf"); looked in ${candidates
          .filter(Boolean)
          .map((d) => resolve(d!))
          .join(', ')}`,
      ),
      {
        code: 'ENOENT',
      },
    );
  }
  return found;
}
