#!/usr/bin/env bash
# Side-by-side training throughput: daenr's trainer vs the same model in
# PyTorch eager, alternating runs so that machine noise hits both alike.
# Prints each run and the median ratio per batch size.
#   bench/train_throughput.sh [rounds] [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
threads=${2:-1}
bin=${DAENR_BUILD_DIR:-build}/bench/daenr_bench_train
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads OMP_WAIT_POLICY=passive
out=$(mktemp)
for batch in 256 32; do
  steps=$(( batch == 256 ? 24 : 120 ))
  for ((r = 0; r < rounds; r++)); do
    "$bin" --batch "$batch" --steps "$steps" --threads "$threads" | tee -a "$out"
    /usr/bin/python3 bench/train_throughput.py --batch "$batch" --steps "$steps" --threads "$threads" | tee -a "$out"
  done
done
/usr/bin/python3 - "$out" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
for batch in (256, 32):
    d = [r["samples_per_s"] for r in rows if r["batch"] == batch and r["impl"] == "daenr"]
    p = [r["samples_per_s"] for r in rows if r["batch"] == batch and r["impl"] == "pytorch"]
    ratios = [a / b for a, b in zip(d, p)]
    print(f"batch {batch}: daenr {statistics.median(d):.0f} samples/s, pytorch {statistics.median(p):.0f}"
          f" samples/s, ratio (per round) {', '.join(f'{x:.2f}' for x in ratios)},"
          f" median {statistics.median(ratios):.2f}x")
PY
rm -f "$out"
