#!/usr/bin/env bash
# Serving throughput and latency with wrk, against the release binary on 127.0.0.1, with an
# XGBoost production model trained on the first start (fresh SQLite store):
#   1+2. side by side, ROUNDS times (default 3): the ceiling, GET /health (fixed JSON, same
#      server, same middleware), then POST /predict, one patient per request, each at 64
#      connections; each pair gives a ratio, and the median pair is the figure (the ceiling
#      alone swings by 20% between runs on a shared 2-core machine);
#   3. swap under load: POST /predict for 30 s at 64 connections while 20 promote/rollback
#      cycles run through the API;
#   4. batch: POST /predict with 1,000 rows per request, 8 connections;
#   5. nothing lost: after a SIGTERM, the prediction-log rows equal the rows the server answered
#      with 200 (its own http_requests_total and predictions_total).
# wrk shares this machine's cores with the server. As a normal task, each wrk thread woken by a
# response preempts a server worker in the middle of a request, which a client on another
# machine would not do, and which costs a longer request (/predict) more than a trivial one.
# So wrk runs under SCHED_BATCH (`chrt --batch`: no preemption on wakeup, same CPU share) by
# default; WRK_SCHED=other runs it as a normal task.
#   [ROUNDS=3] [WRK_SCHED=batch|other] bench/serve.sh [SECONDS per run, default 15]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
case ${WRK_SCHED:-batch} in
    batch) wrk=(chrt --batch 0 wrk) ;;
    other) wrk=(wrk) ;;
    *) echo "WRK_SCHED is batch or other, not ${WRK_SCHED}" >&2; exit 2 ;;
esac
echo "wrk runs as: ${wrk[*]}"
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --quiet
scripts/stage-xgboost release
bin=target/release/steward
export STEWARD__DATABASE__URL="sqlite://$work/steward.db" STEWARD__STORAGE__DIR="$work/var" \
       STEWARD__LOG__LEVEL=warn STEWARD_ADMIN_PASSWORD=bench-admin-password \
       STEWARD__SERVER__PORT=18080
printf '[training]\nmodels = ["xgb"]\n' > "$work/xgb.toml"
$bin --config "$work/xgb.toml" serve 2> "$work/server.log" &
server=$!
for _ in $(seq 1 300); do curl -sf localhost:18080/ready >/dev/null && break; sleep 0.2; done
curl -sf localhost:18080/model/info | python3 -c 'import json,sys; i=json.load(sys.stdin); print("serving", i["model"], "v%s" % i["version"], "(%s)" % i["kind"])'
token=$($bin tokens create --user admin --name bench | sed -n 's/^token (shown once): //p')
# A second version to swap with.
$bin --config "$work/xgb.toml" train --models xgb --register >/dev/null

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
one = {"age": 63, "sex": 1, "cp": 1, "trestbps": 145, "chol": 233, "fbs": 1, "restecg": 2,
       "thalach": 150, "exang": 0, "oldpeak": 2.3, "slope": 3, "ca": 0, "thal": 6}
rows = [l.split(",") for l in open("data/uci-heart-disease/processed.cleveland.data").read().split()]
names = list(one)
batch = []
for i in range(1000):
    r = rows[i % len(rows)]
    batch.append({n: (None if v == "?" else float(v)) for n, v in zip(names, r)})
json.dump(one, open(f"{work}/one.json", "w"))
json.dump({"instances": batch}, open(f"{work}/batch.json", "w"))
PY

run() { # label, then wrk arguments
    local label=$1; shift
    echo "== $label"
    "${wrk[@]}" --latency "$@" | tee "$work/wrk.out" | grep -E "Requests/sec|50%|99%|Non-2xx|requests in|Socket errors" | sed 's/^/   /'
}
pairs=()
for round in $(seq 1 "${ROUNDS:-3}"); do
    run "round $round, ceiling: GET /health, 64 connections, ${secs}s" \
        -t2 -c64 -d"${secs}s" http://127.0.0.1:18080/health
    ceiling=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
    BODY_FILE="$work/one.json" run "round $round, POST /predict (XGBoost, one row), 64 connections, ${secs}s" \
        -t2 -c64 -d"${secs}s" -s bench/predict.lua http://127.0.0.1:18080
    predict=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
    p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.out")
    pairs+=("$ceiling $predict $p99")
done
printf '%s\n' "${pairs[@]}" | python3 -c '
import statistics, sys
def ms(t):
    return float(t[:-2]) if t.endswith("ms") else float(t[:-2]) / 1000 if t.endswith("us") else float(t[:-1]) * 1000
rows = [l.split() for l in sys.stdin if l.strip()]
ratios = [100 * float(p) / float(c) for c, p, _ in rows]
print("== side by side: " + ", ".join(f"{r:.0f}%" for r in ratios) + " of the ceiling")
print(f"   median {statistics.median(ratios):.0f}% of the ceiling; /predict p99 median "
      f"{statistics.median(ms(t) for _, _, t in rows):.2f} ms, worst {max(ms(t) for _, _, t in rows):.2f} ms")
'

echo "== swap under load: 30 s at 64 connections, 20 promote/rollback cycles"
(
    sleep 2
    for i in $(seq 1 20); do
        curl -sf -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
            -d '{"stage":"Production","reason":"bench swap"}' \
            localhost:18080/api/v1/models/heart-disease/versions/2/stage >/dev/null || echo "   promote $i failed"
        sleep 0.6
        curl -sf -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
            -d '{"reason":"bench swap"}' localhost:18080/api/v1/models/heart-disease/rollback >/dev/null \
            || echo "   rollback $i failed"
        sleep 0.6
    done
    echo "   20 cycles done"
) &
swapper=$!
BODY_FILE="$work/one.json" "${wrk[@]}" --latency -t2 -c64 -d30s -s bench/predict.lua http://127.0.0.1:18080 \
    | grep -E "Requests/sec|50%|99%|Non-2xx|requests in|Socket errors" | sed 's/^/   /'
wait $swapper

BODY_FILE="$work/batch.json" run "POST /predict with 1,000 rows per request, 8 connections, ${secs}s" \
    -t2 -c8 -d"${secs}s" -s bench/predict.lua http://127.0.0.1:18080
batch=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
python3 -c "print(f'   {1000*$batch:,.0f} rows per second')"

echo "== nothing lost"
curl -sf localhost:18080/metrics > "$work/metrics.txt"
kill -TERM $server
wait $server || true
python3 - "$work" <<'PY'
import re, sqlite3, sys
work = sys.argv[1]
text = open(f"{work}/metrics.txt").read()
ok = sum(float(v) for v in re.findall(r'^http_requests_total\{[^}]*route="/predict"[^}]*status="200"[^}]*\} (\S+)', text, re.M))
ok += sum(float(v) for v in re.findall(r'^http_requests_total\{[^}]*status="200"[^}]*route="/predict"[^}]*\} (\S+)', text, re.M))
rows_answered = sum(float(v) for v in re.findall(r'^predictions_total\{[^}]*\} (\S+)', text, re.M))
stored = sqlite3.connect(f"{work}/steward.db").execute("select count(*) from predictions").fetchone()[0]
print(f"   200 answers to /predict: {ok:.0f}; rows those answers scored: {rows_answered:.0f}; "
      f"prediction-log rows after SIGTERM: {stored}; lost: {rows_answered - stored:.0f}")
PY
