#!/usr/bin/env bash
# daenr sweep plan / run / status as a user meets them: resumable runs, a
# graceful stop on SIGTERM, one run per database, one-line errors.
set -uo pipefail
daenr=$1
here=$(cd "$(dirname "$0")" && pwd)
spec=$here/../data/kill-sweep.toml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
db=$tmp/s.sqlite

out=$("$daenr" sweep plan "$spec" --db "$db") || fail "plan failed"
[ "$(head -1 <<<"$out")" = "24 jobs: 24 new, 0 done, 0 failed, 0 pending, 0 stale" ] || fail "plan: $out"
[ "$(grep -c '^new ' <<<"$out")" -eq 24 ] || fail "plan lists $(grep -c '^new ' <<<"$out") new ids"
[ ! -e "$db" ] || fail "plan created the database"

# SIGTERM mid-sweep: graceful stop, exit 4, the job in flight preempted. The
# jobs of this copy of the spec train far longer than 3 s, so the signal
# always lands mid-training (the tiny jobs of the spec itself take about a
# second, and a signal between two of them preempts nothing).
slow_db=$tmp/slow.sqlite
# Waits until a run holds DB's lock with a job in flight (at most 120 s), so that a signal or a
# second run lands mid-sweep however loaded the machine is (a fixed sleep did not, under load).
wait_for_running() {
  local db=$1 pid=$2
  for _ in $(seq 1 240); do
    kill -0 "$pid" 2>/dev/null || return 1
    "$daenr" status --db "$db" 2>/dev/null | grep -q "^running: " && return 0
    sleep 0.5
  done
  return 1
}
sed -e 's/^max_steps = .*/max_steps = 100000/' -e 's/^patience = .*/patience = 100000/' "$spec" >"$tmp/slow.toml"
"$daenr" sweep run "$tmp/slow.toml" --db "$slow_db" >"$tmp/run1" 2>&1 &
pid=$!
wait_for_running "$slow_db" "$pid" || fail "the slow run never had a job in flight: $(cat "$tmp/run1")"
sleep 1
kill -TERM "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 4 ] || fail "SIGTERM run exited $rc, expected 4: $(cat "$tmp/run1")"
grep -q "stopped, rerun to resume" "$tmp/run1" || fail "no stop message: $(cat "$tmp/run1")"
status=$("$daenr" status --db "$slow_db") || fail "status failed"
grep -q "preempted" <<<"$status" || fail "status: $status"
python3 - "$slow_db" <<'PY' || fail "after SIGTERM the job in flight is not preempted"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
states = dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
assert states.get("preempted") == 1 and states.get("leased") is None, states
assert db.execute("SELECT attempts FROM jobs WHERE state = 'preempted'").fetchone()[0] == 0
PY
ls "$slow_db.checkpoints"/*.ckpt >/dev/null 2>&1 || fail "the preempted job left no checkpoint"
# The grace signals stop it the same way: USR2 (Slurm's by default) and USR1
# always, ALRM when --grace-signal names it (the batch script passes it) or, without the flag,
# the spec's grace_signal key does (a run setting: the same jobs, the same database). The
# preempted job resumes each time and is preempted again, never attempted.
{ echo 'grace_signal = "ALRM"'; cat "$tmp/slow.toml"; } >"$tmp/slow-alrm.toml"
for case in "USR2" "USR1" "ALRM --grace-signal ALRM" "ALRM spec"; do
  sig=${case%% *}
  args=${case#"$sig"} run_spec=$tmp/slow.toml
  if [ "$args" = " spec" ]; then args="" run_spec=$tmp/slow-alrm.toml; fi
  # shellcheck disable=SC2086 # the flags, word-split on purpose
  "$daenr" sweep run "$run_spec" --db "$slow_db" $args >"$tmp/run_$sig" 2>&1 &
  pid=$!
  wait_for_running "$slow_db" "$pid" || fail "$sig: the run never had a job in flight: $(cat "$tmp/run_$sig")"
  sleep 1
  kill -s "$sig" "$pid"
  wait "$pid"
  rc=$?
  [ "$rc" -eq 4 ] && grep -q "stopped, rerun to resume" "$tmp/run_$sig" || fail "SIG$sig: exit $rc: $(cat "$tmp/run_$sig")"
  [ "$(sqlite3 "$slow_db" "SELECT state || attempts FROM jobs WHERE state != 'pending'")" = preempted0 ] ||
    fail "after SIG$sig: $(sqlite3 "$slow_db" "SELECT state, attempts FROM jobs WHERE state != 'pending'")"
done

# A stream of signals until the run has stopped (a user's repeated Ctrl-C, a scheduler that
# signals twice) stops it as one does. A handler run on the training thread inside oneDNN's
# GEMM corrupted the heap: 8 runs of 10 aborted this way before StopSignals took the signals
# on a thread of its own (orchestrator/stop_signals.h).
"$daenr" sweep run "$tmp/slow.toml" --db "$slow_db" >"$tmp/run_burst" 2>&1 &
pid=$!
wait_for_running "$slow_db" "$pid" || fail "burst: the run never had a job in flight: $(cat "$tmp/run_burst")"
sleep 0.5
deadline=$((SECONDS + 120))  # a run that never stops fails below instead of hanging the test
while [ "$SECONDS" -lt "$deadline" ] && kill -s USR1 "$pid" 2>/dev/null; do :; done
kill -s KILL "$pid" 2>/dev/null
wait "$pid"
rc=$?
[ "$rc" -eq 4 ] && grep -q "stopped, rerun to resume" "$tmp/run_burst" || fail "a stream of SIGUSR1: exit $rc: $(cat "$tmp/run_burst")"
[ "$(sqlite3 "$slow_db" "SELECT state || attempts FROM jobs WHERE state != 'pending'")" = preempted0 ] ||
  fail "after a stream of SIGUSR1: $(sqlite3 "$slow_db" "SELECT state, attempts FROM jobs WHERE state != 'pending'")"

# A second run while one is going refuses, naming the holder.
"$daenr" sweep run "$spec" --db "$db" >"$tmp/run2" 2>&1 &
pid=$!
wait_for_running "$db" "$pid" || fail "the first run never had a job in flight: $(cat "$tmp/run2")"
"$daenr" sweep run "$spec" --db "$db" >"$tmp/run3" 2>"$tmp/err3"
rc=$?
[ "$rc" -eq 2 ] || fail "concurrent run exited $rc, expected 2"
grep -q "another run is using this database: .*:$pid" "$tmp/err3" || fail "holder not named: $(cat "$tmp/err3")"
wait "$pid" || fail "resumed run failed: $(cat "$tmp/run2")"
out=$("$daenr" sweep plan "$spec" --db "$db")
[ "$(head -1 <<<"$out")" = "24 jobs: 0 new, 24 done, 0 failed, 0 pending, 0 stale" ] || fail "after resume: $out"
out=$("$daenr" sweep run "$spec" --db "$db") || fail "a run of a finished sweep failed"
[ "$out" = "24 jobs: ran 0 (0 done, 0 failed, 0 preempted)" ] || fail "finished sweep ran again: $out"

# Artifacts: each job with a decoder left its test images and reconstructions.
python3 - "$db" <<'PY' || fail "reconstruction artifacts missing"
import sqlite3, sys, os, struct
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT path FROM artifacts WHERE kind = 'reconstructions'").fetchall()
assert len(rows) == 24, len(rows)
with open(rows[0][0], "rb") as f:
    assert f.read(6) == b"\x93NUMPY"
    f.read(2); n = struct.unpack("<H", f.read(2))[0]
    assert "(2, 10, 1, 32, 32)" in f.read(n).decode(), "shape"
PY

# A job that fails at run time (here: its device does not exist) is recorded
# with its error and the sweep goes on; the run exits 5 and status shows it.
printf 'name = "f"\n[data]\nregions = ["virtual:2"]\n[axes]\nlayer = [2]\nreadout = ["fr", "fc"]\n[override.fc]\ntrain.device = "cuda:99"\n[model]\nwidth = 4\nlatent = 8\n[train]\nbatch_size = 16\nvalidate_every = 5\npatience = 10\nmax_steps = 10\n' >"$tmp/f.toml"
"$daenr" sweep run "$tmp/f.toml" --db "$tmp/f.sqlite" --max-attempts 1 >"$tmp/fout" 2>&1
rc=$?
[ "$rc" -eq 5 ] || fail "a sweep with a failing job exited $rc, expected 5: $(cat "$tmp/fout")"
grep -q "ran 2 (1 done, 1 failed" "$tmp/fout" || fail "summary: $(cat "$tmp/fout")"
"$daenr" status --db "$tmp/f.sqlite" | grep -q "error: .*cuda:99" || fail "status lacks the error: $("$daenr" status --db "$tmp/f.sqlite")"
# A bad data file is found before anything runs: one line naming it, exit 2.
"$daenr" data synth --out "$tmp/data" --seed 2 >/dev/null
python3 - "$tmp/data/region2/training_set.npy" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-8:] = bytes.fromhex("000000000000f87f")  # the last value becomes NaN
open(p, "wb").write(bytes(b))
PY
printf 'name = "g"\n[data]\nregions = ["%s"]\n' "$tmp/data/region2" >"$tmp/g.toml"
"$daenr" sweep run "$tmp/g.toml" --db "$tmp/g.sqlite" >/dev/null 2>"$tmp/err"
[ $? -eq 2 ] && grep -q "training_set.npy: contains 1 NaN or infinite value" "$tmp/err" || fail "NaN data: $(cat "$tmp/err")"

# Bad input: one line, exit 2, nothing damaged.
printf 'name = "x"\n[data]\nregions = ["virtual:1"]\n[axes]\nlayr = [1]\n' >"$tmp/bad.toml"
"$daenr" sweep run "$tmp/bad.toml" --db "$db" 2>"$tmp/err" >/dev/null
rc=$?
[ "$rc" -eq 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "bad.toml:5:1: axes.layr" "$tmp/err" || fail "bad spec ($rc): $(cat "$tmp/err")"
printf 'not a database at all, just text that is long enough to look like a header......\n' >"$tmp/notes.txt"
cp "$tmp/notes.txt" "$tmp/notes.orig"
"$daenr" sweep run "$spec" --db "$tmp/notes.txt" 2>"$tmp/err" >/dev/null
rc=$?
[ "$rc" -eq 2 ] && grep -q "notes.txt: not an SQLite database" "$tmp/err" || fail "non-SQLite db ($rc): $(cat "$tmp/err")"
cmp -s "$tmp/notes.txt" "$tmp/notes.orig" || fail "the non-SQLite file was modified"
"$daenr" sweep run "$spec" --db "$tmp/no/such/dir/x.sqlite" 2>"$tmp/err" >/dev/null
[ $? -eq 2 ] && grep -q "does not exist" "$tmp/err" || fail "missing folder: $(cat "$tmp/err")"
for flags in "--grace-signal KILL" "--grace-signal HUP" "--jobs-per-gpu 0" "--jobs-per-gpu -2" "--jobs-per-gpu 2.5"; do
  # shellcheck disable=SC2086
  "$daenr" sweep run "$spec" --db "$tmp/flags.sqlite" $flags 2>"$tmp/err" >/dev/null
  rc=$?
  [ "$rc" -eq 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q -- "${flags%% *}" "$tmp/err" ||
    fail "sweep run $flags: exit $rc: $(cat "$tmp/err")"
done
[ ! -e "$tmp/flags.sqlite" ] || fail "a bad flag created the database"
"$daenr" status --db "$tmp/absent.sqlite" 2>"$tmp/err" >/dev/null
[ $? -eq 2 ] || fail "status of a missing database did not fail"

if [ "$failures" -eq 0 ]; then echo "sweep_cli: all checks passed"; else echo "sweep_cli: $failures failed"; exit 1; fi
