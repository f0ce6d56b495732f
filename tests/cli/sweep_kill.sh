#!/usr/bin/env bash
# Reliability: a sweep of 24 tiny jobs is SIGKILLed at random moments at least
# 20 times and restarted each time. Afterwards every job is done exactly once,
# no result row is duplicated, the database passes PRAGMA integrity_check, and
# every job's metrics equal those of an uninterrupted run of the same sweep.
set -uo pipefail
daenr=$1
here=$(cd "$(dirname "$0")" && pwd)
spec=$here/../data/kill-sweep.toml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# The reference: one uninterrupted run.
"$daenr" sweep run "$spec" --db "$tmp/ref.sqlite" >"$tmp/ref.out" 2>&1 || fail "reference run: $(cat "$tmp/ref.out")"

# The torture: kill -9 after a random 0.1-1.5 s, at least 20 times, then let
# it finish. RANDOM is seeded so that a failure can be replayed.
RANDOM=${DAENR_KILL_SEED:-4242}
kills=0
for attempt in $(seq 1 200); do
  "$daenr" sweep run "$spec" --db "$tmp/run.sqlite" >"$tmp/run.out" 2>&1 &
  pid=$!
  if ((kills < 20)); then
    sleep "$(printf '0.%03d' $((100 + RANDOM % 900)))"
    ((RANDOM % 3 == 0)) && sleep 0.5
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
      wait "$pid" 2>/dev/null
      continue
    fi
  fi
  wait "$pid"
  rc=$?
  if [ "$rc" -eq 0 ]; then break; fi
  # A run that ended by itself with an error is a failure, unless it raced a
  # kill (exit 137) or found the previous holder's lock fresh (it was killed
  # within the stale time): then wait for the lock to go stale.
  grep -q "another run is using this database" "$tmp/run.out" && { sleep 1; continue; }
  fail "run $attempt exited $rc: $(cat "$tmp/run.out")"
done
((kills >= 20)) || fail "only $kills kills landed before the sweep finished; make the jobs longer"
echo "killed $kills times"

python3 - "$tmp/ref.sqlite" "$tmp/run.sqlite" <<'PY' || fail "database checks failed"
import sqlite3, sys
ref, run = (sqlite3.connect(p) for p in sys.argv[1:])
assert run.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
states = dict(run.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
assert states == {"done": 24}, states
assert run.execute("SELECT count(*), count(DISTINCT job_id) FROM results").fetchone() == (24, 24)
n = run.execute("SELECT count(*) FROM (SELECT job_id, neuron FROM neuron_results GROUP BY 1, 2 HAVING count(*) > 1)").fetchone()[0]
assert n == 0, "duplicate per-neuron rows"
q = "SELECT job_id, mse, psnr, ssim, mean_r, n_significant, steps FROM results ORDER BY job_id"
a, b = ref.execute(q).fetchall(), run.execute(q).fetchall()
assert len(a) == 24 and a == b, [(x, y) for x, y in zip(a, b) if x != y][:3]
q = "SELECT job_id, neuron, r, p FROM neuron_results ORDER BY 1, 2"
assert ref.execute(q).fetchall() == run.execute(q).fetchall(), "per-neuron results differ"
PY
echo "sweep_kill: all checks passed"
