#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds, and
# trains and evaluates one DAE-NR model (CAE-FR_2 on simulated region 3) on the
# CPU, printing its metrics as one JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh >/dev/null
echo "daenr: training CAE-FR_2 on virtual region 3 (examples/quick.toml) ..." >&2
exec build/app/daenr train --config examples/quick.toml "$@"
