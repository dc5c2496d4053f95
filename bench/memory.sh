#!/usr/bin/env bash
# Memory under storms, release build, SQLite, 127.0.0.1 only:
#   - a login storm: LOGINS failed logins at once, ROUNDS times; RSS after each round against
#     RSS after a warm-up of one login per core (Argon2id: 19 MiB per hash, one per core)
#   - an upload storm: UPLOADS images of 24 MP (the thumbnail budget, 72 MB decoded each)
#     and UPLOADS of 9000x9000 (above it), all at once; the server's peak RSS against before
#
#   bench/memory.sh        # LOGINS=64 ROUNDS=3 UPLOADS=16 may be overridden
#
# Starts its own server on a temporary data directory with the demo catalog, stops it on exit.
# Bounded: at most ROUNDS x LOGINS logins and 2 x UPLOADS uploads, each curl limited to 120 s.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

LOGINS="${LOGINS:-64}"
ROUNDS="${ROUNDS:-3}"
UPLOADS="${UPLOADS:-16}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigia-target}"

fail() { printf '\nerror: %s\n' "$*" >&2; exit 1; }
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
VIGIA_LOG__LEVEL=warn VIGIA_HTTP__LOGIN_PER_MINUTE=100000 VIGIA_JOBS__ENABLED=false \
    "$VIGIA" --data-dir "$WORK/data" serve --demo --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 200); do curl -sf "$BASE/ready" >/dev/null && break; sleep 0.05; done
curl -sf "$BASE/ready" >/dev/null || fail "server did not start: $(cat "$WORK/server.log")"

mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }
peak() { awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status"; }
reset_peak() { echo 5 >"/proc/$SERVER_PID/clear_refs"; }

# n failed logins at once; prints their status codes, counted.
storm() {
    seq 1 "$1" | xargs -P "$1" -I{} curl -s -o /dev/null -w '%{http_code}\n' --max-time 120 \
        "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
        -d '{"email":"reporter@demo.vigia.local","password":"not-the-password-at-all"}' | sort | uniq -c | tr '\n' ' '
}

echo "--- login storm ($(nproc) cores)"
echo "idle:               $(mb "$(rss)") MB"
storm "$(nproc)" >/dev/null
sleep 1
WARM="$(rss)"
echo "after $(nproc) logins:     $(mb "$WARM") MB (warm)"
for round in $(seq 1 "$ROUNDS"); do
    reset_peak
    START="$(date +%s%N)"
    CODES="$(storm "$LOGINS")"
    MS=$(( ($(date +%s%N) - START) / 1000000 ))
    sleep 1
    echo "round $round: $LOGINS logins in $MS ms [$CODES] peak $(mb "$(peak)") MB, after $(mb "$(rss)") MB (+$(mb $(( $(rss) - WARM ))) MB)"
done

echo "--- upload storm"
token() {
    curl -sf "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
        -d "{\"email\":\"$1\",\"password\":\"$2\"}" | python3 -c 'import sys, json; print(json.load(sys.stdin)["access_token"])'
}
REPORTER="$(token reporter@demo.vigia.local faro-este-2026)"
INCIDENT="$(curl -sf "$BASE/api/v1/incidents" -H "Authorization: Bearer $REPORTER" -H 'content-type: application/json' \
    -d '{"category_id":1,"title":"Fotos de la fuga","description":"Varias fotos de la fuga del tercer piso.","visibility":"private"}' \
    | python3 -c 'import sys, json; print(json.load(sys.stdin)["id"])')"
python3 - "$WORK" <<'PY'
import struct, sys, zlib
def png(path, width, height):
    raw = zlib.compress(bytes(height * (width * 3 + 1)), 9)
    chunk = lambda name, data: struct.pack(">I", len(data)) + name + data + struct.pack(">I", zlib.crc32(name + data))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
png(sys.argv[1] + "/budget.png", 6000, 4000)
png(sys.argv[1] + "/huge.png", 9000, 9000)
PY
echo "images: 6000x4000 $(stat -c %s "$WORK/budget.png") bytes, 9000x9000 $(stat -c %s "$WORK/huge.png") bytes"
upload() { # file
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 120 -H "Authorization: Bearer $REPORTER" \
        -F "file=@$1;type=image/png" "$BASE/api/v1/incidents/$INCIDENT/attachments"
}
export -f upload; export REPORTER BASE INCIDENT
sleep 1
BEFORE="$(rss)"
reset_peak
START="$(date +%s%N)"
CODES="$( (for _ in $(seq 1 "$UPLOADS"); do echo "$WORK/budget.png"; echo "$WORK/huge.png"; done) \
    | xargs -P "$((UPLOADS * 2))" -I{} bash -c 'upload {}' | sort | uniq -c | tr '\n' ' ')"
MS=$(( ($(date +%s%N) - START) / 1000000 ))
sleep 1
THUMBS="$(curl -sf "$BASE/api/v1/incidents/$INCIDENT/attachments" -H "Authorization: Bearer $REPORTER" \
    | python3 -c 'import sys, json; d = json.load(sys.stdin); items = d["items"] if isinstance(d, dict) else d; print(sum(1 for a in items if a.get("thumbnail_url")), "of", len(items))')"
echo "$((UPLOADS * 2)) uploads in $MS ms [$CODES], thumbnails: $THUMBS"
echo "before $(mb "$BEFORE") MB, peak $(mb "$(peak)") MB (+$(mb $(( $(peak) - BEFORE ))) MB), after $(mb "$(rss)") MB"
