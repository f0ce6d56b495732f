#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
scripts/build.sh
# One test per core; GNU nproc counts OMP_NUM_THREADS as a limit, so ask it
# before setting that (and without what the caller may have set).
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
# Each test process gets one intra-op thread: ctest already runs one test per
# core, and more threads would only oversubscribe the machine.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
ctest --test-dir "${DAENR_BUILD_DIR:-build}" --output-on-failure -j "$cores" "$@"
