#!/usr/bin/env bash
# Runs Vigía's full test suite on a Debian machine with PostgreSQL and Mosquitto installed:
# starts the services if they are down, prepares a Python venv with the S3 (moto) and SMTP
# (aiosmtpd) test servers and schemathesis, then runs every test in the workspace and fuzzes
# the live API against its OpenAPI document (scripts/schemathesis.sh).
#
#   scripts/test.sh                      # the whole suite (nextest if installed, plus doctests)
#   scripts/test.sh -p vigia-store --test s3   # extra arguments go to the test runner instead
#   scripts/test.sh --browser [FILES]    # only the web UI's browser tests (scripts/browser-tests.sh)
#
# Idempotent: services already up and a venv already prepared are left as they are.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nerror: %s\n' "$*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# --- PostgreSQL -------------------------------------------------------------------------
step "PostgreSQL on 127.0.0.1:5432"
command -v pg_isready >/dev/null || fail "pg_isready not found: install PostgreSQL (apt-get install postgresql)"
if pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "already running"
else
    [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql)" ] \
        || fail "no PostgreSQL cluster under /etc/postgresql: install PostgreSQL (apt-get install postgresql)"
    for version in $(ls /etc/postgresql); do
        echo "starting cluster $version/main"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 1 60); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 0.5
    done
    pg_isready -h 127.0.0.1 -p 5432 || fail "PostgreSQL did not become ready within 30 s (see /var/log/postgresql/)"
fi

# --- Mosquitto --------------------------------------------------------------------------
step "Mosquitto on 127.0.0.1:1883"
if port_open 127.0.0.1 1883; then
    echo "already running"
else
    if ! command -v mosquitto >/dev/null; then
        echo "mosquitto not installed: installing it with apt-get"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null \
            || fail "cannot install mosquitto"
    fi
    mosquitto -d -c /etc/mosquitto/mosquitto.conf || fail "mosquitto did not start (see /var/log/mosquitto/)"
    for _ in $(seq 1 40); do
        port_open 127.0.0.1 1883 && break
        sleep 0.25
    done
    port_open 127.0.0.1 1883 || fail "Mosquitto did not listen on 127.0.0.1:1883 within 10 s"
    echo "started"
fi

# --- openssl (the TLS e-mail tests make a test CA and certificate with it) ---------------
step "openssl"
if command -v openssl >/dev/null; then
    echo "already installed"
else
    echo "openssl not installed: installing it with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null \
        || fail "cannot install openssl"
fi

# --- Python test servers (moto for S3, aiosmtpd for SMTP) ---------------------------------
VENV="$HOME/.cache/vigia-venv"
step "Python test servers in $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    PYTHON="$(command -v python3 || true)"
    [ -n "$PYTHON" ] || fail "python3 not found"
    mkdir -p "$(dirname "$VENV")"
    if ! "$PYTHON" -m venv "$VENV"; then
        rm -rf "$VENV"
        echo "python3 -m venv failed: installing python3-venv with apt-get"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
            || fail "cannot install python3-venv"
        "$PYTHON" -m venv "$VENV" || fail "cannot create the venv $VENV"
    fi
fi
if [ -x "$VENV/bin/moto_server" ] && "$VENV/bin/python" -c 'import moto, flask, flask_cors, aiosmtpd' 2>/dev/null; then
    echo "moto[server] and aiosmtpd already installed"
else
    echo "installing moto[server] and aiosmtpd"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'moto[server]' aiosmtpd \
        || fail "pip install 'moto[server]' aiosmtpd failed"
    [ -x "$VENV/bin/moto_server" ] || fail "moto_server missing from $VENV/bin after installing moto[server]"
fi

if "$VENV/bin/python" -c 'import schemathesis' 2>/dev/null; then
    echo "schemathesis already installed"
else
    echo "installing schemathesis (scripts/schemathesis.sh fuzzes the live API with it)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'schemathesis==4.32.5' \
        || fail "pip install schemathesis failed"
fi

# --- Media: FFmpeg, dlib, the face models and test images (registries only) -------------
step "Media pipeline prerequisites (scripts/media-setup.sh)"
VIGIA_SETUP_PYTHON="$VENV/bin/python" scripts/media-setup.sh || fail "scripts/media-setup.sh failed"

# --- Test environment -------------------------------------------------------------------
export VIGIA_TEST_MOTO="$VENV/bin/moto_server"
# The Python with aiosmtpd: the notification tests start a real SMTP server with it.
export VIGIA_TEST_PYTHON="$VENV/bin/python"
export VIGIA_TEST_DATABASE_URL="${VIGIA_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# Dummy credentials for the local moto S3 server (object_store reads them from the environment).
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigia-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"

step "Environment"
echo "VIGIA_TEST_DATABASE_URL=$VIGIA_TEST_DATABASE_URL"
echo "VIGIA_TEST_MOTO=$VIGIA_TEST_MOTO"
echo "VIGIA_TEST_PYTHON=$VIGIA_TEST_PYTHON"
echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"

# --- Tests ------------------------------------------------------------------------------
if [ "${1:-}" = "--browser" ]; then
    shift
    exec scripts/browser-tests.sh "$@"
fi

# Under CI, run every test even after a failure, so one run shows all of them.
FAIL_FAST=()
[ "${CI:-}" = "true" ] && FAIL_FAST=(--no-fail-fast)

if cargo nextest --version >/dev/null 2>&1; then
    if [ "$#" -gt 0 ]; then
        step "cargo nextest run $*"
        cargo nextest run "$@"
    else
        # Doctests first, so the run closes on nextest's summary (the doctests are few).
        step "cargo test --workspace --doc"
        cargo test --workspace --doc "${FAIL_FAST[@]}"
        step "cargo nextest run --workspace --all-targets"
        cargo nextest run --workspace --all-targets "${FAIL_FAST[@]}"
    fi
else
    if [ "$#" -gt 0 ]; then
        step "cargo test $*"
        cargo test "$@"
    else
        step "cargo test --workspace --doc"
        cargo test --workspace --doc "${FAIL_FAST[@]}"
        step "cargo test --workspace --all-targets"
        cargo test --workspace --all-targets "${FAIL_FAST[@]}"
    fi
fi

# The web UI in a real browser (Chromium + playwright-core from npm).
if [ "$#" -eq 0 ]; then
    step "scripts/browser-tests.sh"
    scripts/browser-tests.sh
fi

# The whole suite ends with the API fuzzed against its own OpenAPI document, every check on,
# for a bounded time (ST_MAX_TIME, 300 s by default, cut off at that plus 60 s): any failure
# it reports fails the run.
if [ "$#" -eq 0 ]; then
    step "scripts/schemathesis.sh"
    VENV="$VENV" scripts/schemathesis.sh \
        || fail "schemathesis reported failures (see above; ST_SEED=<its seed> scripts/schemathesis.sh replays the run)"
fi

step "all tests passed"
