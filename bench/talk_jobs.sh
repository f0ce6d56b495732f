#!/usr/bin/env bash
# Wall time of the talk's jobs against their parent training jobs: runs a sweep spec (default
# the README's quick sweep, which trains 4 models and then decodes 4 and synthesises for 2) into
# a fresh database and prints each decode / mei job's wall time beside its parent's, with the
# ratio and the CPU model.
#   bench/talk_jobs.sh [spec] [db]
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:-examples/quick-sweep.toml}
db=${2:-$(mktemp -d)/talk-bench.sqlite}
bin=${DAENR_BUILD_DIR:-build}/app/daenr
# OpenMP's waiting as a user gets it: daenr's choice (worker/cpu_share.h) unless the caller sets it.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; spec $spec; db $db"
start=$(date +%s.%N)
"$bin" sweep run "$spec" --db "$db" 2>/dev/null >/dev/null
echo "sweep: $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s; OpenMP waiting: $(sqlite3 "file:$db?mode=ro" \
  "SELECT group_concat(DISTINCT json_extract(metrics, '$.openmp_wait')) FROM results")"
# The jobs table keeps when each job started and finished (docs/schema.md).
sqlite3 -separator ' ' "file:$db?mode=ro" "
  SELECT c.kind, coalesce(json_extract(c.labels, '$.objective'), '-'), substr(c.id, 1, 8), substr(p.id, 1, 8),
         printf('%.1f', c.finished_at - c.started_at), printf('%.1f', p.finished_at - p.started_at),
         printf('%.3f', (c.finished_at - c.started_at) / (p.finished_at - p.started_at))
  FROM jobs c JOIN jobs p ON p.id = c.depends_on
  WHERE c.kind != 'train' AND c.state = 'done' AND p.state = 'done' ORDER BY c.kind, p.id" |
  awk 'BEGIN { printf "%-7s %-8s %-9s %-9s %8s %9s %7s\n", "kind", "objective", "job", "parent", "job s", "parent s", "ratio" }
       { printf "%-7s %-8s %-9s %-9s %8s %9s %7s\n", $1, $2, $3, $4, $5, $6, $7 }'
