#!/usr/bin/env bash
# The MPI orchestrator as a user meets it: `mpirun -n N daenr sweep run`, rank 0
# leasing to worker ranks. Every job done exactly once on 3 and on 4 ranks, a
# failing job recorded while the sweep goes on, and a graceful stop on the
# signals that mpirun forwards, resumed by the next run.
set -uo pipefail
daenr=$1
here=$(cd "$(dirname "$0")" && pwd)
spec=$here/../data/kill-sweep.toml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# Root in containers and CI; more ranks than cores on a 2-core machine.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
mpirun=(mpirun --oversubscribe --bind-to none)

# Every job of the sweep done exactly once (tests/support/done_once.py).
check_once() { python3 "$here/../support/done_once.py" "$@"; }

for n in 3 4; do
  db=$tmp/w$n.sqlite
  out=$("${mpirun[@]}" -n $n "$daenr" sweep run "$spec" --db "$db" 2>&1)
  rc=$?
  [ "$rc" -eq 0 ] || fail "$n ranks exited $rc: $out"
  grep -qx "24 jobs: ran 24 (24 done, 0 failed, 0 preempted)" <<<"$out" || fail "$n ranks: $out"
  grep -q "^rank 0 (orchestrator): .* s of CPU in the .* s job loop" <<<"$out" || fail "$n ranks: $out"
  check_once "$db" 24 || fail "$n ranks: not every job done exactly once"
done
# A worker group of two ranks (ranks_per_job in the spec) trains each job
# data-parallel: the same jobs as in one process, with results equal up to
# float32 rounding (tests/mpi checks the parameters themselves).
# Its decode and mei jobs (the talk's kinds) run on the same groups, every rank alike and the
# group's rank 0 writing the files, and agree with the single process's.
printf 'name = "dp"\nranks_per_job = 2\n[data]\nregions = ["virtual:2"]\n[axes]\nlayer = [2]\nreadout = ["fr", "none"]\nloss = [[1.0, 1.0], [1.0, 0.0]]\n[model]\nwidth = 4\nlatent = 8\n[train]\nbatch_size = 16\nvalidate_every = 5\npatience = 10\nmax_steps = 40\n[decode]\nsingle_trials = false\n[mei]\nneurons = "best:2"\nstarts = 1\nsteps = 5\nneurons_per_chunk = 1\n' >"$tmp/dp.toml"
out=$("${mpirun[@]}" -n 3 "$daenr" sweep run "$tmp/dp.toml" --db "$tmp/dp.sqlite" 2>&1) || fail "group of 2: $out"
"$daenr" sweep run "$tmp/dp.toml" --db "$tmp/dp1.sqlite" >/dev/null || fail "dp spec in one process"
python3 - "$tmp/dp.sqlite" "$tmp/dp1.sqlite" <<'PY' || fail "a group of 2 ranks does not reproduce the single-process results"
import sqlite3, sys
q = "SELECT job_id, mse, mean_r FROM results ORDER BY job_id"
a = sqlite3.connect(sys.argv[1]).execute(q).fetchall()
b = sqlite3.connect(sys.argv[2]).execute(q).fetchall()
# 2 trained, 2 decoded, 1 mei (the FR model's)
assert len(a) == 5 and [r[0] for r in a] == [r[0] for r in b], (a, b)
kinds = "SELECT kind, count(*) FROM jobs WHERE state = 'done' GROUP BY kind ORDER BY kind"
assert sqlite3.connect(sys.argv[1]).execute(kinds).fetchall() == [("decode", 2), ("mei", 1), ("train", 2)]
models = sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM artifacts WHERE kind = 'model'").fetchone()
assert models == (2,), models
for x, y in zip(a, b):
    for k in (1, 2):  # mse (none for an mei job), mean_r (none without a readout)
        assert (x[k] is None) == (y[k] is None) and (x[k] is None or abs(x[k] - y[k]) < 1e-3), (x, y)
PY

# A job that throws in a worker (its device does not exist) is recorded with
# its message; that worker goes on and the sweep completes: exit 5.
printf 'name = "f"\n[data]\nregions = ["virtual:2"]\n[axes]\nlayer = [1, 2]\nreadout = ["fr", "fc"]\n[override.fc]\ntrain.device = "cuda:99"\n[model]\nwidth = 4\nlatent = 8\n[train]\nbatch_size = 16\nvalidate_every = 5\npatience = 10\nmax_steps = 10\n' >"$tmp/f.toml"
out=$("${mpirun[@]}" -n 3 "$daenr" sweep run "$tmp/f.toml" --db "$tmp/f.sqlite" --max-attempts 1 2>&1)
rc=$?
[ "$rc" -eq 5 ] || fail "a sweep with failing jobs exited $rc, expected 5: $out"
grep -q "4 jobs: ran 4 (2 done, 2 failed, 0 preempted)" <<<"$out" || fail "failing jobs: $out"
"$daenr" status --db "$tmp/f.sqlite" | grep -q "error: .*cuda:99" || fail "the worker's error is not recorded"

# A bad spec under mpirun: one line from rank 0 alone, exit 2.
printf 'name = "x"\n[data]\nregions = ["virtual:1"]\n[axes]\nlayr = [1]\n' >"$tmp/bad.toml"
"${mpirun[@]}" -n 3 "$daenr" sweep run "$tmp/bad.toml" --db "$tmp/bad.sqlite" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 2 ] || fail "bad spec under mpirun exited $rc"
[ "$(grep -c 'daenr: error: .*bad.toml:5:1: axes.layr' "$tmp/err")" -eq 1 ] || fail "bad spec: $(cat "$tmp/err")"
# A worker's own setup fails where rank 0's succeeds (here each side reads spec.toml from its own
# working directory, as a node with another copy of the file would): the worker tells rank 0,
# which names it; every rank exits 2 instead of waiting for the others, and the run lock is
# released.
mkdir -p "$tmp/here" "$tmp/there"
cp "$spec" "$tmp/here/spec.toml"
printf 'name = "x"\n[data]\nregions = ["virtual:1"]\n[axes]\nseeds = [1, 1]\n' >"$tmp/there/spec.toml"
timeout 120 "${mpirun[@]}" -n 1 --wdir "$tmp/here" "$daenr" sweep run spec.toml --db "$tmp/w.sqlite" : \
  -n 2 --wdir "$tmp/there" "$daenr" sweep run spec.toml --db "$tmp/w.sqlite" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 2 ] || fail "a worker's failed setup exited $rc, expected 2: $(cat "$tmp/err")"
[ "$(grep -c 'daenr: error: rank 1: .*spec.toml:5:.*axes.seeds.*duplicate' "$tmp/err")" -eq 1 ] ||
  fail "a worker's failed setup: $(cat "$tmp/err")"
"$daenr" status --db "$tmp/w.sqlite" | grep -q "^run: none" || fail "the run lock was kept after a failed setup"
# Ranks that do not form groups of --ranks-per-job: a one-line flag error.
"${mpirun[@]}" -n 3 "$daenr" sweep run "$spec" --db "$tmp/g.sqlite" --ranks-per-job 3 >"$tmp/out" 2>"$tmp/err"
[ $? -eq 2 ] && grep -q -- "--ranks-per-job 3: the 2 worker ranks" "$tmp/err" || fail "groups: $(cat "$tmp/err")"

# Graceful stop. Jobs that train for several seconds, so that the signal
# lands mid-training. SIGUSR2 (Slurm's warning signal by default, as the batch
# script's mpirun receives it; mpirun forwards USR1, USR2 and ALRM to every
# rank, and sweep_cli.sh checks that the run stops on each): jobs in flight
# checkpoint and are marked preempted, exit code 4.
sed -e 's/^max_steps = .*/max_steps = 300/' -e 's/^patience = .*/patience = 300/' \
    -e 's/seeds = \[0, 1\]/seeds = [0]/' "$spec" >"$tmp/slow.toml"
db=$tmp/stop.sqlite
preempted_once() {  # signal
  "${mpirun[@]}" -n 3 "$daenr" sweep run "$tmp/${spec_name:-slow}.toml" --db "$db" >"$tmp/run" 2>&1 &
  local pid=$!
  # Wait until both workers are mid-job (two leases), then signal.
  for _ in $(seq 200); do
    [ "$(sqlite3 "$db" "SELECT count(*) FROM jobs WHERE state = 'leased'" 2>/dev/null)" = 2 ] && break
    sleep 0.1
  done
  sleep 1
  kill -"$1" "$pid"
  wait "$pid"
}
preempted_once USR2
rc=$?
[ "$rc" -eq 4 ] || fail "SIGUSR2 to mpirun exited $rc, expected 4: $(cat "$tmp/run")"
grep -q "stopped, rerun to resume" "$tmp/run" || fail "no stop message: $(cat "$tmp/run")"
[ "$(sqlite3 "$db" "SELECT count(*) FROM jobs WHERE state = 'preempted' AND attempts = 0")" = 2 ] ||
  fail "after SIGUSR2: $(sqlite3 "$db" "SELECT state, attempts FROM jobs")"
[ "$(ls "$db.checkpoints" | wc -l)" -eq 2 ] || fail "the preempted jobs left no checkpoints"
# SIGTERM: mpirun passes it on only odls_base_sigkill_timeout seconds later and
# kills what still runs a timeout after that (docs/parallel.md); its own exit
# status is then 1 whatever the ranks return, so the database is what the test
# checks: the jobs in flight stopped and were marked preempted. Jobs long enough
# to be in flight when the signal arrives, in a database of their own.
sed -e 's/^max_steps = .*/max_steps = 5000/' -e 's/^patience = .*/patience = 5000/' \
    -e 's/seeds = \[0, 1\]/seeds = [0]/' "$spec" >"$tmp/long.toml"
export OMPI_MCA_odls_base_sigkill_timeout=5
db_slow=$db db=$tmp/term.sqlite
spec_name=long preempted_once TERM
[ "$(sqlite3 "$db" "SELECT count(*) FROM jobs WHERE state = 'leased'")" = 0 ] ||
  fail "after SIGTERM a job is still leased: $(cat "$tmp/run")"
[ "$(sqlite3 "$db" "SELECT count(*) FROM jobs WHERE state = 'preempted'")" -ge 1 ] ||
  fail "after SIGTERM nothing is preempted: $(cat "$tmp/run")"
grep -q "stopped, rerun to resume" "$tmp/run" || fail "SIGTERM: no graceful stop: $(cat "$tmp/run")"
db=$db_slow
# The rerun completes the sweep with no job run twice to completion, and the
# preempted jobs' checkpoints are spent (that a resume ends where an
# uninterrupted run does is the Trainer tests' and sweep_kill.sh's to check).
# (--jobs-per-gpu only bounds the GPU memory of ranks on "cuda": on the CPU it changes nothing.)
out=$("${mpirun[@]}" -n 3 "$daenr" sweep run "$tmp/slow.toml" --db "$db" --jobs-per-gpu 2 2>&1) || fail "resume: $out"
check_once "$db" 12 300 || fail "after the resume: not every job done exactly once"
[ -z "$(ls "$db.checkpoints")" ] || fail "checkpoints left after the resume: $(ls "$db.checkpoints")"

# OpenMP's waiting under mpirun (worker/cpu_share.h), daenr choosing it: a worker of 2 threads
# that Open MPI binds to one core (2 ranks or fewer) waits passively and is warned of, once; with
# --bind-to none it has the machine's 2 CPUs, rank 0 training nothing, and keeps libgomp's default.
if [ "$(nproc)" -ge 2 ]; then
  printf '[data]\nregions = ["virtual:3"]\n[model]\nwidth = 4\n[train]\nmax_steps = 20\nthreads = 2\n' >"$tmp/t2.toml"
  env -u OMP_WAIT_POLICY mpirun -n 2 "$daenr" sweep run "$tmp/t2.toml" --db "$tmp/bound.sqlite" >"$tmp/out" 2>"$tmp/err" ||
    fail "2 ranks bound to cores: $(cat "$tmp/err")"
  [ "$(sqlite3 "$tmp/bound.sqlite" "SELECT json_extract(metrics, '$.openmp_wait') FROM results")" = passive ] ||
    fail "a worker bound to one core did not wait passively"
  [ "$(grep -c 'train.threads = 2, but this process may run on 1 CPU .* add --bind-to none$' "$tmp/err")" = 1 ] ||
    fail "no single warning for 2 threads bound to one core: $(cat "$tmp/err")"
  quota=$(cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null | head -n 1)
  if [ -z "$quota" ] || [[ $quota == max* ]] || [ "$quota" = -1 ]; then
    env -u OMP_WAIT_POLICY mpirun -n 2 --bind-to none "$daenr" sweep run "$tmp/t2.toml" --db "$tmp/free.sqlite" \
      >"$tmp/out" 2>"$tmp/err" || fail "2 ranks unbound: $(cat "$tmp/err")"
    [ "$(sqlite3 "$tmp/free.sqlite" "SELECT json_extract(metrics, '$.openmp_wait') FROM results")" = default ] ||
      fail "a worker with 2 CPUs beside rank 0 did not keep libgomp's default"
    ! grep -q warning "$tmp/err" || fail "a warning for a worker with CPUs enough: $(cat "$tmp/err")"
  else
    echo "mpi_sweep: a worker with CPUs of its own not checked: cgroup quota '$quota'"
  fi
else
  echo "mpi_sweep: OpenMP's waiting under mpirun not checked: $(nproc) CPU"
fi

if [ "$failures" -eq 0 ]; then echo "mpi_sweep: all checks passed"; else echo "mpi_sweep: $failures failed"; exit 1; fi
