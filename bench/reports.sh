#!/usr/bin/env bash
# Benchmark of the report and export targets, release build, SQLite, 1,000,000 incidents:
#   - global report over every incident (JSON + CSV + XLSX written, recorded)   < 2 s
#   - CSV and XLSX export of every incident, peak memory (max RSS)              < 100 MB
#
#   bench/reports.sh        # COUNT=1000000 RUNS=3 BENCH_DATA=... may be overridden
#
# The dataset is loaded once with `vigia seed incidents` (about 3 minutes for a million) into
# BENCH_DATA and reused by later runs; delete the directory to load it again.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

COUNT="${COUNT:-1000000}"
RUNS="${RUNS:-3}"
DATA="${BENCH_DATA:-$HOME/.cache/vigia-bench-reports/data}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigia-target}"
export VIGIA_LOG__LEVEL="${VIGIA_LOG__LEVEL:-error}"

cargo build --release -p vigia
VIGIA="$CARGO_TARGET_DIR/release/vigia"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [ ! -e "$DATA/seeded-$COUNT" ]; then
    rm -rf "$DATA"
    mkdir -p "$DATA"
    echo "== loading $COUNT synthetic incidents into $DATA (once)"
    "$VIGIA" --data-dir "$DATA" seed incidents --count "$COUNT"
    touch "$DATA/seeded-$COUNT"
fi
"$VIGIA" --data-dir "$DATA" migrate >/dev/null

# The loader spreads incidents over the last 90 days: this period covers all of them.
FROM="$(date -u -d '-120 days' +%Y-%m-%dT00:00:00Z)"
TO="$(date -u -d '+1 day' +%Y-%m-%dT00:00:00Z)"
echo "== global report $FROM .. $TO ($RUNS runs; each rewrites the same report)"
for _ in $(seq "$RUNS"); do
    "$VIGIA" --data-dir "$DATA" report run --from "$FROM" --to "$TO" | head -1
done

for format in csv xlsx; do
    out="$WORK/incidents.$format"
    echo "== export of every incident as $format"
    /usr/bin/time -v "$VIGIA" --data-dir "$DATA" export incidents --format "$format" --output "$out" \
        2>"$WORK/time.$format" | tail -1
    grep -E "Maximum resident set size|Elapsed \(wall clock\)" "$WORK/time.$format" | sed 's/^\s*/   /'
    printf '   file size: %s MB\n' "$(( $(stat -c %s "$out") / 1024 / 1024 ))"
done
