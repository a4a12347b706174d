#!/usr/bin/env bash
# A monitoring check over a large window of the prediction log against a stored profile: fills
# the log of a fresh SQLite store with ROWS predictions (default 1,000,000: Hungary's and
# Cleveland's rows through /predict in batches of 10,000), stops the server (its log flushed),
# then times `steward drift run` on the default window (5,000 rows; the first run also stores
# the reference profile) and on a window of all ROWS rows, with wall time and peak RSS.
#   bench/drift_check.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --quiet
scripts/stage-xgboost release
export STEWARD__DATABASE__URL="sqlite://$work/steward.db" STEWARD__STORAGE__DIR="$work/var" \
       STEWARD__LOG__LEVEL=warn STEWARD__SERVER__PORT=18931 STEWARD__TRAINING__MODELS=lr \
       STEWARD__MONITORING__ENABLED=false STEWARD_ADMIN_PASSWORD=bench-admin-password
bin=target/release/steward
$bin serve & server=$!
for _ in $(seq 1 120); do curl -sf localhost:18931/ready >/dev/null && break; sleep 1; done
python3 - "$rows" <<'PY'
import json, sys, urllib.request
rows = int(sys.argv[1])
names = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang",
         "oldpeak", "slope", "ca", "thal"]
src = []
for f in ["processed.hungarian.data", "processed.cleveland.data"]:
    for line in open(f"data/uci-heart-disease/{f}"):
        cells = line.strip().split(",")
        src.append({n: (None if c == "?" else float(c)) for n, c in zip(names, cells)})
sent = 0
while sent < rows:
    n = min(10000, rows - sent)
    body = json.dumps({"instances": [src[(sent + i) % len(src)] for i in range(n)]}).encode()
    req = urllib.request.Request("http://127.0.0.1:18931/predict", body,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
    sent += n
print(f"logged {sent} predictions", file=sys.stderr)
PY
kill -TERM $server; wait $server || true
measure() {
    local label=$1; shift
    /usr/bin/time -f "$label: %e s wall, %M KiB peak RSS" "$@" >/dev/null
}
measure "drift run, default window (5,000 rows; stores the profile)" $bin drift run --json
measure "drift run, default window (5,000 rows; profile stored)" $bin drift run --json
STEWARD__MONITORING__WINDOW_ROWS=$rows measure "drift run, window of $rows rows" $bin drift run --json
STEWARD__MONITORING__WINDOW_ROWS=$rows $bin drift run | grep -E "^window|^drift share|estimated"
