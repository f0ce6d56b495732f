#!/usr/bin/env bash
# What a job saves by not doing work it does not need, measured side by side
# through the real trainer at batch 64 on one thread:
#   - the readout-only baseline (alpha = 0): no decoder, encoder only up to h_i;
#   - the autoencoder-only baseline (beta = 0): no readout;
#   - evaluation without autograd vs with it.
#   bench/savings.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
bin=${DAENR_BUILD_DIR:-build}/bench/daenr_bench_train
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
out=$(mktemp)
for ((r = 0; r < rounds; r++)); do
  "$bin" --batch 64 --steps 60 --autoencoder cae --readout fr --layer 2 | tee -a "$out"
  "$bin" --batch 64 --steps 60 --autoencoder none --readout fr --layer 2 | tee -a "$out"
  "$bin" --batch 64 --steps 60 --autoencoder cae --readout none | tee -a "$out"
  "$bin" --batch 64 --steps 40 --mode eval | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(model, key="samples_per_s"):
    return statistics.median(r[key] for r in rows if r["model"] == model and key in r)
full = med("cae-fr_2")
print(f"CAE-FR_2 (both heads): {full:.0f} samples/s")
print(f"CNN-FR_2 (alpha = 0, no decoder, encoder to h2): {med('none-fr_2'):.0f} samples/s, {med('none-fr_2') / full:.2f}x")
print(f"CAE (beta = 0, no readout): {med('cae-none_2'):.0f} samples/s, {med('cae-none_2') / full:.2f}x")
ng, ag = med("cae-fr_2", "eval_no_grad_samples_per_s"), med("cae-fr_2", "eval_autograd_samples_per_s")
print(f"evaluation forward: no autograd {ng:.0f} vs autograd {ag:.0f} samples/s, {ng / ag:.2f}x")
PY
rm -f "$out"
