#!/usr/bin/env bash
# Benchmark of webhook delivery, release build, SQLite (synchronous = full), 127.0.0.1 only:
# reports COUNT incidents, and measures how fast the job queue (relay, `event.dispatch`,
# `notification.deliver`) plans, signs and delivers their events to one webhook endpoint (subscribed to every type), and the latency
# from the event to its arrival at the receiver.
#
#   bench/notify.sh      # COUNT=2000 POLL_MS=100 may be overridden
#
# Starts its own server and a Python receiver (standard library only) and stops them on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

COUNT="${COUNT:-2000}"
POLL_MS="${POLL_MS:-100}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigia-target}"

fail() { printf '\nerror: %s\n' "$*" >&2; exit 1; }
cargo build --release -p vigia
VIGIA="$CARGO_TARGET_DIR/release/vigia"

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

# The receiver: answers 204 and appends "event-to-arrival latency in ms" per message.
cat >"$WORK/receiver.py" <<'PY'
import json, sys, time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

out = open(sys.argv[2], "a", buffering=1)

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        at = body.get("data", {}).get("at")
        if at:
            sent = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
            out.write("%.1f\n" % ((time.time() - sent) * 1000))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
python3 "$WORK/receiver.py" "$HOOK_PORT" "$WORK/latencies.txt" &
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
REPORTER="$(token reporter@demo.vigia.local faro-este-2026)"
ADMIN="$(token admin@demo.vigia.local faro-norte-2026)"
curl -sf "$BASE/api/v1/webhooks" -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \
    -d "{\"url\":\"http://127.0.0.1:$HOOK_PORT/hook\",\"event_types\":[\"*\"]}" >/dev/null \
    || fail "cannot register the endpoint"

python3 - "$BASE" "$REPORTER" "$ADMIN" "$COUNT" "$WORK/latencies.txt" <<'PY'
import http.client, json, sys, time
base, reporter, admin, count, latencies = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
host = base.split("//")[1]
conn = http.client.HTTPConnection(host)
def call(method, path, token, body=None):
    conn.request(method, path, body=json.dumps(body) if body else None,
                 headers={"authorization": "Bearer " + token, "content-type": "application/json"})
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b"null")
body = {"category_id": 1, "title": "Tubería rota en el baño", "visibility": "public",
        "description": "Sale agua sin parar desde la mañana en el tercer piso."}
start = time.time()
for _ in range(count):
    status, _ = call("POST", "/api/v1/incidents", reporter, body)
    assert status == 201, status
created = time.time()
def open_count():
    n = 0
    for status in ("pending", "failed"):
        _, page = call("GET", "/api/v1/notifications/deliveries?limit=200&status=" + status, admin)
        n += len(page["items"])
    return n
while open_count() > 0:
    time.sleep(0.2)
done = time.time()
_, dead = call("GET", "/api/v1/notifications/deliveries?limit=200&status=dead", admin)
lat = sorted(float(l) for l in open(latencies) if l.strip())
def pct(p):
    return lat[min(len(lat) - 1, int(len(lat) * p))]
print("incidents reported:        %d in %.1f s (%.0f/s)" % (count, created - start, count / (created - start)))
print("webhooks delivered:        %d (dead: %d)" % (len(lat), len(dead["items"])))
print("delivery rate:             %.0f webhooks/s (first report to last delivery)" % (len(lat) / (done - start)))
print("event -> arrival latency:  p50 %.0f ms, p99 %.0f ms, max %.0f ms (poll interval included)" % (pct(0.5), pct(0.99), lat[-1]))
PY
