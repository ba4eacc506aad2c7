// Prints the closing line CI reads: "tests: N passed, N failed, N skipped", plus each skip's reason.
import { readFileSync } from 'node:fs';

const report = JSON.parse(readFileSync(process.argv[2], 'utf8'));
let passed = 0, failed = 0, skipped = 0;
const skips = [];
for (const file of report.testResults ?? []) {
  if (file.status === 'failed' && (file.assertionResults ?? []).length === 0) failed++; // a file that did not load
  for (const t of file.assertionResults ?? []) {
    if (t.status === 'passed') passed++;
    else if (t.status === 'failed') failed++;
    else {
      skipped++;
      skips.push(`${t.fullName}${t.meta?.skipReason ? ` — ${t.meta.skipReason}` : ''}`);
    }
  }
}
if (skips.length) console.log(`skipped tests:\n  ${skips.join('\n  ')}`);
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
if (passed === 0) {
  console.log('no test passed: treating the run as failed');
  process.exit(1);
}
process.exit(failed > 0 ? 1 : 0);
