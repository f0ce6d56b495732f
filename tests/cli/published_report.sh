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

# Each published database (the paper's sweeps; the talk's, docs/results/talk/) and its report.
check() {  # check DIR NAME: DIR/NAME.sqlite regenerates DIR/report
  local dir=$1 name=$2 work=$tmp/$2
  [ -s "$dir/$name.sqlite" ] || { fail "$dir/$name.sqlite is missing"; return; }
  mkdir -p "$work"
  # A copy, so that reading it leaves nothing in the checkout; the artifacts beside it, where a
  # moved database's reports look for them.
  cp "$dir/$name.sqlite" "$work/$name.sqlite"
  cp -r "$dir/$name.sqlite.artifacts" "$work/$name.sqlite.artifacts"
  "$daenr" report --db "$work/$name.sqlite" --out "$work/report" >"$work/stdout.md" 2>"$work/err"
  local rc=$?
  [ "$rc" -eq 0 ] || fail "$name: report exited $rc: $(cat "$work/err")"
  diff -r "$work/report" "$dir/report" >"$work/diff" ||
    fail "$dir/report differs from what the database gives: $(head -c 2000 "$work/diff")"
  # The database is complete: no job pending, failed or running.
  "$daenr" status --db "$work/$name.sqlite" >"$work/status" 2>&1 || fail "$name: status: $(cat "$work/status")"
  grep -Eq ": [0-9]+ jobs: ([0-9]+) done, 0 pending, 0 running, 0 failed" "$work/status" ||
    fail "$name: not complete: $(head -1 "$work/status")"
}
check "$results" results
check "$results/talk" talk

if [ "$failures" -gt 0 ]; then
  echo "published_report: $failures failure(s)"
  exit 1
fi
echo "published_report: docs/results/report and docs/results/talk/report regenerate byte for byte"
