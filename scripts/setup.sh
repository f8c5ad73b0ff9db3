#!/usr/bin/env bash
# Sets up hmrkit in ./.venv: system libraries for headless rendering and video, CPU torch,
# the package with its extras, and Anny's model cache. Idempotent: a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.hmrkit-setup

say() { printf '[setup] %s\n' "$*"; }

# 1. System libraries (Debian/Ubuntu): OSMesa for headless rendering, ffmpeg for video,
#    chromium for the browser tests (hmrkit view's page, headless, WebGL in software).
need_apt=()
dpkg -s libosmesa6 >/dev/null 2>&1 || need_apt+=(libosmesa6)
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO=sudo
        say "installing ${need_apt[*]} (apt-get)"
        $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
    else
        say "warning: please install ${need_apt[*]} with your system's package manager (needed for rendering/video)"
    fi
fi

# 2. Virtual environment.
[ -x $VENV/bin/python ] || { say "creating $VENV"; $PY -m venv $VENV; }
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"

# 3. Python packages, re-installed only when pyproject.toml or this script changed.
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f $STAMP ] || [ "$(cat $STAMP)" != "$want" ]; then
    # CPU torch first, so nothing below pulls the CUDA build: the local 2.13.0 CPU wheel
    # where it exists, else PyTorch's CPU index, else whatever pip finds.
    if ! $VENV/bin/python -c "import torch" >/dev/null 2>&1; then
        say "installing torch (CPU)"
        $PIP install torch==2.13.0 2>/dev/null \
            || $PIP install torch --index-url https://download.pytorch.org/whl/cpu 2>/dev/null \
            || $PIP install torch
    fi
    say "installing hmrkit and its extras"
    $PIP install -e ".[all,test]"
    echo "$want" > $STAMP
fi

# 4. Anny builds its model cache on first load (about a minute, once).
if [ ! -f "$HOME/.cache/anny/.hmrkit-warm" ]; then
    say "building Anny's model cache (about a minute, once)"
    WARP_LOG_LEVEL=error $VENV/bin/python -c "import hmrkit.body as b; b.load('anny')" >/dev/null
    mkdir -p "$HOME/.cache/anny" && touch "$HOME/.cache/anny/.hmrkit-warm"
fi
# 5. three.js (from the npm registry, no node needed) for the browser test of the animated glTF.
if [ ! -f $VENV/share/three/.hmrkit-version ]; then
    say "fetching three.js for the browser tests"
    $VENV/bin/python scripts/fetch_threejs.py --dest $VENV/share/three || say "warning: could not fetch three.js (its browser test will skip)"
fi
say "ready"
