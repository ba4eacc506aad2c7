/**
 * Plain-text tables for the CLI: upper-case headers, columns padded to their widest cell, cells
 * that hold several values (labels) printed one per line, as `cilium` does.
 */
export type Cell = string | number | string[];

export function renderTable(headers: string[], rows: Cell[][]): string {
  const lines = (c: Cell) => (Array.isArray(c) ? (c.length ? c : ['']) : [String(c)]);
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...rows.flatMap((r) => lines(r[i] ?? '').map((l) => l.length))),
  );
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  const out = [fmt(headers.map((h) => h.toUpperCase()))];
  for (const row of rows) {
    const cells = headers.map((_, i) => lines(row[i] ?? ''));
    const height = Math.max(...cells.map((c) => c.length));
    for (let k = 0; k < height; k++) out.push(fmt(cells.map((c) => c[k] ?? '')));
  }
  return `${out.join('\n')}\n`;
}

/** "1h02m", "3m04s", "12s" */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}
