#!/usr/bin/env bash
# Side-by-side training throughput: daenr's trainer vs the same model and step in PyTorch
# eager (bench/train_throughput.py), alternating the two so that machine noise hits both
# alike. For each model and batch it prints both rates, the ratio per round and its median,
# daenr's achieved GFLOP/s and its share of the machine's fp32 peak.
#   bench/train_throughput.sh [rounds] [threads] [models] [batches]
#   e.g. bench/train_throughput.sh 3 1 "cae vae vqvae none" "16 32 64 128 256"
# "none" is the readout-only CNN (alpha = 0: the encoder up to h2). Every model has the FR
# readout on h2. The peak is cores x clock x fp32 FLOP per cycle (32 for AMD family 25, Zen 3
# and 4, whose FMA units are 256 bits wide; 64 for family 26, Zen 5, and for other CPUs with
# AVX-512; 32 with AVX2; set DAENR_FLOP_PER_CYCLE to override), at the clock /proc/cpuinfo
# shows. A VM's /proc/cpuinfo may show the base clock while the core runs faster, so the share of
# a measured ceiling is printed too: a 2048 x 2048 single-precision matrix product through the
# same BLAS (PyTorch's matmul), on the same threads, the best of 5.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
threads=${2:-1}
models=${3:-cae vae vqvae none}
batches=${4:-16 32 64 128 256}
bin=${DAENR_BUILD_DIR:-build}/bench/daenr_bench_train
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads OMP_WAIT_POLICY=passive
out=$(mktemp)
trap 'rm -f "$out"' EXIT
grep -m1 'model name' /proc/cpuinfo
echo "cpu family $(grep -m1 "cpu family" /proc/cpuinfo | awk "{print \$NF}"), $(getconf _NPROCESSORS_ONLN) cores, $threads thread(s), $rounds round(s)"
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
/usr/bin/python3 - "$out" "$threads" <<'PY'
import json, os, re, statistics, sys, time
import torch
rows = [json.loads(l) for l in open(sys.argv[1])]
threads = int(sys.argv[2])
info = open("/proc/cpuinfo").read()
family = int(re.search(r"cpu family\s*:\s*(\d+)", info).group(1))
mhz = float(re.search(r"cpu MHz\s*:\s*([\d.]+)", info).group(1))
flags = re.search(r"flags\s*:(.*)", info).group(1).split()
vendor_amd = "AuthenticAMD" in info
per_cycle = int(os.environ.get("DAENR_FLOP_PER_CYCLE", 0)) or (
    32 if vendor_amd and family == 25 else 64 if "avx512f" in flags else 32 if "fma" in flags else 16)
peak = threads * mhz * 1e-3 * per_cycle
print(f"peak fp32: {threads} core(s) x {mhz:.0f} MHz x {per_cycle} FLOP/cycle = {peak:.0f} GFLOP/s")
torch.set_num_threads(threads)
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
a @ b
best = min((lambda t0: (a @ b, time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(5))
ceiling = 2 * 2048 ** 3 / best / 1e9
print(f"measured ceiling: 2048^3 sgemm on {threads} thread(s) = {ceiling:.0f} GFLOP/s")
print("| model | batch | daenr samples/s | PyTorch samples/s | ratio per round | median | by CPU time | daenr GFLOP/s | of peak | of sgemm |")
print("|---|---|---|---|---|---|---|---|---|---|")
keys = []
for r in rows:
    k = (r["model"], r["batch"])
    if k not in keys:
        keys.append(k)
for model, batch in keys:
    d = [r for r in rows if (r["model"], r["batch"], r["impl"]) == (model, batch, "daenr")]
    p = [r for r in rows if (r["model"], r["batch"], r["impl"]) == (model, batch, "pytorch")]
    ratios = [a["samples_per_s"] / b["samples_per_s"] for a, b in zip(d, p)]
    cpu = [a["samples_per_cpu_s"] / b["samples_per_cpu_s"] for a, b in zip(d, p)]
    rate = statistics.median(a["samples_per_s"] for a in d)
    gflops = rate * p[0]["mflop_per_sample"] / 1e3
    name = model.replace("none-", "cnn-").upper()
    print(f"| {name} | {batch} | {rate:.0f} | {statistics.median(b['samples_per_s'] for b in p):.0f} "
          f"| {', '.join(f'{x:.2f}' for x in ratios)} | {statistics.median(ratios):.2f}x "
          f"| {statistics.median(cpu):.2f}x | {gflops:.1f} | {100 * gflops / peak:.0f}% | {100 * gflops / ceiling:.0f}% |")
PY
