#!/usr/bin/env bash
# Benchmark of webhook delivery, release build, SQLite (synchronous = full), 127.0.0.1 only.
# One endpoint subscribed to every event type (`*`) at `vigia-loadtest sink` (a Rust receiver
# that answers 204 and counts, so the receiver is not the limit). `vigia-loadtest paced`
# reports RATE incidents/s for SECONDS; the job queue (relay, `event.dispatch`,
# `notification.deliver`) plans, signs, sends and logs every delivery. The script reads the
# sink's count while the incidents arrive and until every delivery is done, and prints the
# delivery rate (from the receiver's clock: first to last arrival; and after the last report,
# when only deliveries are left), the log's state (delivered / failed / dead) and the p50/p99
# from event to delivery as the delivery log records it.
#
#   bench/notify.sh      # RATE=2500 SECONDS=10 POLL_MS=100 may be overridden
#
# Starts its own server and receiver and stops them on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

RATE="${RATE:-2500}"
SECONDS_OF_LOAD="${SECONDS:-10}"
POLL_MS="${POLL_MS:-100}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigia-target}"

fail() { printf '\nerror: %s\n' "$*" >&2; exit 1; }
cargo build --release -p vigia -p vigia-loadtest
VIGIA="$CARGO_TARGET_DIR/release/vigia"
LOAD="$CARGO_TARGET_DIR/release/vigia-loadtest"

WORK="$(mktemp -d)"
SERVER_PID=""
RECEIVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    [ -n "$RECEIVER_PID" ] && kill -TERM "$RECEIVER_PID" 2>/dev/null && wait "$RECEIVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"
HOOK_PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"

"$LOAD" sink --listen "127.0.0.1:$HOOK_PORT" &
RECEIVER_PID=$!

VIGIA_LOG__LEVEL=warn VIGIA_HTTP__LOGIN_PER_MINUTE=100000 \
VIGIA_WEBHOOKS__ALLOW_PRIVATE_TARGETS=true VIGIA_JOBS__POLL_INTERVAL_MS="$POLL_MS" VIGIA_JOBS__RELAY_INTERVAL_MS="$POLL_MS" \
    "$VIGIA" --data-dir "$WORK/data" serve --demo --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 200); do curl -sf "$BASE/ready" >/dev/null && break; sleep 0.05; done
curl -sf "$BASE/ready" >/dev/null || fail "server did not start: $(cat "$WORK/server.log")"

token() {
    curl -sf "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
        -d "{\"email\":\"$1\",\"password\":\"$2\"}" | python3 -c 'import sys, json; print(json.load(sys.stdin)["access_token"])'
}
ADMIN="$(token admin@demo.vigia.local faro-norte-2026)"
curl -sf "$BASE/api/v1/webhooks" -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \
    -d "{\"url\":\"http://127.0.0.1:$HOOK_PORT/hook\",\"event_types\":[\"*\"]}" >/dev/null \
    || fail "cannot register the endpoint"

sink() { curl -sf "http://127.0.0.1:$HOOK_PORT/count"; }
# Work due and not done: jobs running or due, plus events not yet relayed.
backlog() {
    python3 - "$WORK/data/vigia.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=30)
print(db.execute("SELECT (SELECT COUNT(*) FROM jobs WHERE state = 'running' OR (state IN ('queued', 'failed') "
    "AND run_at <= CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))) + "
    "COALESCE((SELECT MAX(id) FROM incident_events), 0) - "
    "COALESCE((SELECT position FROM job_cursors WHERE name = 'event_relay'), 0)").fetchone()[0])
PY
}
field() { python3 -c "import sys, json; print(json.load(sys.stdin)[\"$1\"])"; }

echo "reporting $RATE incidents/s for $SECONDS_OF_LOAD s"
"$LOAD" paced --url "$BASE" --rate "$RATE" --duration "$SECONDS_OF_LOAD" >"$WORK/load.txt"
cat "$WORK/load.txt"
REPORTED_AT_MS="$(date +%s%3N)"
AT_END_OF_LOAD="$(sink | field received)"

# Every delivery done: no job of the queue left, the sink's count still for 2 s.
LAST=-1
for _ in $(seq 1 600); do
    NOW="$(sink | field received)"
    WAITING="$(backlog)"
    [ "$NOW" = "$LAST" ] && [ "$WAITING" = "0" ] && break
    LAST="$NOW"
    sleep 2
done
COUNTS="$(sink)"
python3 - "$COUNTS" "$AT_END_OF_LOAD" "$REPORTED_AT_MS" "$WORK/data/vigia.db" <<'PY'
import json, sqlite3, sys
counts, at_end, reported_ms, db = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
received, first, last = counts["received"], counts["first_ms"], counts["last_ms"]
conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
states = dict(conn.execute("SELECT status, COUNT(*) FROM notification_deliveries WHERE channel = 'webhook' GROUP BY status"))
lat = sorted(r[0] for r in conn.execute(
    "SELECT d.delivered_at - e.at FROM notification_deliveries d JOIN incident_events e ON e.id = d.event_id "
    "WHERE d.channel = 'webhook' AND d.delivered_at IS NOT NULL"))
def pct(p):
    return lat[min(len(lat) - 1, int(len(lat) * p))] if lat else float("nan")
print("webhooks received:         %d (delivery log: %s)" % (received, states))
print("delivery rate:             %.0f/s first to last arrival (%.1f s)" % (received / max(0.001, (last - first) / 1000), (last - first) / 1000))
if last > reported_ms and received > at_end:
    print("after the last report:     %.0f/s (%d deliveries in %.1f s, only deliveries left)" % (
        (received - at_end) / ((last - reported_ms) / 1000), received - at_end, (last - reported_ms) / 1000))
print("event -> delivered:        p50 %.0f ms, p99 %.0f ms (from the delivery log)" % (pct(0.5), pct(0.99)))
PY
