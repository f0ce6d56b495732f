#!/usr/bin/env bash
# Side-by-side training throughput: daenr's trainer vs the same model and step in PyTorch
# eager (bench/train_throughput.py), alternating the two so that machine noise hits both
# alike. For each model and batch it prints both rates, the ratio per round and its median,
# daenr's achieved GFLOP/s and its share of the machine's fp32 peak.
#   bench/train_throughput.sh [rounds] [threads] [models] [batches]
#   e.g. bench/train_throughput.sh 3 1 "cae vae vqvae none" "16 32 64 128 256"
# "none" is the readout-only CNN (alpha = 0: the encoder up to h2). Every model has the FR
# readout on h2. The table, the peak and the measured ceiling: bench/throughput_summary.py.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
threads=${2:-1}
models=${3:-cae vae vqvae none}
batches=${4:-16 32 64 128 256}
bin=${DAENR_BUILD_DIR:-build}/bench/daenr_bench_train
# OpenBLAS gets one thread for both: daenr keeps it to one itself (its pthread pool would take
# turns with LibTorch's OpenMP pool on the same cores), and PyTorch eager with it so was 1.4-2x
# faster on 2 threads here than with OPENBLAS_NUM_THREADS=2 (bench/README.md, "Threads"), so
# the baseline is PyTorch as well configured as daenr. OpenMP's waiting is the same for both:
# passive unless DAENR_BENCH_WAIT=default, which leaves both libgomp's default (spin, then
# sleep): what daenr keeps when its threads have cores of their own, and what PyTorch has.
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=1
case ${DAENR_BENCH_WAIT:-passive} in
  passive) export OMP_WAIT_POLICY=passive ;;
  default) unset OMP_WAIT_POLICY ;;
  *) echo "DAENR_BENCH_WAIT: '${DAENR_BENCH_WAIT}': passive or default" >&2; exit 2 ;;
esac
out=$(mktemp)
trap 'rm -f "$out"' EXIT
grep -m1 'model name' /proc/cpuinfo
echo "cpu family $(grep -m1 "cpu family" /proc/cpuinfo | awk "{print \$NF}"), $(getconf _NPROCESSORS_ONLN) cores, $threads thread(s), $rounds round(s), waiting ${OMP_WAIT_POLICY:-default}"
for model in $models; do
  for batch in $batches; do
    # About 1500 samples in the longer run (about 1 s): long enough to time, short enough for
    # 40 pairs. The readout-only CNN is 7-8x faster per sample, so it runs 8x as many.
    samples=$([ "$model" = none ] && echo 12288 || echo 1536)
    steps=$(( samples / batch < 8 ? 8 : samples / batch ))
    for ((r = 0; r < rounds; r++)); do
      "$bin" --autoencoder "$model" --batch "$batch" --steps "$steps" --threads "$threads" >>"$out"
      /usr/bin/python3 bench/train_throughput.py --autoencoder "$model" --batch "$batch" \
        --steps "$steps" --threads "$threads" >>"$out"
    done
  done
done
/usr/bin/python3 bench/throughput_summary.py "$out" "$threads"
