"""The table of bench/train_throughput.sh from its JSON lines (one per run, daenr and PyTorch
alternating), so that a run's saved lines can be summarised again:
  python3 bench/throughput_summary.py FILE THREADS
Rates are medians over rounds; ratios are taken per round (each daenr run against the PyTorch
run right after it). The peak is cores x clock x fp32 FLOP per cycle (32 for AMD family 25,
Zen 3 and 4, whose FMA units are 256 bits wide; 64 for family 26, Zen 5, and for other CPUs
with AVX-512; 32 with AVX2; DAENR_FLOP_PER_CYCLE overrides), at the clock /proc/cpuinfo shows.
A VM's /proc/cpuinfo may show the base clock while the core runs faster, so the share of a
measured ceiling is printed too: the 2048^3 sgemm that every PyTorch run times through its BLAS,
and the one every daenr run times through daenr's own GEMM (models/gemm.h, oneDNN's), medians;
the share is of the faster of the two (on a CPU that Debian's OpenBLAS does not know, as Zen 5,
OpenBLAS runs AVX2 kernels at half the width)."""
import json
import os
import re
import statistics
import sys


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
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
    ceiling = None
    for key, through in (("sgemm_gflops", "PyTorch's BLAS"), ("daenr_sgemm_gflops", "daenr's sgemm")):
        values = [r[key] for r in rows if key in r]
        if values:
            median = statistics.median(values)
            ceiling = max(ceiling or 0, median)
            backend = next((r["daenr_sgemm"] for r in rows if "daenr_sgemm" in r), None)
            label = f"{through} ({backend})" if key.startswith("daenr") and backend else through
            print(f"measured ceiling: 2048^3 sgemm through {label} on {threads} thread(s), median of "
                  f"{len(values)} runs: {median:.0f} GFLOP/s (range {min(values):.0f}-{max(values):.0f})")
    print("| model | batch | daenr samples/s | PyTorch samples/s | ratio per round | median | by CPU time "
          "| daenr GFLOP/s | of peak | of sgemm |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    keys = []
    for r in rows:
        if (r["model"], r["batch"]) not in keys:
            keys.append((r["model"], r["batch"]))
    for model, batch in keys:
        d = [r for r in rows if (r["model"], r["batch"], r["impl"]) == (model, batch, "daenr")]
        p = [r for r in rows if (r["model"], r["batch"], r["impl"]) == (model, batch, "pytorch")]
        if not d or not p:
            continue  # a run cut short
        ratios = [a["samples_per_s"] / b["samples_per_s"] for a, b in zip(d, p)]
        cpu = [a["samples_per_cpu_s"] / b["samples_per_cpu_s"] for a, b in zip(d, p)]
        rate = statistics.median(a["samples_per_s"] for a in d)
        gflops = rate * p[0]["mflop_per_sample"] / 1e3
        share = f"{100 * gflops / ceiling:.0f}%" if ceiling else "-"
        print(f"| {model.replace('none-', 'cnn-').upper()} | {batch} | {rate:.0f} "
              f"| {statistics.median(b['samples_per_s'] for b in p):.0f} "
              f"| {', '.join(f'{x:.2f}' for x in ratios)} | {statistics.median(ratios):.2f}x "
              f"| {statistics.median(cpu):.2f}x | {gflops:.1f} | {100 * gflops / peak:.0f}% | {share} |")


if __name__ == "__main__":
    main()
