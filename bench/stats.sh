#!/usr/bin/env bash
# Benchmark of the statistics target, release build, SQLite, 1,000,000 incidents:
#   - stats endpoints < 50 ms p99 (GET /api/v1/stats, /api/v1/stats/staff, /api/v1/public/rankings)
#
#   bench/stats.sh        # COUNT=1000000 REQUESTS=200 BENCH_DATA=... may be overridden
#
# The dataset is loaded once with `vigia seed incidents` (it spreads incidents over the last 90
# days) into BENCH_DATA and reused by later runs; delete the directory to load it again. Each
# endpoint gets REQUESTS sequential requests from curl as an administrator (who counts
# everything); the time is curl's time_total for each request.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

COUNT="${COUNT:-1000000}"
REQUESTS="${REQUESTS:-200}"
DATA="${BENCH_DATA:-$HOME/.cache/vigia-bench-stats/data}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigia-target}"
export VIGIA_LOG__LEVEL="${VIGIA_LOG__LEVEL:-error}"
EMAIL=bench-admin@vigia.local
PASSWORD=faro-sur-medicion-2026

fail() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

cargo build --release -p vigia
VIGIA="$CARGO_TARGET_DIR/release/vigia"

if [ ! -e "$DATA/seeded-$COUNT" ]; then
    rm -rf "$DATA"
    mkdir -p "$DATA"
    echo "== loading $COUNT synthetic incidents into $DATA (once)"
    "$VIGIA" --data-dir "$DATA" seed incidents --count "$COUNT"
    echo "$PASSWORD" | "$VIGIA" --data-dir "$DATA" user create --email "$EMAIL" --password-stdin >/dev/null
    touch "$DATA/seeded-$COUNT"
fi
"$VIGIA" --data-dir "$DATA" migrate >/dev/null

SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
VIGIA_JOBS__ENABLED=false "$VIGIA" --data-dir "$DATA" serve --listen "127.0.0.1:$PORT" >/dev/null 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 400); do curl -sf "$BASE/ready" >/dev/null && break; sleep 0.05; done
curl -sf "$BASE/ready" >/dev/null || fail "the server did not start"
TOKEN="$(curl -sf "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"

measure() { # label, path
    local times
    curl -sf -o /dev/null -H "authorization: Bearer $TOKEN" "$BASE$2" || fail "GET $2 failed"
    times="$(for _ in $(seq "$REQUESTS"); do
        curl -s -o /dev/null -w '%{time_total}\n' -H "authorization: Bearer $TOKEN" "$BASE$2"
    done | sort -n)"
    python3 - "$1" <<PY
import sys
times = [float(t) * 1000 for t in """$times""".split()]
pick = lambda p: times[min(len(times) - 1, int(round(p * len(times) + 0.5)) - 1)]
print(f"{sys.argv[1]:<34} p50 {pick(0.50):6.1f} ms   p99 {pick(0.99):6.1f} ms   max {times[-1]:6.1f} ms")
PY
}

WEEK="created_from=$(date -u -d '-7 days' +%Y-%m-%dT%H:%M:%SZ)"
echo "== $REQUESTS sequential requests each, $COUNT incidents"
measure "/stats (30 days, default)" "/api/v1/stats"
measure "/stats (7 days)" "/api/v1/stats?$WEEK"
measure "/stats/staff (30 days, default)" "/api/v1/stats/staff"
measure "/stats/staff (7 days)" "/api/v1/stats/staff?$WEEK"
measure "/public/rankings" "/api/v1/public/rankings"
