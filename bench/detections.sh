#!/usr/bin/env bash
# Benchmark of detection ingestion on a release build with SQLite (durable), on 127.0.0.1:
#   - POST /api/v1/detections/batch  (batches of 10,000; rules evaluated, rollups kept)
#   - POST /api/v1/detections        (one detection per request)
#   - MQTT ingestion                 (messages of 1,000 detections through Mosquitto)
#   - alert latency: the detection that triggers an alert acknowledged → `alert.raised` on an
#     open WebSocket (vigia-loadtest alert-latency, PROBES alerts one at a time)
#   - the dashboards against volume: detections loaded up to each of VOLUMES (timestamps in order
#     over the last 24 h), the load rate and `/detections/overview` and `/detections/stats` p50/p99 at each
#
#   bench/detections.sh    # BATCHES=30 CONNECTIONS=4 SINGLE_SECONDS=10 MQTT_FILES=40 PROBES=50
#                          # VOLUMES="1000000 3000000 10000000" may be overridden (VOLUMES="" skips)
#
# Needs python3, curl, wrk (apt-get install wrk), mosquitto_pub and a Mosquitto on 127.0.0.1:1883 (scripts/test.sh starts
# one). The server it starts is stopped on exit. Figures depend on how loaded the machine is:
# report the load average printed at the end with them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BATCHES="${BATCHES:-30}"
BATCH_SIZE="${BATCH_SIZE:-10000}"
CONNECTIONS="${CONNECTIONS:-4}"
SINGLE_SECONDS="${SINGLE_SECONDS:-10}"
SINGLE_CONNECTIONS="${SINGLE_CONNECTIONS:-32}"
MQTT_FILES="${MQTT_FILES:-40}"
MQTT_PER_FILE="${MQTT_PER_FILE:-1000}"
SUBJECTS="${SUBJECTS:-200}"
PROBES="${PROBES:-50}"
VOLUMES="${VOLUMES-1000000 3000000 10000000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigia-target}"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nerror: %s\n' "$*" >&2; exit 1; }
for tool in curl python3 mosquitto_pub wrk; do
    command -v "$tool" >/dev/null || fail "$tool is required"
done

step "cargo build --release -p vigia -p vigia-loadtest"
cargo build --release -p vigia -p vigia-loadtest
VIGIA="$CARGO_TARGET_DIR/release/vigia"
LOAD="$CARGO_TARGET_DIR/release/vigia-loadtest"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
export VIGIA_BOOTSTRAP__ADMIN_EMAIL="bench@example.org"
export VIGIA_BOOTSTRAP__ADMIN_PASSWORD="Kestrel-42-lighthouse-faro"
export VIGIA_HTTP__LOGIN_PER_MINUTE=100000
export VIGIA_DETECTIONS__MQTT_URL="mqtt://127.0.0.1:1883"
export VIGIA_LOG__LEVEL=warn
unset VIGIA_CONFIG VIGIA_DATABASE__URL VIGIA_STORAGE__URL

step "start the server (SQLite, synchronous = full)"
"$VIGIA" --data-dir "$WORK/data" serve --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 400); do curl -fs -o /dev/null "$BASE/ready" && break; sleep 0.05; done
curl -fs -o /dev/null "$BASE/ready" || { cat "$WORK/server.log"; fail "the server did not start"; }

api() { # METHOD PATH TOKEN [BODY]
    curl -fsS -X "$1" -H 'Content-Type: application/json' -H "Authorization: Bearer $3" \
        ${4:+-d "$4"} "$BASE$2"
}
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

sign_in() {
    curl -fsS -H 'Content-Type: application/json' \
        -d "{\"email\":\"$VIGIA_BOOTSTRAP__ADMIN_EMAIL\",\"password\":\"$VIGIA_BOOTSTRAP__ADMIN_PASSWORD\"}" \
        "$BASE/api/v1/auth/login" | json '["access_token"]'
}
TOKEN="$(sign_in)"
DEPARTMENT="$(api POST /api/v1/departments "$TOKEN" '{"name":"Bench","contact_emails":["b@example.org"]}' | json '["id"]')"
step "create $SUBJECTS subjects (with consent) and a device"
for i in $(seq 0 $((SUBJECTS - 1))); do
    api POST /api/v1/subjects "$TOKEN" "$(printf '{"code":"B-%05d","name":"Bench %d","department_id":%d,"consent":true}' "$i" "$i" "$DEPARTMENT")" >/dev/null
done
DEVICE="$(api POST /api/v1/devices "$TOKEN" '{"code":"bench-cam","name":"Bench camera"}')"
KEY="$(printf '%s' "$DEVICE" | json '["key"]')"

count() { api GET /api/v1/detections/overview "$TOKEN" | json '["detections_last_hour"]'; }

step "batch endpoint: $BATCHES batches of $BATCH_SIZE over $CONNECTIONS connections"
BATCH_RESULT="$(python3 bench/detections.py batch "$BASE" "$KEY" "$SUBJECTS" "$BATCHES" "$BATCH_SIZE" "$CONNECTIONS")"
echo "$BATCH_RESULT"

step "single detections for ${SINGLE_SECONDS}s over $SINGLE_CONNECTIONS connections (wrk)"
# wrk, not Python: one Python client tops out near 2,000 requests/s on these cores. Each wrk
# thread numbers its requests, so every detection has its own client_id (none is a duplicate).
cat >"$WORK/single.lua" <<LUA
local labels = {"neutral", "happy", "sad", "stress", "fatigue", "angry", "surprised", "fear"}
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
request = function()
    n = n + 1
    local body = string.format(
        '{"client_id":"w%d-%d","subject":"B-%05d","label":"%s","confidence":%.1f,"timestamp":"%s"}',
        tid, n, n % $SUBJECTS, labels[n % 8 + 1], 0.3 + (n % 7) / 10, os.date("!%Y-%m-%dT%H:%M:%SZ"))
    return wrk.format(nil, nil, nil, body)
end
LUA
wrk -t2 -c"$SINGLE_CONNECTIONS" -d"${SINGLE_SECONDS}s" --latency -s "$WORK/single.lua" \
    "$BASE/api/v1/detections" >"$WORK/single.txt"
grep -E "Requests/sec|99%|Non-2xx|Socket errors" "$WORK/single.txt" || true
SINGLE_RATE="$(awk '/Requests\/sec/ {printf "%d", $2}' "$WORK/single.txt")"
SINGLE_P99="$(awk '$1 == "99%" {print $2}' "$WORK/single.txt")"
SINGLE_RESULT="{\"mode\": \"single\", \"per_second\": $SINGLE_RATE, \"p99\": \"$SINGLE_P99\", \"non_2xx\": \"$(awk '/Non-2xx/ {print $4}' "$WORK/single.txt")\"}"
echo "$SINGLE_RESULT"

step "MQTT: $MQTT_FILES messages of $MQTT_PER_FILE detections"
mkdir -p "$WORK/mqtt"
python3 bench/detections.py mqtt-files "$WORK/mqtt" "$KEY" "$SUBJECTS" "$MQTT_FILES" "$MQTT_PER_FILE"
BEFORE="$(count)"
TARGET=$((BEFORE + MQTT_FILES * MQTT_PER_FILE))
T0="$(date +%s%N)"
PUBLISHERS=()
for f in "$WORK"/mqtt/*.json; do
    mosquitto_pub -h 127.0.0.1 -p 1883 -q 1 -t vigia/devices/bench-cam/detections -f "$f" &
    PUBLISHERS+=($!)
done
wait "${PUBLISHERS[@]}"
until [ "$(count)" -ge "$TARGET" ]; do
    [ $(( ($(date +%s%N) - T0) / 1000000000 )) -lt 120 ] || fail "MQTT detections not all stored after 120 s ($(count)/$TARGET)"
    sleep 0.05
done
MQTT_MS=$(( ($(date +%s%N) - T0) / 1000000 ))
MQTT_RATE=$(( MQTT_FILES * MQTT_PER_FILE * 1000 / (MQTT_MS > 0 ? MQTT_MS : 1) ))
echo "{\"mode\": \"mqtt\", \"accepted\": $((MQTT_FILES * MQTT_PER_FILE)), \"ms\": $MQTT_MS, \"per_second\": $MQTT_RATE}"

step "alert latency: $PROBES alerts, one at a time"
ALERT_RESULT="$("$LOAD" alert-latency --url "$BASE" --email "$VIGIA_BOOTSTRAP__ADMIN_EMAIL" \
    --password "$VIGIA_BOOTSTRAP__ADMIN_PASSWORD" --probes "$PROBES")"
echo "$ALERT_RESULT"

VOLUME_ROWS=""
for VOLUME in $VOLUMES; do
    STORED="$(python3 - "$WORK/data/vigia.db" <<'PY'
import sqlite3, sys
print(sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True).execute("SELECT COUNT(*) FROM detections").fetchone()[0])
PY
)"
    LOAD_RATE="-"
    if [ "$VOLUME" -gt "$STORED" ]; then
        step "load $((VOLUME - STORED)) detections (to $VOLUME stored, timestamps in order over the last 24 h)"
        LOADED="$(python3 bench/detections.py load "$BASE" "$KEY" "$SUBJECTS" "$((VOLUME - STORED))" "$BATCH_SIZE" "$CONNECTIONS" 86400)"
        echo "$LOADED"
        LOAD_RATE="$(echo "$LOADED" | json '["per_second"]')/s"
    fi
    step "dashboards at $VOLUME detections: 200 sequential requests each"
    TOKEN="$(sign_in)" # the first one may have expired while loading
    OVERVIEW="$(python3 bench/detections.py latency "$BASE" "$TOKEN" /api/v1/detections/overview 200)"
    STATS="$(python3 bench/detections.py latency "$BASE" "$TOKEN" /api/v1/detections/stats 200)"
    echo "$OVERVIEW"; echo "$STATS"
    SIZE="$(du -sh "$WORK/data" | cut -f1)"
    VOLUME_ROWS="$VOLUME_ROWS
$(printf '%-12s loaded at %-9s overview p50/p99 %s/%s ms   stats p50/p99 %s/%s ms   data %s' "$VOLUME" "$LOAD_RATE" \
        "$(echo "$OVERVIEW" | json '["p50_ms"]')" "$(echo "$OVERVIEW" | json '["p99_ms"]')" \
        "$(echo "$STATS" | json '["p50_ms"]')" "$(echo "$STATS" | json '["p99_ms"]')" "$SIZE")"
done

step "summary"
echo "batch:  $BATCH_RESULT"
echo "single: $SINGLE_RESULT"
echo "mqtt:   $MQTT_RATE detections/s (publish to stored, $MQTT_FILES messages)"
echo "alerts: $ALERT_RESULT"
[ -z "$VOLUME_ROWS" ] || echo "dashboards against stored detections:$VOLUME_ROWS"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)   cores: $(nproc)"
