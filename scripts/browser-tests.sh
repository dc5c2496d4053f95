#!/usr/bin/env bash
# The web UI's browser tests: Debian's Chromium driven by playwright-core (npm, tests/browser)
# against a real `vigia serve --demo` on a temporary data directory and port, on SQLite and,
# for the main flow, on PostgreSQL ($VIGIA_TEST_DATABASE_URL, set by scripts/test.sh).
#
#   scripts/browser-tests.sh              # build the debug binary, run every browser test
#   VIGIA_BIN=target/release/vigia scripts/browser-tests.sh tests/reporter.test.mjs
#
# Screenshots of every page (phone 360 px and desktop) go to tests/browser/screenshots/
# (not committed). Node.js is needed for the tests only; the UI itself needs none.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

step "Chromium and Node.js"
if [ ! -x /usr/bin/chromium ]; then
    echo "chromium not installed: installing chromium and chromium-driver with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
        || fail "cannot install chromium"
fi
if ! command -v npm >/dev/null; then
    echo "npm not installed: installing nodejs and npm with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null \
        || fail "cannot install nodejs and npm"
fi
/usr/bin/chromium --version 2>/dev/null || true

step "npm ci (tests/browser)"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci failed in tests/browser"

if [ -z "${VIGIA_BIN:-}" ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigia-target}"
    step "cargo build -p vigia (debug)"
    cargo build -p vigia --bin vigia
    export VIGIA_BIN="$CARGO_TARGET_DIR/debug/vigia"
fi
[ -x "$VIGIA_BIN" ] || fail "no vigia binary at $VIGIA_BIN"
export VIGIA_BIN

step "browser tests ($VIGIA_BIN)"
cd tests/browser
if [ "$#" -gt 0 ]; then
    node --test --test-concurrency=1 --test-reporter=spec "$@"
else
    node --test --test-concurrency=1 --test-reporter=spec tests/
fi
echo "screenshots: $(pwd)/screenshots"
