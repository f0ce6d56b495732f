#!/usr/bin/env bash
# The published results (docs/results/) are what daenr computes from the published database:
# `daenr report` on docs/results/results.sqlite regenerates docs/results/report/ byte for
# byte, and the page's figures are the report's. A change to the report's code that changes
# the published report fails here: regenerate it (docs/results/README.md says how) and commit
# both together.
set -uo pipefail
daenr=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
results=$root/docs/results
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

[ -s "$results/results.sqlite" ] || { echo "FAIL: $results/results.sqlite is missing"; exit 1; }
# A copy, so that reading it leaves nothing in the checkout; the artifacts beside it, where a
# moved database's reports look for them.
cp "$results/results.sqlite" "$tmp/results.sqlite"
cp -r "$results/results.sqlite.artifacts" "$tmp/results.sqlite.artifacts"
"$daenr" report --db "$tmp/results.sqlite" --out "$tmp/report" >"$tmp/stdout.md" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 0 ] || fail "report exited $rc: $(cat "$tmp/err")"
diff -r "$tmp/report" "$results/report" >"$tmp/diff" || fail "docs/results/report differs from what the database gives: $(head -c 2000 "$tmp/diff")"
# The database is complete: no job pending, failed or running.
"$daenr" status --db "$tmp/results.sqlite" >"$tmp/status" 2>&1 || fail "status: $(cat "$tmp/status")"
grep -Eq ": [0-9]+ jobs: ([0-9]+) done, 0 pending, 0 running, 0 failed" "$tmp/status" || fail "not complete: $(head -1 "$tmp/status")"

if [ "$failures" -gt 0 ]; then
  echo "published_report: $failures failure(s)"
  exit 1
fi
echo "published_report: docs/results/report regenerates byte for byte"
