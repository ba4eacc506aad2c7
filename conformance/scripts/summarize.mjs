// Reads the suites' JSON lines and prints the summary table: per suite the number of
// cases, passed, failed and skipped (with the skip reasons), then every failure.
// Exit status 1 when any case failed or nothing ran at all.
//   usage: node summarize.mjs RESULTS.jsonl [--json SUMMARY.json]
import { readFileSync, writeFileSync } from 'node:fs';

const [file, flag, jsonOut] = process.argv.slice(2);
const records = readFileSync(file, 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l));

const suites = new Map();
for (const r of records) {
  const s = suites.get(r.suite) ?? {
    suite: r.suite,
    cases: 0,
    passed: 0,
    failed: 0,
    skipped: 0,
    ms: 0,
    skipReasons: new Map(),
    failures: [],
  };
  s.cases++;
  s.ms += r.ms ?? 0;
  if (r.status === 'pass') s.passed++;
  else if (r.status === 'fail') {
    s.failed++;
    s.failures.push(`${r.case}: ${r.reason ?? ''}`);
  } else {
    s.skipped++;
    const reason = r.reason ?? 'no reason';
    s.skipReasons.set(reason, (s.skipReasons.get(reason) ?? 0) + 1);
  }
  suites.set(r.suite, s);
}

const rows = [...suites.values()];
const header = ['suite', 'cases', 'passed', 'failed', 'skipped', 'seconds', 'skipped because'];
const table = rows.map((s) => [
  s.suite,
  String(s.cases),
  String(s.passed),
  String(s.failed),
  String(s.skipped),
  (s.ms / 1000).toFixed(1),
  [...s.skipReasons].map(([reason, n]) => `${n}× ${shorten(reason, 70)}`).join('; '),
]);
const total = rows.reduce(
  (t, s) => ({
    cases: t.cases + s.cases,
    passed: t.passed + s.passed,
    failed: t.failed + s.failed,
    skipped: t.skipped + s.skipped,
  }),
  { cases: 0, passed: 0, failed: 0, skipped: 0 },
);
table.push([
  'TOTAL',
  String(total.cases),
  String(total.passed),
  String(total.failed),
  String(total.skipped),
  '',
  '',
]);

const widths = header.map((h, i) =>
  Math.max(h.length, ...table.map((r) => (i === header.length - 1 ? 0 : r[i].length))),
);
const line = (cells) =>
  cells
    .map((c, i) => (i === cells.length - 1 ? c : i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
    .join('  ');
console.log('\n' + line(header));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const r of table) console.log(line(r));

const failures = rows.flatMap((s) => s.failures.map((f) => `  ${s.suite} ${f}`));
const shown = 40;
if (failures.length) {
  const more =
    failures.length > shown ? `\n  ... and ${failures.length - shown} more (see the results file)` : '';
  console.log(`\nFAILED (${failures.length}):\n${failures.slice(0, shown).join('\n')}${more}`);
}

if (flag === '--json' && jsonOut) {
  const out = { total, suites: rows.map((s) => ({ ...s, skipReasons: Object.fromEntries(s.skipReasons) })) };
  writeFileSync(jsonOut, JSON.stringify(out, null, 2));
}
process.exitCode = total.failed > 0 || total.cases === 0 ? 1 : 0;

function shorten(s, n) {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}
