import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The repository's bpf/ folder, found from this file. */
export const BPF_SOURCE_DIR = resolve(__dirname, '../../../../bpf');

/** Builds bpf/build/*.o (make is incremental) and returns the build folder. */
export function buildBpfObjects(): string {
  execFileSync('make', ['-s', '-C', BPF_SOURCE_DIR], { stdio: ['ignore', 'ignore', 'inherit'] });
  const dir = join(BPF_SOURCE_DIR, 'build');
  if (!existsSync(join(dir, 'from-container.o')))
    throw new Error(`make did not produce ${dir}/from-container.o`);
  return dir;
}
