#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
scripts/build.sh
# Each test process gets one intra-op thread: ctest already runs two at once
# on a 2-core machine, and more threads would only oversubscribe it.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
ctest --test-dir "${DAENR_BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" "$@"
