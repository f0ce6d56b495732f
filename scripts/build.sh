#!/usr/bin/env bash
# Configures and builds daenr in build/ (Release, Ninja). Re-running rebuilds
# only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${DAENR_BUILD_DIR:-build}
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
fi
cmake --build "$build_dir"
