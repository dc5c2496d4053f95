#!/usr/bin/env bash
# Benchmark of the job queue, on a release build with SQLite (synchronous = full):
#   - no-op jobs through the queue   >= 5,000 jobs/s
#
#   bench/jobs.sh            # COUNT=100000 CONCURRENCY=256 BATCH=256 may be overridden
#
# `vigia jobs bench` enqueues COUNT `bench` jobs (5,000 per transaction), then runs the real
# worker loop — batch claim, one task per job, batched completion, heartbeats — until every job
# has succeeded, and prints both rates. It always works in a scratch database of its own
# (created and deleted by the command), and its worker handles only `bench` jobs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

COUNT="${COUNT:-100000}"
CONCURRENCY="${CONCURRENCY:-256}"
BATCH="${BATCH:-256}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigia-target}"

printf '==> building (release)\n'
cargo build --release -p vigia --quiet
BIN="$CARGO_TARGET_DIR/release/vigia"

DATA="$(mktemp -d)"
trap 'rm -rf "$DATA"' EXIT

run() {
    printf '\n==> %s\n' "$1"
    shift
    env VIGIA_LOG__LEVEL=warn "$@" "$BIN" --data-dir "$DATA" --database-url "sqlite://$DATA/bench-$RANDOM.db" \
        jobs bench --count "$COUNT"
}

run "concurrency $CONCURRENCY, batch $BATCH" \
    VIGIA_JOBS__CONCURRENCY="$CONCURRENCY" VIGIA_JOBS__BATCH="$BATCH"
run "default settings (concurrency 64, batch 128)"
