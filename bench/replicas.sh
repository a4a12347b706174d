#!/usr/bin/env bash
# Three replicas on one PostgreSQL against one, side by side, with the release binary:
#   1. one replica (role all) alone: POST /predict (one patient, LR) at 48 connections;
#   2. the same store with two more replicas (role api): three wrk processes at once, 16
#      connections each, one per replica (the round-robin a load balancer would do); the sum
#      against (1), ROUNDS times (default 3), the median ratio the figure;
#   3. promotion propagation: a version promoted through the first replica's API, then
#      /model/info polled on all three every 20 ms until each serves it (serving.refresh_secs,
#      default 5), ROUNDS times.
# Every replica logs its predictions to the same PostgreSQL. On this 2-core machine the replicas
# share the cores wrk also uses, so (2) measures the cost of sharing, not scaling out.
#   [ROUNDS=3] [SKIP_BUILD=1] bench/replicas.sh [SECONDS per run, default 15]
# SKIP_BUILD=1 uses target/release/steward as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
rounds=${ROUNDS:-3}
wrk=(chrt --batch 0 wrk)
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

if [ -z "${SKIP_BUILD:-}" ]; then cargo build --release --quiet; fi
scripts/stage-xgboost release
scripts/postgres-up >/dev/null
bin=target/release/steward
db=steward_bench_replicas
psql -q "postgres://steward:steward@127.0.0.1:5432/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
export STEWARD__DATABASE__URL="postgres://steward:steward@127.0.0.1:5432/$db" \
       STEWARD__STORAGE__DIR="$work/var" STEWARD__LOG__LEVEL=warn \
       STEWARD_ADMIN_PASSWORD=bench-admin-password \
       STEWARD__AUDIT__KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))') \
       STEWARD__TRAINING__MODELS=lr
start() { # port role
    STEWARD__SERVER__PORT=$1 $bin serve --role "$2" 2>> "$work/server-$1.log" &
    pids+=($!)
    for _ in $(seq 1 300); do curl -sf "localhost:$1/ready" >/dev/null && return; sleep 0.2; done
    echo "replica on $1 did not get ready" >&2; exit 1
}
start 18081 all
token=$($bin tokens create --user admin --name bench | sed -n 's/^token (shown once): //p')
python3 -c 'import json; json.dump({"age": 63, "sex": 1, "cp": 1, "trestbps": 145, "chol": 233, "fbs": 1, "restecg": 2, "thalach": 150, "exang": 0, "oldpeak": 2.3, "slope": 3, "ca": 0, "thal": 6}, open("'"$work"'/one.json", "w"))'
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }

one=()
for round in $(seq 1 "$rounds"); do
    BODY_FILE="$work/one.json" "${wrk[@]}" -t2 -c48 -d"${secs}s" -s bench/predict.lua http://127.0.0.1:18081 > "$work/one-$round.out"
    one+=("$(rps "$work/one-$round.out")")
    echo "== round $round, one replica: ${one[-1]} requests/s"
done
start 18082 api
start 18083 api
three=()
for round in $(seq 1 "$rounds"); do
    wpids=()
    for port in 18081 18082 18083; do
        BODY_FILE="$work/one.json" "${wrk[@]}" -t1 -c16 -d"${secs}s" -s bench/predict.lua "http://127.0.0.1:$port" > "$work/three-$round-$port.out" &
        wpids+=($!)
    done
    wait "${wpids[@]}"
    sum=$(for port in 18081 18082 18083; do rps "$work/three-$round-$port.out"; done | python3 -c 'import sys; print(sum(float(x) for x in sys.stdin.read().split()))')
    three+=("$sum")
    echo "== round $round, three replicas: $sum requests/s"
done
python3 - "${one[*]}" "${three[*]}" <<'PY'
import statistics, sys
one = [float(x) for x in sys.argv[1].split()]
three = [float(x) for x in sys.argv[2].split()]
ratios = [t / o for o, t in zip(one, three)]
print("== three replicas against one: " + ", ".join(f"{r:.2f}x" for r in ratios)
      + f"; median {statistics.median(ratios):.2f}x ({statistics.median(three):.0f} against {statistics.median(one):.0f} requests/s)")
PY

# A second version to promote, then back and forth.
curl -sf -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"models": ["lr"], "register": true, "promote": false}' localhost:18081/api/v1/runs >/dev/null
python3 - "$token" "$rounds" <<'PY'
import json, sys, time, urllib.request
token, rounds = sys.argv[1], int(sys.argv[2])
def call(port, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)
times = []
for n in range(rounds):
    target = 2 if n % 2 == 0 else 1
    t0 = time.monotonic()
    call(18081, f"/api/v1/models/heart-disease/versions/{target}/stage", {"stage": "Production", "reason": "bench"})
    seen = {}
    while len(seen) < 3:
        for port in (18081, 18082, 18083):
            if port not in seen and call(port, "/model/info")["version"] == target:
                seen[port] = time.monotonic() - t0
        time.sleep(0.02)
    times.append(max(seen.values()))
    print(f"== promotion {n + 1} (v{target}): " + ", ".join(f"{p}: {s:.2f} s" for p, s in sorted(seen.items())))
print(f"== a promotion reached all three replicas in at most {max(times):.2f} s (serving.refresh_secs = 5)")
PY
