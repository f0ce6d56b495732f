#!/usr/bin/env bash
# daenr report as a user meets it: a tiny real sweep, its tables in every
# format and the HTML report, byte-identical on a second run, one-line errors
# for databases it cannot read, and the HTML rendered by headless Chromium
# with every image decoded. The screenshot is kept as a test artefact:
# build/test-artifacts/report.png.
set -uo pipefail
daenr=$1
here=$(cd "$(dirname "$0")" && pwd)
spec=$here/../data/report-sweep.toml
artifacts=$(cd "$(dirname "$daenr")/.." && pwd)/test-artifacts
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
db=$tmp/r.sqlite

"$daenr" sweep run "$spec" --db "$db" >"$tmp/sweep.out" 2>&1 || fail "the sweep failed: $(cat "$tmp/sweep.out")"
grep -q "^10 jobs: ran 10 (10 done" "$tmp/sweep.out" || fail "sweep: $(cat "$tmp/sweep.out")"

# Every format and the HTML; the tables on stdout.
"$daenr" report --db "$db" --out "$tmp/a" --html "$tmp/a.html" >"$tmp/a.md" 2>"$tmp/a.err"
rc=$?
[ "$rc" -eq 0 ] || fail "report exited $rc: $(cat "$tmp/a.err")"
for t in 2 3 4 5 6 7 8; do
  grep -q "^## Table $t: " "$tmp/a/tables.md" || fail "tables.md lacks Table $t"
  [ -s "$tmp/a/table$t.csv" ] || fail "table$t.csv missing"
done
# stdout shows the tables that hold a job (no subset job here: not Table 3) and names the others.
for t in 2 4 5 6 7 8; do grep -q "^## Table $t: " "$tmp/a.md" || fail "stdout lacks Table $t"; done
grep -q "^## Table 3: " "$tmp/a.md" && fail "stdout shows Table 3, which has no job"
grep -qx "Table 3 not shown: no jobs for it." "$tmp/a.md" || fail "stdout does not name Table 3 as left out: $(tail -3 "$tmp/a.md")"
# Each job, with its metrics, before the tables.
[ "$(grep -cE '^\| (CAE|CNN)[-A-Z_0-9]* +\| [0-9a-f]{8} \| Region 3 \(virtual\) \| [01] +\| done ' "$tmp/a.md")" -eq 10 ] ||
  fail "stdout does not list the 10 jobs: $(sed -n '/^## Jobs/,/^## Table 2/p' "$tmp/a.md")"
grep -q "^10 jobs: 10 done, 0 failed, 0 not finished" "$tmp/a.md" || fail "summary: $(sed -n 3p "$tmp/a.md")"
# Table 2's CAE-FR_1 row in region 3 has two seeds.
grep -E -q "^\| CAE-FR_1 +\| .*\(n=2\)" "$tmp/a.md" || fail "no CAE-FR_1 row with n=2: $(grep 'CAE-FR_1 ' "$tmp/a.md" | head -1)"
# The files keep the paper's full layout, with the rows that have no job; stdout leaves them out.
grep -q "CAE-FR_3 .*n/a (no job)" "$tmp/a/tables.md" || fail "the missing CAE-FR_3 cells do not say so in tables.md"
grep -q "^| CAE-FR_3 " "$tmp/a.md" && fail "stdout shows the CAE-FR_3 row, which has no job"
grep -q "n/a (no job)" "$tmp/a.md" && fail "stdout shows a cell without a job: $(grep -m1 'n/a (no job)' "$tmp/a.md")"
cmp -s <(head -3 "$tmp/a.md") <(head -3 "$tmp/a/tables.md") || fail "stdout's summary is not tables.md's"
grep -q '\\toprule' "$tmp/a/tables.tex" && grep -q '\\bottomrule' "$tmp/a/tables.tex" || fail "tables.tex lacks booktabs rules"
[ -s "$tmp/a/figures/figure2-virtual-3.png" ] || fail "figure 2 missing"
[ "$(head -c 8 "$tmp/a/figures/figure2-virtual-3.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] ||
  fail "figure 2 is not a PNG"
# Virtual regions carry ground truth: Table 8 has region 3's block, Figure 5 its RF centres.
grep -q "^### Region 3 (virtual)" <(sed -n '/^## Table 8: /,$p' "$tmp/a.md") || fail "Table 8 lacks region 3"
for f in figure3-virtual-3.svg figure4-virtual-3.svg figure5-virtual-3.svg; do [ -s "$tmp/a/figures/$f" ] || fail "$f missing"; done
[ "$(ls "$tmp/a/curves" | wc -l)" -eq 10 ] || fail "$(ls "$tmp/a/curves" | wc -l) curves, expected 10"
[ ! -e "$tmp/a/report.html" ] || fail "--html did not replace the default HTML path"
grep -q 'src="http\|href="http' "$tmp/a.html" && fail "the HTML links outside itself"
grep -q "daenr report: .* files in $tmp/a; open $tmp/a.html" "$tmp/a.err" || fail "stderr: $(cat "$tmp/a.err")"

# The same database gives byte-identical files.
"$daenr" report --db "$db" --out "$tmp/b" --html "$tmp/b.html" >"$tmp/b.md" 2>/dev/null || fail "second report failed"
diff -r "$tmp/a" "$tmp/b" >/dev/null || fail "a second run wrote different files: $(diff -rq "$tmp/a" "$tmp/b" | head -3)"
cmp -s "$tmp/a.html" "$tmp/b.html" || fail "a second run wrote a different HTML file"
cmp -s "$tmp/a.md" "$tmp/b.md" || fail "a second run printed different tables"

# The default output folder, and one format only.
"$daenr" report --db "$db" --format md >/dev/null 2>&1 || fail "report with the defaults failed"
[ -s "$db.report/tables.md" ] && [ -s "$db.report/report.html" ] || fail "nothing in the default folder $db.report"
[ ! -e "$db.report/tables.tex" ] && [ ! -e "$db.report/table2.csv" ] || fail "--format md wrote other formats"

# Bad input: exit 2, one line.
expect_error() {  # expect_error PATTERN ARGS...: exit 2 and one stderr line matching PATTERN
  local pattern=$1
  shift
  "$daenr" report "$@" >/dev/null 2>"$tmp/err"
  local rc=$?
  [ "$rc" -eq 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "$pattern" "$tmp/err" ||
    fail "report $* ($rc): $(cat "$tmp/err")"
}
expect_error "^daenr: error: $tmp/absent.sqlite: no such database$" --db "$tmp/absent.sqlite"
printf 'not a database at all, just text that is long enough to look like a header......\n' >"$tmp/notes.txt"
expect_error "^daenr: error: $tmp/notes.txt: not an SQLite database" --db "$tmp/notes.txt"
expect_error "^daenr: error: .*format" --db "$db" --format md,pdf
expect_error "^daenr: error: $db: no sweep named 'other'" --db "$db" --sweep other
[ ! -e "$tmp/absent.sqlite" ] || fail "a report created the missing database"

# Headless Chromium: the page renders, and every image decodes.
if ! command -v chromium >/dev/null; then
  fail "chromium is not installed (scripts/setup.sh test installs it)"
else
  chrome=(timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-background-networking
          --user-data-dir="$tmp/chrome" --virtual-time-budget=10000)
  "${chrome[@]}" --dump-dom "file://$tmp/a.html" >"$tmp/dom.html" 2>"$tmp/chrome.err" || fail "chromium --dump-dom failed: $(tail -3 "$tmp/chrome.err")"
  grep -q '<html lang="en" data-images="14" data-broken-images="0">' "$tmp/dom.html" ||
    fail "the rendered page: $(grep -o '<html[^>]*>' "$tmp/dom.html" || echo 'no <html> element')"
  mkdir -p "$artifacts"
  rm -f "$artifacts/report.png"
  "${chrome[@]}" --screenshot="$artifacts/report.png" --window-size=1200,3000 "file://$tmp/a.html" >/dev/null 2>"$tmp/chrome.err" ||
    fail "chromium --screenshot failed: $(tail -3 "$tmp/chrome.err")"
  [ -s "$artifacts/report.png" ] || fail "no screenshot in $artifacts/report.png"
fi

if [ "$failures" -eq 0 ]; then echo "report_cli: all checks passed"; else echo "report_cli: $failures failed"; exit 1; fi
