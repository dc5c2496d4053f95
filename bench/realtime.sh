#!/usr/bin/env bash
# Benchmark of the real-time targets, on a release build with SQLite, all on 127.0.0.1:
#   - 10,000 concurrent WebSocket clients on one node
#   - one event delivered to all of them with p99 < 100 ms
#   - >= 200,000 messages/s delivered in total under broadcast load
#   - server memory < 300 MB at 10,000 clients
#
#   bench/realtime.sh        # CLIENTS=10000 RATE=25 DURATION=10 PROBES=20 may be overridden
#                            # LOAD_PREFIX="nice -n 19" runs the load client under a prefix
#
# The load client (crates/vigia-loadtest) runs on the same machine as the server, so both
# share its cores. The server it starts is stopped on exit, whatever happens.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CLIENTS="${CLIENTS:-10000}"
RATE="${RATE:-25}"
DURATION="${DURATION:-10}"
PROBES="${PROBES:-20}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigia-target}"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

# Server and clients each hold one descriptor per connection.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((CLIENTS + 1000)) ] || fail "ulimit -n is $(ulimit -n): raise the hard limit to at least $((CLIENTS + 1000))"

step "cargo build --release -p vigia -p vigia-loadtest"
cargo build --release -p vigia -p vigia-loadtest
VIGIA="$CARGO_TARGET_DIR/release/vigia"
LOAD="$CARGO_TARGET_DIR/release/vigia-loadtest"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
unset VIGIA_CONFIG VIGIA_DATABASE__URL VIGIA_STORAGE__URL
export VIGIA_LOG__LEVEL=warn
export VIGIA_HTTP__LOGIN_PER_MINUTE=100000
# Every client signs in as the same demo admin.
export VIGIA_REALTIME__MAX_CONNECTIONS_PER_USER=$((CLIENTS + 100))

step "starting vigia serve --demo on $BASE"
"$VIGIA" --data-dir "$WORK/data" serve --demo --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 400); do
    curl -fs -o /dev/null --max-time 1 "$BASE/ready" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; fail "the server exited"; }
    sleep 0.05
done

step "$CLIENTS clients, $PROBES single events, then $RATE events/s for $DURATION s"
${LOAD_PREFIX:-} "$LOAD" ws --url "$BASE" --clients "$CLIENTS" --probes "$PROBES" --rate "$RATE" \
    --duration "$DURATION" --server-pid "$SERVER_PID"

step "server metrics"
curl -fs "$BASE/metrics" | grep -E '^vigia_realtime_(connections|messages|slow|fanout_lag_seconds_(sum|count))' || true
