#!/usr/bin/env bash
# Benchmark of the incident targets, release build, SQLite (synchronous = full), 127.0.0.1 only:
#   - create incident (POST /api/v1/incidents)        >= 5,000 req/s, p99 < 20 ms at 64 connections
#   - list a 50-item page (GET /api/v1/incidents)     >= 15,000 req/s
#
#   bench/incidents.sh      # DURATION=15 CONNECTIONS=64 THREADS=2 may be overridden
#
# Starts its own server on a temporary data directory with the demo catalog, stops it on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION="${DURATION:-15}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigia-target}"

fail() { printf '\nerror: %s\n' "$*" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || fail "cannot install wrk"
fi
cargo build --release -p vigia
VIGIA="$CARGO_TARGET_DIR/release/vigia"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
VIGIA_LOG__LEVEL=warn VIGIA_DATABASE__SQLITE_SYNCHRONOUS=${SYNC:-full} VIGIA_HTTP__LOGIN_PER_MINUTE=100000 \
    "$VIGIA" --data-dir "$WORK/data" serve --demo --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 200); do curl -sf "$BASE/ready" >/dev/null && break; sleep 0.05; done
curl -sf "$BASE/ready" >/dev/null || fail "server did not start: $(cat "$WORK/server.log")"

token() {
    curl -sf "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
        -d "{\"email\":\"$1\",\"password\":\"$2\"}" | python3 -c 'import sys, json; print(json.load(sys.stdin)["access_token"])'
}
REPORTER="$(token reporter@demo.vigia.local faro-este-2026)"
ADMIN="$(token admin@demo.vigia.local faro-norte-2026)"
STAFF="$(token staff@demo.vigia.local faro-sur-2026)"

cat >"$WORK/create.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"category_id":1,"title":"Tubería rota en el baño","description":"Sale agua sin parar desde la mañana en el tercer piso.","location_text":"Pabellón A, 3er piso","visibility":"public"}'
LUA

run() { # name, wrk args...
    local name="$1"; shift
    echo "--- $name"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" | tee "$WORK/$name.txt" | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors" || true
}

run create -s "$WORK/create.lua" -H "Authorization: Bearer $REPORTER" "$BASE/api/v1/incidents"
CREATED="$(curl -sf "$BASE/api/v1/incidents?limit=1" -H "Authorization: Bearer $ADMIN" | python3 -c 'import sys, json; print(json.load(sys.stdin)["items"][0]["id"])')"
echo "incidents in the database: $CREATED"
# Every report causes background work (the relay, `event.dispatch`, the incident's report
# file). It queues up during the create burst; measure how long it takes to drain, and list
# only once it has, so the list figures are not taken while the workers catch up.
pending() {
    python3 - "$WORK/data/vigia.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(db.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running', 'failed')").fetchone()[0])
PY
}
BACKLOG="$(pending)"
DRAIN_START=$SECONDS
while [ "$(pending)" -gt 0 ] && [ $((SECONDS - DRAIN_START)) -lt 600 ]; do sleep 1; done
DRAINED=$((SECONDS - DRAIN_START))
echo "--- background work: $BACKLOG jobs pending after the burst, drained in ${DRAINED} s (left: $(pending))"
run list -H "Authorization: Bearer $ADMIN" "$BASE/api/v1/incidents?limit=50"
run list-filtered -H "Authorization: Bearer $ADMIN" "$BASE/api/v1/incidents?limit=50&status=new&urgency=high"
# A staff member's and a reporter's lists: their scopes (public, their departments', their own).
run list-staff -H "Authorization: Bearer $STAFF" "$BASE/api/v1/incidents?limit=50"
run list-reporter -H "Authorization: Bearer $REPORTER" "$BASE/api/v1/incidents?limit=50"

summary() { grep -E "$2" "$WORK/$1.txt" | awk '{print $2}' | head -1; }
printf '\n%-28s %12s %10s %10s\n' "scenario" "req/s" "p50" "p99"
for name in create list list-filtered list-staff list-reporter; do
    printf '%-28s %12s %10s %10s\n' "$name" "$(summary "$name" 'Requests/sec')" "$(summary "$name" ' 50%')" "$(summary "$name" ' 99%')"
done
printf '%-28s %12s jobs in %s s\n' "background drain" "$BACKLOG" "$DRAINED"
