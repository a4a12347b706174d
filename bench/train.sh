#!/usr/bin/env bash
# Training speed, with the release binary on a fresh SQLite store:
#   1. the default training on Cleveland (303 rows): lr, rf and xgb, each 5 CV folds plus the
#      final fit, tracked as runs with their artifacts;
#   2. XGBoost alone on a 1,000,000-row resample of Cleveland (rows drawn with replacement,
#      seed 42): 5 CV folds plus the final fit. The final fit's own time is the run's
#      `fit_seconds` metric.
# Prints wall time and peak RSS of each command.
#   bench/train.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
scripts/stage-xgboost release
python3 bench/resample.py "$rows" "$work/heart-1m.csv"

export STEWARD__DATABASE__URL="sqlite://$work/steward.db" STEWARD__STORAGE__DIR="$work/var" \
       STEWARD__LOG__LEVEL=warn
bin=target/release/steward
measure() {
    local label=$1; shift
    /usr/bin/time -f "$label: %e s wall, %M KiB peak RSS" "$@" > "$work/out.json" || true
}
$bin data add data/uci-heart-disease/processed.cleveland.data --dataset heart >/dev/null
measure "default training on Cleveland (lr, rf, xgb; 5 folds + final fit each)" $bin train --json
python3 - "$work/out.json" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
for c in o["candidates"]:
    r = c["report"]
    print(f'  {r["model"]:<4} CV accuracy {r["cv"]["accuracy"]["mean"]:.3f} ± {r["cv"]["accuracy"]["std"]:.3f}, '
          f'F1 {r["cv"]["f1"]["mean"]:.3f} ± {r["cv"]["f1"]["std"]:.3f}, '
          f'ROC-AUC {r["cv"]["roc_auc"]["mean"]:.3f} ± {r["cv"]["roc_auc"]["std"]:.3f}; '
          f'run {c["run"]["duration_ms"]/1000:.2f} s, final fit {r["fit_seconds"]:.3f} s')
PY

$bin data add "$work/heart-1m.csv" --dataset heart -m "1M resample" >/dev/null
measure "XGBoost on $rows rows (5 folds + final fit)" $bin train --models xgb --json
python3 - "$work/out.json" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
c = o["candidates"][0]
r = c["report"]
print(f'  rows {o["rows"]}, final fit on {r["train_rows"]} rows: {r["fit_seconds"]:.2f} s; '
      f'run {c["run"]["duration_ms"]/1000:.2f} s; CV ROC-AUC {r["cv"]["roc_auc"]["mean"]:.3f}')
PY
