/** True when running as the single executable (SEA), false under `node`. */
export function isSingleExecutable(): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('node:sea') as { isSea(): boolean }).isSea();
  } catch {
    return false; // a Node without node:sea is never a SEA
  }
}
