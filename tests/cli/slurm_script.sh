#!/usr/bin/env bash
# The generated batch script's decisions, run without Slurm: fake `srun`,
# `scontrol` and run (a stand-in for `daenr sweep run` that exits 4 when
# signalled, like the real one) put first on PATH. Every way an allocation
# ends: complete, failed jobs, the time-limit warning (USR2 by default; USR1 and
# ALRM when chosen), and SIGTERM for
# a requeue by Slurm, a time limit and a cancel, which only Slurm's answer to
# `scontrol show job` tells apart. The real Slurm runs the same script in
# tests/cli/slurm_e2e.sh; this pins each branch, which a real cluster cannot
# be made to take on demand.
set -uo pipefail
daenr=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

mkdir "$tmp/bin"
# srun: drop its own options, run the command.
cat >"$tmp/bin/srun" <<'EOF'
#!/usr/bin/env bash
echo "srun $*" >>"$FAKE_LOG"
while [[ $1 == --* ]]; do shift; done
exec "$@"
EOF
# scontrol: `show job` answers what the case says; `requeue` is logged.
cat >"$tmp/bin/scontrol" <<'EOF'
#!/usr/bin/env bash
echo "scontrol $*" >>"$FAKE_LOG"
if [ "$1" = show ]; then printf '%s\n' "$FAKE_JOB_INFO"; fi
EOF
# The run: exits 4 on a grace signal or TERM (after the shell forwarded it),
# else $FAKE_RC after a while.
cat >"$tmp/bin/fake-daenr" <<'EOF'
#!/usr/bin/env bash
echo "run $*" >>"$FAKE_LOG"
for s in USR1 USR2 ALRM TERM; do trap "echo \"run got $s\" >>\"\$FAKE_LOG\"; exit 4" $s; done
for _ in $(seq 30); do sleep 0.1; done
exit "$FAKE_RC"
EOF
chmod +x "$tmp/bin/"*
printf 'default = "fake"\n[fake]\ndaenr = "%s"\n[alrm]\ndaenr = "%s"\ngrace_signal = "ALRM"\n' \
  "$tmp/bin/fake-daenr" "$tmp/bin/fake-daenr" >"$tmp/clusters.toml"
"$daenr" slurm submit "$here/../data/kill-sweep.toml" --db "$tmp/x.sqlite" --profiles "$tmp/clusters.toml" \
  --dry-run >"$tmp/job.sbatch" || fail "dry run failed"
[ ! -e "$tmp/x.sqlite" ] && [ ! -e "$tmp/x.sqlite.slurm" ] || fail "--dry-run wrote files"

# run_case NAME RC SIGNAL JOB_INFO: runs the script, sends SIGNAL (or none)
# once the run started, and leaves its output in $tmp/NAME.out, the log of
# fake commands in $tmp/NAME.log.
run_case() {
  local name=$1 pid
  export FAKE_RC=$2 FAKE_JOB_INFO=$4 FAKE_LOG=$tmp/$1.log
  : >"$FAKE_LOG"
  SLURM_JOB_ID=77 SLURM_RESTART_COUNT=1 SLURM_CPUS_PER_TASK=3 PATH="$tmp/bin:$PATH" bash "$tmp/job.sbatch" >"$tmp/$name.out" 2>&1 &
  pid=$!
  if [ "$3" != none ]; then
    for _ in $(seq 100); do grep -q '^run ' "$FAKE_LOG" && break; sleep 0.05; done
    kill -s "$3" "$pid"
  fi
  wait "$pid"
  echo $? >"$tmp/$name.rc"
}
requeued() { grep -qx "scontrol requeue 77" "$tmp/$1.log"; }

run_case complete 0 none ""
# srun gets the allocation's CPUs per task again: Slurm 22.05's srun no longer takes them over.
[ "$(cat "$tmp/complete.rc")" = 0 ] && ! requeued complete || fail "complete: $(cat "$tmp/complete.out")"
grep -q "srun --mpi=pmix --cpus-per-task=3 --kill-on-bad-exit=1 $tmp/bin/fake-daenr sweep run .*kill-sweep.toml --db $tmp/x.sqlite --max-attempts 2 --grace-signal USR2$" \
  "$tmp/complete.log" || fail "the run's command line: $(cat "$tmp/complete.log")"
grep -qx "#SBATCH --signal=B:USR2@120" "$tmp/job.sbatch" || fail "the default grace signal: $(grep signal "$tmp/job.sbatch")"
grep -q "^daenr: slurm job 77 (restart 1) on " "$tmp/complete.out" || fail "no start line: $(cat "$tmp/complete.out")"

run_case failed 5 none ""
[ "$(cat "$tmp/failed.rc")" = 5 ] && ! requeued failed || fail "failed jobs: $(cat "$tmp/failed.out")"

# The warning, with the default signal (USR2: NCCL 2.12 catches USR1) and then
# with each other one a flag or a profile can choose.
run_case warning 0 USR2 ""
requeued warning && grep -q "run got USR2" "$tmp/warning.log" || fail "USR2: $(cat "$tmp/warning.log")"
grep -q "stopped on the time-limit warning (USR2) with jobs left; requeueing slurm job 77" "$tmp/warning.out" ||
  fail "USR2: $(cat "$tmp/warning.out")"
"$daenr" slurm submit "$here/../data/kill-sweep.toml" --db "$tmp/x.sqlite" --profiles "$tmp/clusters.toml" \
  --grace-signal USR1 --dry-run >"$tmp/job.sbatch" || fail "--grace-signal USR1"
run_case warning1 0 USR1 ""
requeued warning1 && grep -q "run got USR1" "$tmp/warning1.log" && grep -q -- "--grace-signal USR1$" "$tmp/warning1.log" ||
  fail "USR1: $(cat "$tmp/warning1.log")"
grep -q "stopped on the time-limit warning (USR1) with jobs left; requeueing slurm job 77" "$tmp/warning1.out" ||
  fail "USR1: $(cat "$tmp/warning1.out")"
"$daenr" slurm submit "$here/../data/kill-sweep.toml" --db "$tmp/x.sqlite" --profiles "$tmp/clusters.toml" \
  --cluster alrm --dry-run >"$tmp/job.sbatch" || fail "grace_signal = \"ALRM\""
grep -qx "#SBATCH --signal=B:ALRM@120" "$tmp/job.sbatch" || fail "ALRM: $(grep signal "$tmp/job.sbatch")"
run_case warning2 0 ALRM ""
requeued warning2 && grep -q "run got ALRM" "$tmp/warning2.log" && grep -q -- "--grace-signal ALRM$" "$tmp/warning2.log" ||
  fail "ALRM: $(cat "$tmp/warning2.log")"
grep -q "stopped on the time-limit warning (ALRM) with jobs left; requeueing slurm job 77" "$tmp/warning2.out" ||
  fail "ALRM: $(cat "$tmp/warning2.out")"
# The spec's grace_signal key: over the profile's (USR2 by default here), under the flag.
{ echo 'grace_signal = "sigalrm"'; cat "$here/../data/kill-sweep.toml"; } >"$tmp/alrm-spec.toml"
"$daenr" slurm submit "$tmp/alrm-spec.toml" --db "$tmp/x.sqlite" --profiles "$tmp/clusters.toml" \
  --dry-run >"$tmp/job.sbatch" || fail "the spec's grace_signal"
grep -qx "#SBATCH --signal=B:ALRM@120" "$tmp/job.sbatch" || fail "the spec's ALRM: $(grep signal "$tmp/job.sbatch")"
run_case warning3 0 ALRM ""
requeued warning3 && grep -q "run got ALRM" "$tmp/warning3.log" && grep -q -- "--grace-signal ALRM$" "$tmp/warning3.log" ||
  fail "the spec's ALRM: $(cat "$tmp/warning3.log")"
"$daenr" slurm submit "$tmp/alrm-spec.toml" --db "$tmp/x.sqlite" --profiles "$tmp/clusters.toml" \
  --grace-signal USR1 --dry-run | grep -qx "#SBATCH --signal=B:USR1@120" || fail "--grace-signal over the spec's"
"$daenr" slurm submit "$here/../data/kill-sweep.toml" --db "$tmp/x.sqlite" --profiles "$tmp/clusters.toml" \
  --dry-run >"$tmp/job.sbatch" || fail "dry run failed"

run_case timelimit 0 TERM "JobId=77 JobName=x JobState=COMPLETING Reason=TimeLimit Dependency=(null) Requeue=1 Restarts=1"
requeued timelimit && grep -q "run got TERM" "$tmp/timelimit.log" || fail "time limit: $(cat "$tmp/timelimit.log")"

run_case requeue 0 TERM "JobId=77 JobName=x JobState=COMPLETING Reason=None Dependency=(null) Requeue=1 Restarts=2"
! requeued requeue && grep -q "Slurm requeues slurm job 77 itself" "$tmp/requeue.out" ||
  fail "requeue by Slurm: $(cat "$tmp/requeue.out")"

run_case cancel 0 TERM "JobId=77 JobName=x JobState=COMPLETING Reason=None Dependency=(null) Requeue=1 Restarts=1"
! requeued cancel && grep -q "cancelled, so not requeued" "$tmp/cancel.out" || fail "cancel: $(cat "$tmp/cancel.out")"
[ "$(cat "$tmp/cancel.rc")" = 4 ] || fail "cancel: exit $(cat "$tmp/cancel.rc")"

run_case unknown 0 TERM ""
! requeued unknown && grep -q "Slurm did not say why, so not requeued" "$tmp/unknown.out" ||
  fail "no answer from scontrol: $(cat "$tmp/unknown.out")"

# The launcher can be mpirun instead of srun. mpirun exits 1 after a SIGTERM
# whatever its ranks returned: with a signal received, that is a stop.
cat >"$tmp/bin/mpirun" <<'EOF'
#!/usr/bin/env bash
echo "mpirun $* sigkill_timeout=$OMPI_MCA_odls_base_sigkill_timeout" >>"$FAKE_LOG"
echo "run (by mpirun)" >>"$FAKE_LOG"
trap 'echo "run got TERM" >>"$FAKE_LOG"; exit 1' TERM
for _ in $(seq 30); do sleep 0.1; done
EOF
chmod +x "$tmp/bin/mpirun"
"$daenr" slurm submit "$here/../data/kill-sweep.toml" --db "$tmp/x.sqlite" --profiles "$tmp/clusters.toml" \
  --launcher mpirun --ntasks-per-node 3 --dry-run >"$tmp/job.sbatch" || fail "--launcher mpirun"
run_case mpirun 0 TERM "JobId=77 JobName=x JobState=COMPLETING Reason=TimeLimit Dependency=(null) Requeue=1 Restarts=1"
grep -q "sweep run .* sigkill_timeout=15" "$tmp/mpirun.log" && requeued mpirun ||
  fail "mpirun: $(cat "$tmp/mpirun.log") $(cat "$tmp/mpirun.out")"

# Submit and status with fake sbatch and squeue: the job id recorded, the
# script kept, one squeue call for the status, a second submit refused.
cat >"$tmp/bin/sbatch" <<'EOF'
#!/usr/bin/env bash
echo "sbatch $*" >>"$FAKE_LOG"
echo "4242;cluster1"
EOF
cat >"$tmp/bin/squeue" <<'EOF'
#!/usr/bin/env bash
echo "squeue $*" >>"$FAKE_LOG"
echo "4242|RUNNING|1:23|10:00|node1"
EOF
chmod +x "$tmp/bin/sbatch" "$tmp/bin/squeue"
export FAKE_LOG=$tmp/submit.log
db=$tmp/s.sqlite
out=$(PATH="$tmp/bin:$PATH" "$daenr" slurm submit "$here/../data/kill-sweep.toml" --db "$db" --time 10 2>&1)
[[ $out =~ ^submitted\ slurm\ job\ 4242\ \($tmp/s.sqlite.slurm/daenr-kill-test-.*\.sbatch\)\;\ follow\ it\ with:\ daenr\ slurm\ status\ --db\ $db$ ]] ||
  fail "submit: $out"
script=$(sqlite3 "$db" "SELECT script_path FROM slurm_jobs WHERE slurm_job_id = '4242'")
[ -f "$script" ] && grep -q "^#SBATCH --time=10$" "$script" || fail "the recorded script: '$script'"
grep -qx "sbatch --parsable $script" "$FAKE_LOG" || fail "sbatch call: $(cat "$FAKE_LOG")"
out=$(PATH="$tmp/bin:$PATH" "$daenr" slurm status --db "$db")
grep -q "^$db: 24 jobs: 0 done, 24 pending" <<<"$out" &&
  grep -qx "slurm job 4242: RUNNING (elapsed 1:23, limit 10:00, node1); no run yet; submitted [0-9]* s ago" <<<"$out" ||
  fail "status: $out"
[ "$(grep -c '^squeue' "$FAKE_LOG")" = 1 ] && grep -q "^squeue .*--jobs=4242" "$FAKE_LOG" ||
  fail "status must ask squeue once: $(cat "$FAKE_LOG")"
out=$(PATH="$tmp/bin:$PATH" "$daenr" slurm submit "$here/../data/kill-sweep.toml" --db "$db" 2>&1)
[ $? -eq 2 ] && [ "$out" = "daenr: error: $db: slurm job 4242 (RUNNING) already drives this database; wait for it or scancel 4242" ] ||
  fail "a second submit: $out"
[ "$(grep -c '^sbatch' "$FAKE_LOG")" = 1 ] || fail "a refused submit called sbatch"
# Where squeue cannot run, the progress is still printed.
mkdir "$tmp/nosqueue"
out=$(PATH=$tmp/nosqueue "$daenr" slurm status --db "$db")
[ $? -eq 0 ] && grep -q "^slurm job 4242: state unknown (squeue: cannot run it" <<<"$out" || fail "status without squeue: $out"

# Bad input: one line naming what is wrong, exit 2, nothing written.
bad() {  # expected-message args...
  local expected=$1 out rc
  shift
  out=$("$daenr" slurm submit "$@" 2>&1 >/dev/null)
  rc=$?
  [ "$rc" -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -qF -- "$expected" <<<"$out" ||
    fail "slurm submit $*: exit $rc, '$out' (expected '$expected')"
}
spec=$here/../data/kill-sweep.toml
bad "--time '90m': not a Slurm time limit" "$spec" --db "$tmp/x.sqlite" --time 90m
bad "--grace 0: expected 1 to 65535 seconds" "$spec" --db "$tmp/x.sqlite" --grace 0
{ echo 'grace_signal = "KILL"'; cat "$spec"; } >"$tmp/kill-spec.toml"
bad "kill-spec.toml:1:16: grace_signal: 'KILL': cannot be caught, so the run could not checkpoint" \
  "$tmp/kill-spec.toml" --db "$tmp/x.sqlite"
bad "--grace 60: must be shorter than the time limit --time 1 (60 s)" "$spec" --db "$tmp/x.sqlite" --time 1 --grace 60
bad "--ranks-per-job 2: needs 1 + a multiple of 2 tasks; the allocation has 2" "$spec" --db "$tmp/x.sqlite" \
  --ntasks-per-node 2 --ranks-per-job 2
bad "--db $tmp/none/x.sqlite: folder $tmp/none does not exist" "$spec" --db "$tmp/none/x.sqlite"
bad "--grace-signal 'KILL': cannot be caught, so the run could not checkpoint; use USR2 (the default), USR1 or ALRM" \
  "$spec" --db "$tmp/x.sqlite" --grace-signal KILL
bad "--grace-signal 'TERM': not a grace signal daenr handles; use USR2 (the default), USR1 or ALRM" \
  "$spec" --db "$tmp/x.sqlite" --grace-signal TERM
bad "--jobs-per-gpu" "$spec" --db "$tmp/x.sqlite" --jobs-per-gpu 0
bad "--jobs-per-gpu" "$spec" --db "$tmp/x.sqlite" --jobs-per-gpu -1
bad "--jobs-per-gpu" "$spec" --db "$tmp/x.sqlite" --jobs-per-gpu 1.5
bad "--jobs-per-gpu 2: 6 tasks per node are more than 2 GPUs x 2 jobs per GPU + 1 (rank 0) = 5" \
  "$spec" --db "$tmp/x.sqlite" --gpus-per-node 2 --jobs-per-gpu 2 --ntasks-per-node 6
printf '[g]\njobs_per_gpu = 0\n' >"$tmp/g.toml"
bad "$tmp/g.toml:2:16: g.jobs_per_gpu: expected an integer >= 1" "$spec" --db "$tmp/x.sqlite" --profiles "$tmp/g.toml" --cluster g
bad "--cluster big: no profile file $tmp/nope.toml" "$spec" --db "$tmp/x.sqlite" --profiles "$tmp/nope.toml" --cluster big
bad "$tmp/clusters.toml: no cluster profile [big] (profiles: alrm, fake)" "$spec" --db "$tmp/x.sqlite" \
  --profiles "$tmp/clusters.toml" --cluster big
printf 'name = "x"\n[data]\nregions = ["virtual:1"]\n[axes]\nlayr = [1]\n' >"$tmp/bad.toml"
bad "bad.toml:5:1: axes.layr" "$tmp/bad.toml" --db "$tmp/x.sqlite"
# No Slurm on PATH: one line that says so, and no batch script left behind.
mkdir "$tmp/empty"
out=$(PATH=$tmp/empty "$daenr" slurm submit "$spec" --db "$tmp/x.sqlite" --profiles "$tmp/clusters.toml" 2>&1)
[ $? -eq 2 ] && [ "$out" = "daenr: error: sbatch: cannot run it (No such file or directory); is Slurm installed and on PATH?" ] ||
  fail "no sbatch: $out"
[ -z "$(ls "$tmp/x.sqlite.slurm")" ] || fail "a failed submit left $(ls "$tmp/x.sqlite.slurm")"
[ ! -e "$tmp/none" ] || fail "a bad submit created files"

# Several jobs per GPU: rank 0 and GPUs x jobs_per_gpu workers per node, the run told.
out=$("$daenr" slurm submit "$spec" --db "$tmp/x.sqlite" --profiles "$tmp/clusters.toml" --gpus-per-node 2 \
  --jobs-per-gpu 3 --dry-run) || fail "--jobs-per-gpu 3: $out"
grep -qx "#SBATCH --ntasks-per-node=7" <<<"$out" && grep -qx "#SBATCH --gpus-per-node=2" <<<"$out" &&
  grep -q "sweep run .* --jobs-per-gpu 3 &$" <<<"$out" || fail "--jobs-per-gpu 3: $out"

if [ "$failures" -eq 0 ]; then echo "slurm_script: all checks passed"; else echo "slurm_script: $failures failed"; exit 1; fi
