#!/usr/bin/env bash
# Media benchmarks: face verification quality and speed (vigia media bench-faces) and video
# transcoding speed (a 60 s 1080p clip to 720p through vigia media transcode).
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
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=30:duration=60 \
    -f lavfi -i sine=frequency=440:duration=60 -c:v libx264 -preset ultrafast -c:a aac -shortest "$WORK/in.mp4"
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
"$BIN" media transcode "$WORK/in.mp4" --output "$WORK/out"
