#!/usr/bin/env bash
# The command line as a user meets it: one JSON line on success, one error
# line and a non-zero exit on bad input, and nothing written on failure.
set -uo pipefail
daenr=$1
shared=$(cd "$(dirname "$0")/../.." && pwd)/../shared/data/antolik2016
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

tiny=(--set model.width=4 --set model.latent=8 --set train.batch_size=16
      --set train.validate_every=5 --set train.patience=10 --set train.max_steps=20)

# expect_error EXIT_CODE EXPECTED_SUBSTRING -- ARGS...: one stderr line naming the problem.
expect_error() {
  local code=$1 want=$2; shift 3
  "$daenr" "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  [ "$got" -eq "$code" ] || fail "'$*' exited $got, expected $code: $(cat "$tmp/err")"
  grep -qF -- "$want" "$tmp/err" || fail "'$*' error lacks '$want': $(cat "$tmp/err")"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "'$*' printed more than one error line: $(cat "$tmp/err")"
  [ ! -s "$tmp/out" ] || fail "'$*' printed to stdout on error"
}

# 1. A tiny job on a virtual region prints exactly one JSON line with its metrics.
"$daenr" train "${tiny[@]}" --set data=virtual:2 >"$tmp/out" 2>"$tmp/err" || fail "tiny train failed: $(cat "$tmp/err")"
[ "$(wc -l <"$tmp/out")" -eq 1 ] || fail "train printed $(wc -l <"$tmp/out") lines"
python3 - "$tmp/out" <<'PY' || fail "train's JSON line is wrong"
import json, sys, math
j = json.loads(open(sys.argv[1]).read())
assert j["status"] == "done", j
for k in ("mse", "psnr", "ssim", "mean_r", "n_significant", "oracle_r", "split_half_r"):
    assert j[k] is not None, k
assert j["neurons"] == 55, j["neurons"]          # virtual region 2
assert j["steps"] == 20
assert abs(j["psnr"] - 10 * math.log10(4 / j["mse"])) < 1e-9
assert 0 <= j["n_significant"] <= 55
assert j["config"]["model"]["width"] == 4
assert j["config"]["loss"]["reconstruction"] == "sum"   # the paper's Eq. 7 by default
assert len(j["data_fingerprint"]) >= 16
# A virtual region's ground truth (docs/metrics.md), here for an FR readout.
for k in ("true_r", "data_true_r", "rf_error", "rf_within_2px"):
    assert j[k] is not None, k
assert -1 <= j["true_r"] <= 1 and 0 < j["data_true_r"] < 1
assert 0 <= j["rf_within_2px"] <= 1 and j["rf_error"] >= 0
PY
# ... and none of it for a model without a readout.
"$daenr" train "${tiny[@]}" --set data=virtual:2 --set model.readout=none --set loss.beta=0 >"$tmp/out" 2>"$tmp/err" ||
  fail "tiny CAE failed: $(cat "$tmp/err")"
python3 - "$tmp/out" <<'PY' || fail "the CAE's ground truth is not null"
import json, sys
j = json.loads(open(sys.argv[1]).read())
assert all(j[k] is None for k in ("true_r", "data_true_r", "rf_error", "rf_within_2px")), j
PY

# 2. Bad input: one line naming the file/key/value, exit 2.
printf '[model]\nlayr = 2\n' >"$tmp/bad.toml"
expect_error 2 "bad.toml:2:1: model.layr: unknown key (did you mean 'model.layer'?)" -- train --config "$tmp/bad.toml"
expect_error 2 "--set 'model.layer=9': model.layer: must be 1..4" -- train --set model.layer=9
expect_error 2 "does-not-exist" -- train --set data="$tmp/does-not-exist"
expect_error 2 "virtual:7" -- train --set data=virtual:7
expect_error 2 "--config" -- train --config "$tmp/missing.toml"
expect_error 2 "--frobnicate" -- train --frobnicate
if [ -d "$shared/region1" ]; then
  expect_error 2 "training_inputs.npy" -- train --set data="$shared/region1"
fi

# 3. data synth writes the Antolík layout, and train reads it back as real data.
"$daenr" data synth --out "$tmp/synth" --seed 3 >/dev/null 2>"$tmp/err" || fail "data synth failed: $(cat "$tmp/err")"
for f in training_inputs training_set validation_inputs validation_set raw_validation_set rf_centres; do
  [ -f "$tmp/synth/region1/$f.npy" ] || fail "data synth did not write region1/$f.npy"
done
from_dir=$("$daenr" train "${tiny[@]}" --set data="$tmp/synth/region2" 2>"$tmp/err") || fail "train on synth dir: $(cat "$tmp/err")"
from_mem=$("$daenr" train "${tiny[@]}" --set data=virtual:2 --set data_seed=3 2>"$tmp/err") || fail "train virtual: $(cat "$tmp/err")"
python3 - "$from_dir" "$from_mem" <<'PY' || fail "the written region does not train like the in-memory one"
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for k in ("mse", "ssim", "mean_r", "data_fingerprint"):
    assert a[k] == b[k], (k, a[k], b[k])
PY

# 4. A checkpoint makes a second run resume (here: find the job finished) and
#    give the same metrics.
"$daenr" train "${tiny[@]}" --checkpoint "$tmp/ck/job.ckpt" >"$tmp/first" 2>"$tmp/err" || fail "checkpointed run: $(cat "$tmp/err")"
"$daenr" train "${tiny[@]}" --checkpoint "$tmp/ck/job.ckpt" >"$tmp/second" 2>"$tmp/err" || fail "resumed run: $(cat "$tmp/err")"
python3 - "$tmp/first" "$tmp/second" <<'PY' || fail "resumed metrics differ"
import json, sys
a, b = (json.loads(open(p).read()) for p in sys.argv[1:])
assert a["mse"] == b["mse"] and a["mean_r"] == b["mean_r"], (a, b)
PY
expect_error 2 "written by a different job configuration" -- train "${tiny[@]}" --set model.layer=3 --checkpoint "$tmp/ck/job.ckpt"

# 5. How OpenMP's threads wait (worker/cpu_share.h), reported beside train_seconds: the user's
#    OMP_WAIT_POLICY is kept; daenr chooses passive for one thread, for two threads on one CPU,
#    and for more ranks x threads than CPUs; libgomp's default when two threads have two CPUs.
wait_of() {  # [VAR=VALUE...] [taskset -c LIST] -- train flags...: the line's openmp_wait
  local pre=()
  while [ "$1" != -- ]; do pre+=("$1"); shift; done
  shift
  env -u OMP_WAIT_POLICY "${pre[@]}" "$daenr" train "${tiny[@]}" "$@" 2>"$tmp/err" |
    python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["openmp_wait"])'
}
[ "$(wait_of OMP_WAIT_POLICY=active -- --set train.threads=2)" = active ] || fail "the user's OMP_WAIT_POLICY was not kept"
[ "$(wait_of -- --set train.threads=1)" = passive ] || fail "one thread did not wait passively: $(cat "$tmp/err")"
[ "$(wait_of taskset -c "$(taskset -pc $$ | sed 's/.*: //; s/[,-].*//')" -- --set train.threads=2)" = passive ] ||
  fail "two threads on one CPU did not wait passively: $(cat "$tmp/err")"
[ "$(wait_of OMPI_COMM_WORLD_LOCAL_SIZE="$(getconf _NPROCESSORS_ONLN)" -- --set train.threads=2)" = passive ] ||
  fail "more ranks x threads than CPUs did not wait passively: $(cat "$tmp/err")"
quota=$(cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null | head -n 1)
if [ "$(nproc)" -ge 2 ] && { [ -z "$quota" ] || [[ $quota == max* ]] || [ "$quota" = -1 ]; }; then
  [ "$(wait_of -- --set train.threads=2)" = default ] || fail "two threads on $(nproc) CPUs did not keep libgomp's default"
else
  echo "train_cli: two threads with CPUs of their own not checked: $(nproc) CPU(s), cgroup quota '$quota'"
fi

if [ "$failures" -eq 0 ]; then echo "train_cli: all checks passed"; else echo "train_cli: $failures failed"; exit 1; fi
