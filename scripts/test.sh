#!/usr/bin/env bash
# The README's test command: set-up, build, every test (privileged ones included when root),
# eslint over the tree, then one summary line "tests: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

report=$(mktemp /tmp/weft-vitest-XXXX.json)
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
status=$?
echo "lint: eslint ."
npx eslint . || { echo "lint: eslint found problems"; status=1; }
node scripts/test-summary.mjs "$report" || status=1
exit $status
