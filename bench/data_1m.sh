#!/usr/bin/env bash
# Times `steward data add` and `steward validate` on a 1,000,000-row CSV made by resampling the
# Cleveland file (rows drawn with replacement, seed 42), with the release binary, on a fresh
# SQLite store. Prints wall time and peak RSS of each command.
#   bench/data_1m.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
scripts/stage-xgboost release
python3 bench/resample.py "$rows" "$work/heart-1m.csv"
ls -l "$work/heart-1m.csv" | awk '{printf "input: %d rows, %.1f MB\n", '"$rows"', $5/1e6}'

export STEWARD__DATABASE__URL="sqlite://$work/steward.db" STEWARD__STORAGE__DIR="$work/var" \
       STEWARD__DATASET__BOOTSTRAP_FILE="" STEWARD__LOG__LEVEL=warn
bin=target/release/steward
measure() {
    local label=$1; shift
    /usr/bin/time -f "$label: %e s wall, %M KiB peak RSS" "$@" >/dev/null || true
}
$bin migrate >/dev/null
measure "data add (read, check, profile, store, validate)" $bin data add "$work/heart-1m.csv" --dataset heart -m "1M resample"
measure "data add again (same bytes, no new version)" $bin data add "$work/heart-1m.csv" --dataset heart
measure "validate --dataset heart (34 expectations)" $bin validate --suite heart --dataset heart
measure "validate --file (34 expectations)" $bin validate --suite heart --file "$work/heart-1m.csv"
