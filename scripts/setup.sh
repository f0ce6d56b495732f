#!/usr/bin/env bash
# Installs daenr's build and test dependencies from Debian 12's packages.
# Idempotent: packages already present are skipped, so a second run is quick
# and needs no network.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev            # LibTorch 1.13, CPU
  libopenblas0-pthread    # the reference BLAS is far slower
  libdnnl-dev             # oneDNN's headers: its sgemm for daenr's own products (models/gemm.h)
  libopenmpi-dev openmpi-bin
  libssl-dev              # SHA-256 for data fingerprints and job ids
  libfmt-dev libtomlplusplus-dev libsqlite3-dev sqlite3 libcli11-dev
  nlohmann-json3-dev      # one JSON line of metrics per job
  libboost-dev            # Boost.Math: Student t distribution for p-values
  libgtest-dev libgmock-dev
  libpng-dev              # reports: Figure 2 as PNG
)
# Extra groups, asked for by name: `scripts/setup.sh test` adds what only the
# tests need (Chromium, to check the HTML report renders, a large download the
# main command does without; Slurm and munge, for a one-node Slurm that the
# end-to-end tests submit to), `scripts/setup.sh bench` adds PyTorch for the
# Python side of the training benchmark.
for extra in "$@"; do
  case "$extra" in
    test) packages+=(chromium slurm-wlm munge) ;;
    bench) packages+=(python3-torch python3-numpy) ;;
    *) echo "setup.sh: unknown extra '$extra' (known: test, bench)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
