#!/usr/bin/env bash
# `daenr slurm` against a real Slurm: a one-node cluster started on this
# machine from Debian's slurm-wlm and munge (slurm/local-cluster.sh). As a
# user meets it:
#   A. submit a sweep (2 ranks through srun --mpi=pmix), wait: every job done once;
#      a second submit while it runs is refused, naming the Slurm job;
#   B. the grace signal (scancel --signal=USR2 --batch: the default, which NCCL
#      leaves alone; DAENR_E2E_GRACE_SIGNAL=USR1 or ALRM runs B with that one) and then a requeue
#      (scontrol requeue) mid-sweep: jobs checkpoint, the allocation comes back
#      twice and resumes them mid-training; a second allocation started by hand
#      on the same database exits at once naming the holder;
#   C. an allocation with a 1-minute limit that hits it and comes back until done
#      (grace signal USR1, as before it could be chosen);
#   D. scancel: the run stops gracefully and is not requeued;
#   E. the mpirun launcher, requeued mid-sweep.
# If Slurm cannot start here the test fails with the reason; it never passes
# without having run.
set -uo pipefail
daenr=$1
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
cluster=$tmp/cluster
cleanup() {
  "$repo/slurm/local-cluster.sh" stop "$cluster" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

if ! started=$("$repo/slurm/local-cluster.sh" start "$cluster" 2>"$tmp/start.err"); then
  echo "FAIL: Slurm could not start on this machine: $(head -n 1 "$tmp/start.err")"
  cat "$tmp/start.err"
  exit 1
fi
eval "$(tail -n 1 <<<"$started")"
# sbatch passes this environment on to the batch scripts: root in CI, one
# thread per rank on a 2-core machine.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
# No profile file of the person running the tests.
export DAENR_CLUSTERS=$tmp/no-clusters.toml

submit() {  # db spec [flags...]: prints the Slurm job id
  local db=$1 spec=$2 out
  shift 2
  out=$("$daenr" slurm submit "$spec" --db "$db" "$@" 2>&1) || { fail "submit $spec: $out"; return 1; }
  grep -q "^submitted slurm job [0-9]* (" <<<"$out" || fail "submit said: $out"
  sed -n 's/^submitted slurm job \([0-9]*\) .*/\1/p' <<<"$out"
}
# wait_gone ID SECONDS: until Slurm no longer runs or queues the job.
wait_gone() {
  local state
  for _ in $(seq $((2 * $2))); do
    state=$(squeue -h -j "$1" -o %T 2>/dev/null)
    [ -z "$state" ] || [[ $state =~ ^(COMPLETED|CANCELLED|FAILED|TIMEOUT)$ ]] && return 0
    sleep 0.5
  done
  fail "slurm job $1 still $state after $2 s"
  return 1
}
# wait_sql DB SQL VALUE SECONDS: until the query answers VALUE.
wait_sql() {
  for _ in $(seq $((4 * $4))); do
    [ "$(sqlite3 "$1" "$2" 2>/dev/null)" = "$3" ] && return 0
    sleep 0.25
  done
  fail "$(basename "$1"): '$2' is not '$3' after $4 s (it is '$(sqlite3 "$1" "$2" 2>&1)')"
  return 1
}
log_of() { cat "$1".slurm/*-"$2".out 2>/dev/null; }
# Every job done exactly once (tests/support/done_once.py).
check_once() { python3 "$here/../support/done_once.py" "$@"; }
runs_of() {  # db: "restart:outcome" per run, oldest first
  sqlite3 "$1" "SELECT slurm_restart || ':' || coalesce(outcome, '-') FROM runs ORDER BY id" | paste -sd' '
}
# wait_mid_job DB SECONDS: until the job in flight has written a checkpoint, so that a stop now
# finds it mid-training. A job just leased may still be building its data and model, and a stop
# then resumes it from step 0: a fixed sleep after the lease made the count of mid-job resumes
# depend on the machine's load (CI once saw 1 of 2 in B).
wait_mid_job() {
  local id
  for _ in $(seq $((4 * $2))); do
    id=$(sqlite3 "$1" "SELECT id FROM jobs WHERE state = 'leased'" 2>/dev/null | head -n 1)
    [ -n "$id" ] && [ -e "$1.checkpoints/$id.ckpt" ] && return 0
    sleep 0.25
  done
  fail "$(basename "$1"): no job in flight wrote a checkpoint in $2 s"
  return 1
}
resumed() {  # db: how many results resumed from a checkpoint mid-training
  sqlite3 "$1" "SELECT count(*) FROM results WHERE json_extract(metrics, '$.resumed_from_step') > 0"
}
slow_spec() {  # steps layers: a sweep whose jobs train long enough to be stopped mid-way
  sed -e "s/^max_steps = .*/max_steps = $1/" -e "s/^patience = .*/patience = $1/" \
      -e 's/seeds = \[0, 1\]/seeds = [0]/' -e "s/^layer = .*/layer = $2/" "$here/../data/kill-sweep.toml"
}

# B's grace signal: the default unless the environment names another.
grace=${DAENR_E2E_GRACE_SIGNAL:-USR2}
grace_flags=()
[ "$grace" = USR2 ] || grace_flags=(--grace-signal "$grace")

echo "A: starts at ${SECONDS} s"
# A. Submit and wait. 24 tiny jobs, rank 0 and one worker through srun --mpi=pmix.
db=$tmp/a.sqlite
id=$(submit "$db" "$here/../data/kill-sweep.toml" --ntasks-per-node 2 --time 10)
if [ -n "$id" ]; then
  wait_sql "$db" "SELECT count(*) FROM runs" 1 60
  out=$("$daenr" slurm submit "$here/../data/kill-sweep.toml" --db "$db" 2>&1)
  [ $? -eq 2 ] && grep -qE "slurm job $id \((PENDING|RUNNING|COMPLETING)\) already drives this database" <<<"$out" ||
    grep -q "another run is using this database: .* (slurm job $id)" <<<"$out" ||
    fail "a second submit while $id runs: $out"
  "$daenr" slurm status --db "$db" | grep -q "^slurm job $id: RUNNING (elapsed " ||
    fail "status while running: $("$daenr" slurm status --db "$db")"
  wait_gone "$id" 180
  check_once "$db" 24 || fail "A: not every job done exactly once"
  [ "$(runs_of "$db")" = "0:complete" ] || fail "A: runs $(runs_of "$db")"
  log_of "$db" "$id" | grep -q "^daenr: the sweep is complete" || fail "A: log: $(log_of "$db" "$id")"
  log_of "$db" "$id" | grep -q "^rank 0 (orchestrator): " || fail "A: not an MPI run: $(log_of "$db" "$id")"
  [ "$(sqlite3 "$db" "SELECT count(*) FROM slurm_jobs WHERE slurm_job_id = '$id'")" = 1 ] ||
    fail "A: the Slurm job id is not recorded"
  grep -qx "#SBATCH --signal=B:USR2@120" "$(sqlite3 "$db" "SELECT script_path FROM slurm_jobs")" ||
    fail "A: the default grace signal is not USR2"
  "$daenr" slurm status --db "$db" | grep -q "^slurm job $id: .*requeued 0 times, last run complete" ||
    fail "status after: $("$daenr" slurm status --db "$db")"
  # Nothing left to run: nothing is queued.
  out=$("$daenr" slurm submit "$here/../data/kill-sweep.toml" --db "$db" 2>&1)
  [ "$out" = "nothing to submit: all 24 jobs of the sweep are done in $db" ] || fail "A: submit when done: $out"
  [ "$(sqlite3 "$db" "SELECT count(*) FROM slurm_jobs")" = 1 ] || fail "A: a complete sweep was submitted again"
fi

echo "B: starts at ${SECONDS} s"
# B. The grace signal, then a requeue, each mid-job: 9 jobs of ~5 s, one task.
slow_spec 300 "[1, 2, 3]" >"$tmp/b.toml"
db=$tmp/b.sqlite
id=$(submit "$db" "$tmp/b.toml" --time 10 "${grace_flags[@]}")
if [ -n "$id" ]; then
  wait_sql "$db" "SELECT count(*) > 0 FROM jobs WHERE state = 'done'" 1 120
  # The same script submitted again by hand: the second allocation exits at once.
  script=$(sqlite3 "$db" "SELECT script_path FROM slurm_jobs WHERE slurm_job_id = '$id'")
  second=$(sbatch --parsable "$script")
  wait_gone "$second" 60
  log_of "$db" "$second" | grep -q "daenr: error: .*another run is using this database: .* (slurm job $id)" ||
    fail "B: a second allocation: $(log_of "$db" "$second")"
  log_of "$db" "$second" | grep -q "the run exited with code 2; not requeued" || fail "B: $(log_of "$db" "$second")"
  wait_mid_job "$db" 30
  scancel --signal="$grace" --batch "$id"
  wait_sql "$db" "SELECT count(*) FROM runs WHERE slurm_restart = 1" 1 90
  [ "$(sqlite3 "$db" "SELECT outcome FROM runs WHERE slurm_restart = 0 AND slurm_job_id = '$id'")" = stopped ] ||
    fail "B: the first run did not stop gracefully: $(runs_of "$db")"
  # Then a requeue from outside, once the second incarnation is mid-job.
  done_before=$(sqlite3 "$db" "SELECT count(*) FROM jobs WHERE state = 'done'")
  wait_sql "$db" "SELECT count(*) > $done_before FROM jobs WHERE state = 'done'" 1 60
  wait_mid_job "$db" 30
  scontrol requeue "$id"
  wait_sql "$db" "SELECT count(*) FROM runs WHERE slurm_restart = 2" 1 90
  wait_gone "$id" 240
  check_once "$db" 9 || fail "B: not every job done exactly once"
  [ "$(runs_of "$db")" = "0:stopped 1:stopped 2:complete" ] || fail "B: runs $(runs_of "$db")"
  [ "$(resumed "$db")" -ge 2 ] || fail "B: $(resumed "$db") jobs resumed from a checkpoint, expected 2"
  log=$(log_of "$db" "$id")
  grep -q "stopped on the time-limit warning ($grace) with jobs left; requeueing slurm job $id" <<<"$log" ||
    fail "B: $grace: $log"
  grep -q "stopped on SIGTERM; Slurm requeues slurm job $id itself" <<<"$log" || fail "B: requeue: $log"
  [ "$(grep -c "^daenr: slurm job $id (restart [012]) on " <<<"$log")" = 3 ] || fail "B: three runs in one log: $log"
fi

echo "C: starts at ${SECONDS} s"
# C. A one-minute time limit that the sweep (~90 s of training) outlasts.
slow_spec 900 "[1, 2]" >"$tmp/c.toml"
db=$tmp/c.sqlite
id=$(submit "$db" "$tmp/c.toml" --time 1 --grace 20 --grace-signal USR1)
if [ -n "$id" ]; then
  wait_sql "$db" "SELECT count(*) > 0 FROM runs WHERE slurm_restart > 0" 1 150
  wait_gone "$id" 300
  check_once "$db" 6 || fail "C: not every job done exactly once"
  runs=$(runs_of "$db")
  [[ $runs =~ ^0:stopped\ (.*:stopped\ )*[1-9]:complete$ ]] || fail "C: runs $runs"
  [ "$(resumed "$db")" -ge 1 ] || fail "C: no job resumed from a checkpoint"
  grep -qx "#SBATCH --signal=B:USR1@20" "$(sqlite3 "$db" "SELECT script_path FROM slurm_jobs")" ||
    fail "C: --grace-signal USR1 is not in the script"
  log_of "$db" "$id" | grep -qE "stopped on (the time-limit warning \(USR1\)|SIGTERM \(TimeLimit\)) with jobs left" ||
    fail "C: $(log_of "$db" "$id")"
fi

echo "D: starts at ${SECONDS} s"
# D. scancel: a graceful stop, the job in flight preempted, and no requeue.
db=$tmp/d.sqlite
id=$(submit "$db" "$tmp/b.toml" --time 10)
if [ -n "$id" ]; then
  wait_mid_job "$db" 60
  scancel "$id"
  wait_gone "$id" 60
  wait_sql "$db" "SELECT outcome FROM runs" stopped 10
  [ "$(sqlite3 "$db" "SELECT count(*) FROM jobs WHERE state = 'preempted'")" = 1 ] || fail "D: nothing preempted"
  log_of "$db" "$id" | grep -q "stopped on SIGTERM; cancelled, so not requeued" || fail "D: $(log_of "$db" "$id")"
  # Past the requeue delay (cred_expire + 1 = 11 s) it has not come back.
  sleep 13
  [ -z "$(squeue -h -j "$id" -t PENDING,RUNNING -o %T 2>/dev/null)" ] || fail "D: a cancelled job was requeued"
  [ "$(sqlite3 "$db" "SELECT count(*) FROM runs")" = 1 ] || fail "D: runs $(runs_of "$db")"
fi

echo "E: starts at ${SECONDS} s"
# E. The mpirun launcher (rank 0 and one worker), requeued mid-sweep: mpirun
# is given time to let the ranks checkpoint, and the allocation comes back.
slow_spec 300 "[1, 2]" >"$tmp/e.toml"
db=$tmp/e.sqlite
id=$(submit "$db" "$tmp/e.toml" --launcher mpirun --ntasks-per-node 2 --time 10)
if [ -n "$id" ]; then
  wait_sql "$db" "SELECT count(*) > 0 FROM jobs WHERE state = 'done'" 1 120
  wait_mid_job "$db" 30
  scontrol requeue "$id"
  wait_sql "$db" "SELECT count(*) FROM runs WHERE slurm_restart = 1" 1 90
  wait_gone "$id" 240
  check_once "$db" 6 || fail "E: not every job done exactly once"
  [ "$(runs_of "$db")" = "0:stopped 1:complete" ] || fail "E: runs $(runs_of "$db")"
  [ "$(resumed "$db")" -ge 1 ] || fail "E: no job resumed from a checkpoint"
  log_of "$db" "$id" | grep -q "^rank 0 (orchestrator): " || fail "E: not an MPI run: $(log_of "$db" "$id")"
fi

if [ "$failures" -eq 0 ]; then echo "slurm_e2e: all checks passed"; else echo "slurm_e2e: $failures failed"; exit 1; fi
