#!/usr/bin/env bash
# Configures and builds daenr in build/ (Release, Ninja). Re-running rebuilds
# only what changed. DAENR_BUILD_TARGET=daenr builds the executable alone (what
# scripts/main.sh needs: not the tests and benchmarks, half of a cold build).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${DAENR_BUILD_DIR:-build}
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
fi
cmake --build "$build_dir" ${DAENR_BUILD_TARGET:+--target "$DAENR_BUILD_TARGET"}
