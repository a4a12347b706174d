#!/usr/bin/env bash
# Start-up time and idle memory of the release `steward serve`, on a fresh SQLite store:
# the time from exec to the first 200 from /ready, then VmRSS after 3 idle seconds.
# The first start migrates, creates the admin, registers and validates the bundled data, and
# trains the three candidates and promotes the best (/ready needs a model loaded); the second
# start finds all of that done and only loads the production model.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
scripts/stage-xgboost release
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
export STEWARD__DATABASE__URL="sqlite://$work/steward.db" STEWARD__STORAGE__DIR="$work/var" \
       STEWARD__SERVER__PORT=18765 STEWARD_ADMIN_PASSWORD=bench-password-1 STEWARD__LOG__LEVEL=warn
for start in first second; do
    t0=$(date +%s%N)
    target/release/steward serve >"$work/$start.log" 2>&1 &
    pid=$!
    until curl -fs -o /dev/null http://127.0.0.1:18765/ready; do sleep 0.005; done
    t1=$(date +%s%N)
    sleep 3
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    echo "$start start: /ready after $(( (t1 - t0) / 1000000 )) ms; idle RSS ${rss} KiB"
    kill -TERM "$pid"; wait "$pid" || true
done
