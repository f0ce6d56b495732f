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
scripts/build.sh >/dev/null
db=${DAENR_DB:-results.sqlite}
echo "daenr: running examples/quick-sweep.toml into $db ..." >&2
build/app/daenr sweep run examples/quick-sweep.toml --db "$db" "$@"
build/app/daenr status --db "$db"
sqlite3 -header -column "$db" "
  SELECT json_extract(j.labels, '$.autoencoder') || '-' || json_extract(j.labels, '$.readout') ||
           '_' || json_extract(j.labels, '$.layer') AS model,
         json_extract(j.labels, '$.seed') AS seed,
         printf('%.4f', r.mse) AS mse, printf('%.2f', r.psnr) AS psnr_db,
         printf('%.3f', r.ssim) AS ssim, printf('%.3f', r.mean_r) AS mean_r,
         r.n_significant || '/' || r.neurons AS significant
  FROM results r JOIN jobs j ON j.id = r.job_id
  ORDER BY model, seed"
build/app/daenr report --db "$db"
