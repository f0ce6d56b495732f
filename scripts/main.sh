#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds, and
# runs the quick sweep (CAE-FR_2 against the plain CAE on simulated region 3,
# two seeds each) on the CPU into results.sqlite, then daenr report: each
# job's test metrics and the paper's tables regenerated from the database,
# trimmed to the rows and columns that hold a job (the files, the figures and
# the HTML report in results.sqlite.report/ keep the full layouts).
# Rerunning finishes only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
DAENR_BUILD_TARGET=daenr scripts/build.sh >/dev/null
db=${DAENR_DB:-results.sqlite}
echo "daenr: running examples/quick-sweep.toml into $db ..." >&2
# A sweep that ends with failed jobs (exit 5) or was stopped (4) still has
# results to show: report them, then exit with the sweep's code.
rc=0
build/app/daenr sweep run examples/quick-sweep.toml --db "$db" "$@" || rc=$?
build/app/daenr status --db "$db"
build/app/daenr report --db "$db"
exit "$rc"
