#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
# Which CPU ran the tests: a CI log is read later, and CI runs on whichever machine the
# submitting session had (timing-sensitive failures differ between them).
awk -F': *' '/^model name/ && !n { n = $2 } /^cpu family/ && !f { f = $2 } /^model\t/ && !m { m = $2 }
  END { printf "test.sh: %s (family %s model %s)", n ? n : "CPU unknown", f, m }' /proc/cpuinfo || true
echo ", $(getconf _NPROCESSORS_ONLN) CPUs"
scripts/setup.sh test
scripts/build.sh
# One test per core; GNU nproc counts OMP_NUM_THREADS as a limit, so ask it
# before setting that (and without what the caller may have set).
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
# Each test process gets one intra-op thread: ctest already runs one test per
# core, and more threads would only oversubscribe the machine.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
ctest --test-dir "${DAENR_BUILD_DIR:-build}" --output-on-failure -j "$cores" "$@"
