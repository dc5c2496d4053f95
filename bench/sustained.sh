#!/usr/bin/env bash
# Sustained intake: the highest rate at which incidents can be created for DURATION seconds
# with EVERY background consequence keeping up — the relay, dispatch planning, an e-mail to the
# department (to a local SMTP sink), a webhook (to a local receiver), the per-incident report
# object — release build, SQLite (synchronous = full), 127.0.0.1 only.
#
#   bench/sustained.sh      # RATES="250 500 1000 2000 5000" DURATION=60 may be overridden
#
# For each rate, on a fresh data directory: `vigia-loadtest paced` creates incidents at that
# rate (open loop: requests are due by the clock), the backlog (jobs waiting + events not yet
# relayed) is sampled every 5 s, and afterwards the event→effect latency is read from the
# database: delivered_at − event time for e-mails and webhooks, report written − incident
# created for reports. E-mails held for a digest (beyond `email.digest_after_per_minute` to one
# address) are delayed on purpose: they are counted, not timed. A rate is sustained when the backlog at the end of the load is under
# two seconds' worth of intake and the p99 of every effect is under 2 s; the script stops at
# the first rate that is not. Webhooks go to `vigia-loadtest sink` (a Rust receiver that
# answers 204); e-mails to aiosmtpd from the test venv, a Python sink whose own ceiling bounds
# what can be measured of e-mail here (see bench/README.md).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

RATES="${RATES:-250 500 1000 2000 5000}"
DURATION="${DURATION:-60}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigia-target}"
PYTHON="${VIGIA_TEST_PYTHON:-$HOME/.cache/vigia-venv/bin/python}"

fail() { printf '\nerror: %s\n' "$*" >&2; exit 1; }
[ -x "$PYTHON" ] || fail "no Python with aiosmtpd at $PYTHON: run scripts/test.sh once (it prepares the venv)"
cargo build --release -p vigia -p vigia-loadtest
VIGIA="$CARGO_TARGET_DIR/release/vigia"
LOAD="$CARGO_TARGET_DIR/release/vigia-loadtest"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

cat >"$WORK/smtp_sink.py" <<'PY'
import sys, time
from aiosmtpd.controller import Controller
class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1])).start()
while True:
    time.sleep(3600)
PY

sql() { # database, query
    python3 - "$1" "$2" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=30)
print(db.execute(sys.argv[2]).fetchone()[0] or 0)
PY
}
# Work due and not done: jobs running or due (a digest e-mail waits `digest_window_secs` on
# purpose and is not backlog until then), plus events not yet relayed.
BACKLOG_SQL="SELECT (SELECT COUNT(*) FROM jobs WHERE state = 'running' OR (state IN ('queued', 'failed') \
 AND run_at <= CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))) + \
 COALESCE((SELECT MAX(id) FROM incident_events), 0) - COALESCE((SELECT position FROM job_cursors WHERE name = 'event_relay'), 0)"

p99() { # database, query returning one latency (ms) per row
    python3 - "$1" "$2" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=30)
xs = sorted(r[0] for r in db.execute(sys.argv[2]) if r[0] is not None)
print("%d %.0f %.0f" % (len(xs), xs[int(len(xs) * 0.5)] if xs else -1, xs[min(len(xs) - 1, int(len(xs) * 0.99))] if xs else -1))
PY
}

echo "load before: $(uptime)"
printf '\n%-8s %-10s %-9s %-12s %-22s %-22s %-22s %s\n' "rate" "created/s" "backlog" "drain (s)" "e-mail n p50/p99 ms" "webhook n p50/p99 ms" "report n p50/p99 ms" "kept up"
BEST=0
for RATE in $RATES; do
    DATA="$WORK/data-$RATE"
    PORT="$(free_port)"; HOOK_PORT="$(free_port)"; SMTP_PORT="$(free_port)"
    "$LOAD" sink --listen "127.0.0.1:$HOOK_PORT" & PIDS+=($!)
    "$PYTHON" "$WORK/smtp_sink.py" "$SMTP_PORT" & PIDS+=($!)
    BASE="http://127.0.0.1:$PORT"
    VIGIA_LOG__LEVEL=warn VIGIA_DATABASE__SQLITE_SYNCHRONOUS=full VIGIA_HTTP__LOGIN_PER_MINUTE=100000 \
    VIGIA_WEBHOOKS__ALLOW_PRIVATE_TARGETS=true VIGIA_EMAIL__ENABLED=true VIGIA_EMAIL__SMTP_HOST=127.0.0.1 \
    VIGIA_EMAIL__SMTP_PORT="$SMTP_PORT" VIGIA_EMAIL__SMTP_MODE=none \
        "$VIGIA" --data-dir "$DATA" serve --demo --listen "127.0.0.1:$PORT" >"$WORK/server-$RATE.log" 2>&1 &
    SERVER_PID=$!; PIDS+=($SERVER_PID)
    for _ in $(seq 1 200); do curl -sf "$BASE/ready" >/dev/null && break; sleep 0.05; done
    curl -sf "$BASE/ready" >/dev/null || fail "server did not start: $(cat "$WORK/server-$RATE.log")"
    ADMIN="$(curl -sf "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
        -d '{"email":"admin@demo.vigia.local","password":"faro-norte-2026"}' | python3 -c 'import sys, json; print(json.load(sys.stdin)["access_token"])')"
    curl -sf "$BASE/api/v1/webhooks" -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \
        -d "{\"url\":\"http://127.0.0.1:$HOOK_PORT/hook\",\"event_types\":[\"incident.created\"]}" >/dev/null \
        || fail "cannot register the endpoint"
    DB="$DATA/vigia.db"
    "$LOAD" paced --url "$BASE" --rate "$RATE" --duration "$DURATION" >"$WORK/load-$RATE.txt" &
    LOAD_PID=$!
    SAMPLES=""
    while kill -0 "$LOAD_PID" 2>/dev/null; do
        sleep 5
        SAMPLES="$SAMPLES $(sql "$DB" "$BACKLOG_SQL")"
    done
    wait "$LOAD_PID"
    END_BACKLOG="$(sql "$DB" "$BACKLOG_SQL")"
    DRAIN_START=$SECONDS
    while [ "$(sql "$DB" "$BACKLOG_SQL")" -gt 0 ] && [ $((SECONDS - DRAIN_START)) -lt 300 ]; do sleep 1; done
    DRAINED=$((SECONDS - DRAIN_START))
    CREATED_RATE="$(sed -E 's/.*= ([0-9]+)\/s.*/\1/' "$WORK/load-$RATE.txt")"
    MAIL="$(p99 "$DB" "SELECT d.delivered_at - e.at FROM notification_deliveries d JOIN incident_events e ON e.id = d.event_id WHERE d.channel = 'email' AND d.status = 'delivered' AND d.digest_id IS NULL")"
    HELD="$(sql "$DB" "SELECT COUNT(*) FROM notification_deliveries WHERE digest_id IS NOT NULL")"
    HOOK="$(p99 "$DB" "SELECT d.delivered_at - e.at FROM notification_deliveries d JOIN incident_events e ON e.id = d.event_id WHERE d.channel = 'webhook' AND d.status = 'delivered'")"
    REPORT="$(p99 "$DB" "SELECT r.updated_at - i.created_at FROM reports r JOIN incidents i ON i.id = r.incident_id WHERE r.kind = 'incident'")"
    KEPT=yes
    [ "$END_BACKLOG" -le $((RATE * 2)) ] || KEPT=no
    for effect in "$MAIL" "$HOOK" "$REPORT"; do
        [ "$(echo "$effect" | awk '{print $3}')" -lt 2000 ] || KEPT=no
    done
    printf '%-8s %-10s %-9s %-12s %-22s %-22s %-22s %s\n' "$RATE" "$CREATED_RATE" "$END_BACKLOG" "$DRAINED" \
        "$(echo "$MAIL" | awk '{print $1" "$2"/"$3}')" "$(echo "$HOOK" | awk '{print $1" "$2"/"$3}')" \
        "$(echo "$REPORT" | awk '{print $1" "$2"/"$3}')" "$KEPT"
    echo "  backlog every 5 s:$SAMPLES"
    echo "  e-mails held for a digest (not in the e-mail latency; see docs/notifications.md): $HELD"
    echo "  $(cat "$WORK/load-$RATE.txt")"
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
    PIDS=()
    [ "$KEPT" = yes ] || break
    BEST="$RATE"
done
echo
echo "highest sustained rate: $BEST incidents/s for $DURATION s (every consequence kept up, p99 event→effect < 2 s)"
echo "load after: $(uptime)"
