#!/usr/bin/env bash
# Benchmark of the foundation targets, on a release build with SQLite, all on 127.0.0.1:
#   - authenticated GET /api/v1/me   >= 20,000 req/s at 64 connections
#   - idle memory (RSS)              <  30 MB
#   - cold start to ready            <  200 ms
#
#   bench/foundation.sh            # DURATION=15 WARMUP=3 CONNECTIONS=64 THREADS=2 may be overridden
#
# Installs wrk with apt-get if missing. Takes about a minute after the build. The server it
# starts is stopped on exit, whatever happens.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION="${DURATION:-15}"
WARMUP="${WARMUP:-3}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigia-target}"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nerror: %s\n' "$*" >&2; exit 1; }
now_ns() { date +%s%N; }

# --- Tools -------------------------------------------------------------------------------
for tool in curl python3; do
    command -v "$tool" >/dev/null || fail "$tool is required"
done
if ! command -v wrk >/dev/null; then
    step "installing wrk"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null \
        || fail "cannot install wrk (apt-get install wrk)"
fi

step "cargo build --release -p vigia"
cargo build --release -p vigia
VIGIA="$CARGO_TARGET_DIR/release/vigia"
[ -x "$VIGIA" ] || fail "$VIGIA was not built"

# --- Server lifecycle --------------------------------------------------------------------
WORK="$(mktemp -d)"
DATA="$WORK/data"
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
cleanup() { stop_server; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
EMAIL="bench@example.org"
PASSWORD="Kestrel-42-lighthouse-faro"

export VIGIA_BOOTSTRAP__ADMIN_EMAIL="$EMAIL"
export VIGIA_BOOTSTRAP__ADMIN_PASSWORD="$PASSWORD"
export VIGIA_HTTP__LOGIN_PER_MINUTE=100000
export VIGIA_LOG__LEVEL=info
export VIGIA_LOG__FORMAT=text
unset VIGIA_CONFIG VIGIA_DATABASE__URL VIGIA_STORAGE__URL

# Starts the server on $DATA, sets SERVER_PID and COLD_MS (spawn until GET /ready is 200,
# polled every 5 ms), and READY_LOG_MS (the server's own ready_in_ms).
start_server() {
    local log="$1" t0 deadline
    t0="$(now_ns)"
    "$VIGIA" --data-dir "$DATA" serve --listen "127.0.0.1:$PORT" >"$log" 2>&1 &
    SERVER_PID=$!
    deadline=$((t0 + 20000000000))
    until curl -fs -o /dev/null --max-time 1 "$BASE/ready"; do
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; fail "the server exited before it was ready"; }
        [ "$(now_ns)" -lt "$deadline" ] || { cat "$log" >&2; fail "the server was not ready within 20 s"; }
        sleep 0.005
    done
    COLD_MS=$(( ($(now_ns) - t0) / 1000000 ))
    READY_LOG_MS="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -o 'ready_in_ms[=:" ]*[0-9]*' | grep -o '[0-9]*$' | head -1 || true)"
    READY_LOG_MS="${READY_LOG_MS:-?}"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status"; }
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

# --- Cold start: empty data directory (migrations, signing key, bootstrap admin) ---------
step "cold start on an empty data directory ($DATA)"
start_server "$WORK/first.log"
FIRST_COLD_MS=$COLD_MS
FIRST_READY_LOG_MS=$READY_LOG_MS
echo "ready after ${FIRST_COLD_MS} ms (server log: ready_in_ms=${FIRST_READY_LOG_MS})"
stop_server

# --- Cold start: existing data directory (a restart) -------------------------------------
step "cold start on the existing data directory (restart)"
start_server "$WORK/second.log"
echo "ready after ${COLD_MS} ms (server log: ready_in_ms=${READY_LOG_MS})"

# --- Log in ------------------------------------------------------------------------------
step "log in as $EMAIL"
LOGIN="$(curl -fsS --max-time 10 -H 'Content-Type: application/json' \
    -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" "$BASE/api/v1/auth/login")" \
    || fail "login failed"
TOKEN="$(printf '%s' "$LOGIN" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"
ME_STATUS="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/me")"
[ "$ME_STATUS" = 200 ] || fail "GET /api/v1/me with the token answered $ME_STATUS"
echo "got an access token; GET /api/v1/me answers 200"

# --- Idle memory -------------------------------------------------------------------------
step "idle memory (after 2 s idle)"
sleep 2
IDLE_RSS_KB="$(rss_kb)"
echo "VmRSS ${IDLE_RSS_KB} kB"

# --- Load --------------------------------------------------------------------------------
step "warm-up: wrk -t$THREADS -c$CONNECTIONS -d${WARMUP}s"
timeout $((WARMUP + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" \
    -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/me" >/dev/null

step "load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency GET /api/v1/me"
timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
    -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/me" | tee "$WORK/wrk.txt"
LOAD_RSS_KB="$(rss_kb)"
PEAK_RSS_KB="$(hwm_kb)"

REQS="$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk.txt")"
P50="$(awk '$1 == "50%" { print $2 }' "$WORK/wrk.txt")"
P99="$(awk '$1 == "99%" { print $2 }' "$WORK/wrk.txt")"
NON2XX="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$WORK/wrk.txt")"
ERRORS="$(awk '/Socket errors:/ { sub(/^ *Socket errors: */, ""); print }' "$WORK/wrk.txt")"
stop_server

# --- Summary -----------------------------------------------------------------------------
verdict() { if awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; then echo "ok"; else echo "MISSED"; fi; }
IDLE_MB="$(mb "$IDLE_RSS_KB")"
step "summary (release build, SQLite, 127.0.0.1, $(nproc) cores)"
printf '%-44s %14s   %-12s %s\n' "measure" "value" "target" "verdict"
printf '%-44s %14s   %-12s %s\n' "GET /api/v1/me req/s ($CONNECTIONS conn, ${DURATION}s)" "$REQS" ">= 20000" "$(verdict "$REQS" '>=' 20000)"
printf '%-44s %14s\n' "latency p50" "$P50"
printf '%-44s %14s\n' "latency p99" "$P99"
printf '%-44s %14s\n' "non-2xx responses" "${NON2XX:-0}"
[ -n "$ERRORS" ] && printf '%-44s %14s\n' "socket errors" "$ERRORS"
printf '%-44s %14s   %-12s %s\n' "idle RSS (MB)" "$IDLE_MB" "< 30" "$(verdict "$IDLE_MB" '<' 30)"
printf '%-44s %14s\n' "RSS after load (MB)" "$(mb "$LOAD_RSS_KB")"
printf '%-44s %14s\n' "peak RSS during load (MB)" "$(mb "$PEAK_RSS_KB")"
printf '%-44s %14s   %-12s %s\n' "cold start, empty data dir (ms)" "$FIRST_COLD_MS" "< 200" "$(verdict "$FIRST_COLD_MS" '<' 200)"
printf '%-44s %14s\n' "  server's own ready_in_ms" "$FIRST_READY_LOG_MS"
printf '%-44s %14s   %-12s %s\n' "cold start, existing data dir (ms)" "$COLD_MS" "< 200" "$(verdict "$COLD_MS" '<' 200)"
printf '%-44s %14s\n' "  server's own ready_in_ms" "$READY_LOG_MS"
