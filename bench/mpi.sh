#!/usr/bin/env bash
# The MPI orchestrator's overhead and scaling, side by side in one run:
#  1. no-op jobs through MPI + storage (4 ranks: rank 0 and 3 workers) against
#     the storage layer alone leasing and recording the same number of jobs in
#     one process (bench/storage.cpp): the rate and their ratio;
#  2. a sweep of real tiny jobs (tests/data/kill-sweep.toml, 24 jobs) on 1
#     worker (mpirun -n 2) against 2 workers (-n 3): the speedup of the
#     workers' loop.
# Usage: bench/mpi.sh [rounds] [no-op jobs]   (after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
jobs=${2:-20000}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
mpirun=(mpirun --oversubscribe --bind-to none)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }

echo "no-op jobs: MPI (4 ranks) vs storage alone, $jobs jobs, $rounds alternating rounds"
for r in $(seq "$rounds"); do
  mpi=$("${mpirun[@]}" -n 4 build/bench/daenr_bench_mpi_noop "$jobs" | field jobs_per_s)
  alone=$(build/bench/daenr_bench_storage "$jobs" | field jobs_per_s)
  echo "  round $r: MPI $mpi jobs/s, storage alone $alone jobs/s, ratio $(python3 -c "print(f'{$mpi/$alone:.2f}')")"
done

echo "tiny jobs (kill-sweep.toml, 24 jobs): 1 worker vs 2 workers, loop seconds"
for r in $(seq "$rounds"); do
  declare -A loop=()
  for n in 2 3; do
    rm -rf "$tmp"/db*
    "${mpirun[@]}" -n $n build/app/daenr sweep run tests/data/kill-sweep.toml --db "$tmp/db.sqlite" >"$tmp/out"
    echo "    $((n - 1)) worker(s): $(grep '^rank 0' "$tmp/out")"
    # The loop time: first lease to last result, from the database itself.
    loop[$n]=$(sqlite3 "$tmp/db.sqlite" "SELECT max(finished_at) - min(started_at) FROM jobs")
  done
  echo "  round $r: 1 worker ${loop[2]} s, 2 workers ${loop[3]} s, speedup $(python3 -c "print(f'{${loop[2]}/${loop[3]}:.2f}')")"
done
