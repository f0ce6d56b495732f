#!/usr/bin/env bash
# A whole sweep, side by side: the README's quick sweep (examples/quick-sweep.toml, its 4 training jobs) run
# by daenr as a user runs it on 2 cores (mpirun, rank 0 + 2 single-threaded workers, into a
# fresh database, checkpoints included) against the same 4 jobs in 2 parallel single-threaded
# PyTorch processes of 2 jobs each (bench/sweep_reference.py), each job with the schedule its
# daenr twin ran: the same steps (read from daenr's database, so early stopping cancels out),
# validation cadence, best-parameter restore and test evaluation. Rounds alternate the two.
#   bench/sweep_vs_pytorch.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
daenr=${DAENR_BUILD_DIR:-build}/app/daenr
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
# Open MPI refuses root unless told (containers and CI run as root).
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
# Its 4 training jobs: the [decode] and [mei] jobs that follow them have no PyTorch twin here
# (bench/talk_jobs.sh times them against their parents).
awk '/^\[/ { skip = ($0 ~ /^\[(decode|mei)\]/) } !skip' examples/quick-sweep.toml |
  sed 's/^threads = .*/threads = 1/' >"$tmp/quick.toml"
"$daenr" data synth --out "$tmp/data" >/dev/null
grep -m1 'model name' /proc/cpuinfo
now() { date +%s.%N; }
for ((r = 0; r < rounds; r++)); do
  db="$tmp/round$r.sqlite"
  t0=$(now)
  mpirun --oversubscribe --bind-to none -n 3 "$daenr" sweep run "$tmp/quick.toml" --db "$db" \
    >"$tmp/sweep.log" 2>&1 || { tail -20 "$tmp/sweep.log" >&2; exit 1; }
  t1=$(now)
  # Each job's resolved configuration and the steps it took, split over two processes.
  sqlite3 "$db" "SELECT json_object('autoencoder', json_extract(j.config, '$.model.autoencoder'),
      'readout', json_extract(j.config, '$.model.readout'), 'layer', json_extract(j.config, '$.model.layer'),
      'width', json_extract(j.config, '$.model.width'), 'alpha', json_extract(j.config, '$.loss.alpha'),
      'beta', json_extract(j.config, '$.loss.beta'), 'seed', json_extract(j.config, '$.seed'),
      'batch', json_extract(j.config, '$.train.batch_size'), 'lr', json_extract(j.config, '$.train.learning_rate'),
      'validate_every', json_extract(j.config, '$.train.validate_every'),
      'val_fraction', json_extract(j.config, '$.val_fraction'), 'steps', r.steps)
    FROM jobs j JOIN results r ON r.job_id = j.id ORDER BY j.id" >"$tmp/jobs.txt"
  [ "$(wc -l <"$tmp/jobs.txt")" = 4 ] || { echo "sweep_vs_pytorch: daenr finished $(wc -l <"$tmp/jobs.txt") of 4 jobs" >&2; exit 1; }
  /usr/bin/python3 -c '
import json, sys
jobs = [json.loads(l) for l in open(sys.argv[1])]
for k, name in enumerate(sys.argv[2:]):
    json.dump(jobs[k::2], open(name, "w"))' "$tmp/jobs.txt" "$tmp/a.json" "$tmp/b.json"
  t2=$(now)
  (cd bench && /usr/bin/python3 sweep_reference.py --region "$tmp/data/region3" --jobs "$tmp/a.json" >/dev/null) &
  (cd bench && /usr/bin/python3 sweep_reference.py --region "$tmp/data/region3" --jobs "$tmp/b.json" >/dev/null) &
  wait
  t3=$(now)
  /usr/bin/python3 -c '
import json, sys
r, t0, t1, t2, t3 = int(sys.argv[2]), *map(float, sys.argv[3:])
steps = ", ".join(str(json.loads(l)["steps"]) for l in open(sys.argv[1]))
print(f"round {r + 1}: daenr {t1 - t0:.1f} s, PyTorch {t3 - t2:.1f} s, "
      f"PyTorch / daenr {(t3 - t2) / (t1 - t0):.2f}x (steps per job: {steps})")' \
    "$tmp/jobs.txt" "$r" "$t0" "$t1" "$t2" "$t3"
done
