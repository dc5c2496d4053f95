#!/usr/bin/env bash
# Media benchmarks: face verification quality and speed (vigia media bench-faces), a capture
# landing in storage to its result JSON (vigia media bench-landing: local directory, and S3 on
# moto_server when VIGIA_TEST_MOTO names it) and video transcoding speed (a 60 s 1080p clip to
# 720p through vigia media transcode).
#
#   bench/media.sh            # builds the release binary first
#
# Prints the machine's load before each part: the figures only mean something with it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/media-setup.sh >/dev/null
cargo build --release -q -p vigia
BIN="${CARGO_TARGET_DIR:-target}/release/vigia"
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
"$BIN" media bench-faces
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
OPENBLAS_NUM_THREADS=1 "$BIN" media bench-landing --rounds 10
if [[ -n "${VIGIA_TEST_MOTO:-}" ]]; then
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "$VIGIA_TEST_MOTO" -H 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
    MOTO=$!
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT" >/dev/null && break; sleep 0.1; done
    curl -fs -X PUT "http://127.0.0.1:$PORT/bench" >/dev/null
    echo "== load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 OPENBLAS_NUM_THREADS=1 \
        "$BIN" media bench-landing --rounds 10 --storage s3://bench/vigia --s3-endpoint "http://127.0.0.1:$PORT"
    kill "$MOTO"
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=30:duration=60 \
    -f lavfi -i sine=frequency=440:duration=60 -c:v libx264 -preset ultrafast -c:a aac -shortest "$WORK/in.mp4"
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
"$BIN" media transcode "$WORK/in.mp4" --output "$WORK/out"
