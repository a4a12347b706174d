#!/usr/bin/env bash
# `steward drift compare` against Evidently 0.7.23's DataDriftPreset on the same two files of
# ROWS rows (default 1,000,000) × 13 features (bench/drift_data.py), side by side in one run,
# each timed from reading the files to the printed report, with its peak RSS. Then checks that
# both flag the same features with scores equal within 1e-6.
#   bench/drift.sh [ROWS]
# Needs the venv of bench/venv.sh (Evidently 0.7.23).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bench/venv.sh

cargo build --release --quiet
scripts/stage-xgboost release
python3 bench/drift_data.py "$rows" "$work/ref.csv" "$work/cur.csv"
ls -l "$work/ref.csv" "$work/cur.csv" | awk '{printf "%s: %.1f MB\n", $NF, $5/1e6}'
export STEWARD__DATABASE__URL="sqlite://$work/steward.db" STEWARD__STORAGE__DIR="$work/var" \
       STEWARD__DATASET__BOOTSTRAP_FILE="" STEWARD__LOG__LEVEL=warn DO_NOT_TRACK=1

/usr/bin/time -f "%e %M" -o "$work/steward.time" \
    target/release/steward drift compare --reference "$work/ref.csv" --current "$work/cur.csv" \
    --json > "$work/steward.json"
/usr/bin/time -f "%e %M" -o "$work/evidently.time" \
    bench/.venv/bin/python bench/drift_evidently.py "$work/ref.csv" "$work/cur.csv" \
    > "$work/evidently.json" 2>/dev/null

python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
s = json.load(open(f"{w}/steward.json"))
e = json.load(open(f"{w}/evidently.json"))
st, sm = open(f"{w}/steward.time").read().split()
et, em = open(f"{w}/evidently.time").read().split()
names = {"K-S p_value": "ks", "chi-square p_value": "chisquare", "Z-test p_value": "z",
         "Wasserstein distance (normed)": "wasserstein", "Jensen-Shannon distance": "jensenshannon",
         "PSI": "psi"}
worst, same = 0.0, True
for f in s["features"]:
    ev = e["features"][f["feature"]]
    same &= names[ev["stattest"]] == f["stattest"] and ev["drifted"] == f["drifted"]
    worst = max(worst, abs(ev["score"] - f["score"]))
    print(f'  {f["feature"]:<9} {f["stattest"]:<13} steward {f["score"]:.9f}  '
          f'evidently {ev["score"]:.9f}  drifted {f["drifted"]}/{ev["drifted"]}')
print(f"steward:   {float(st):6.2f} s, peak RSS {int(sm)/1024:6.0f} MB, drift share {s['drift_share']:.3f}")
print(f"evidently: {float(et):6.2f} s, peak RSS {int(em)/1024:6.0f} MB, drift share {e['drift_share']:.3f}")
print(f"ratio (evidently / steward wall time): {float(et)/float(st):.1f}x")
print(f"same tests and verdicts: {same}; largest score difference: {worst:.2e}")
sys.exit(0 if same and worst <= 1e-6 else 1)
PY
