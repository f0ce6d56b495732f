#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds, and
# runs the quick sweep (CAE-FR_2 against the plain CAE on simulated region 3,
# two seeds each) on the CPU into results.sqlite, prints each job's test
# metrics, and ends with the paper's tables regenerated from the database
# (daenr report; figures and the HTML report in results.sqlite.report/).
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
na() { echo "CASE WHEN $1 IS NULL THEN '-' ELSE printf('$2', $1) END"; }
sqlite3 -header -column "$db" "
  SELECT upper(json_extract(j.labels, '$.autoencoder')) ||
           CASE json_extract(j.labels, '$.readout') WHEN 'none' THEN ''
             ELSE '-' || upper(json_extract(j.labels, '$.readout')) || '_' || json_extract(j.labels, '$.layer') END
           AS model,
         json_extract(j.labels, '$.seed') AS seed,
         $(na r.mse %.4f) AS mse, $(na r.psnr %.2f) AS psnr_db, $(na r.ssim %.3f) AS ssim,
         $(na r.mean_r %.3f) AS mean_r,
         CASE WHEN r.n_significant IS NULL THEN '-' ELSE r.n_significant || '/' || r.neurons END AS significant
  FROM results r JOIN jobs j ON j.id = r.job_id
  ORDER BY model, seed"
build/app/daenr report --db "$db"
exit "$rc"
