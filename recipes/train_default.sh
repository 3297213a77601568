#!/usr/bin/env bash
# The default model's training, stage by stage; every stage resumes where it stopped.
#   bash recipes/train_default.sh [MINUTES_FOR_CTC] [MINUTES_FOR_LM]   (logs in data/*.log)
# Needs recipes/install_voices.sh first (TTS voices, piper, Debian prose).
# On a CPU only, the LM stage is too slow to help: set MINUTES_FOR_LM to 0, and the retrained
# CTC head replaces the shipped bridge under the shipped LoRA instead (three corpora with no
# sentence in common, the head trained on all three).
# On a lent GPU use python -m recipes.pack_for_gpu + recipes/gpu_stage3.sh instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY -m recipes.corpus --out data/corpus --train 10000 --test 400 --jobs 2
$PY -m recipes.stages features --corpus data/corpus --work data/base --encoder whisper-base --workers 1
$PY -m recipes.corpus --out data/corpus_b --train 16000 --test 100 --seed 1 --jobs 2 \
    --exclude data/dev/dev.tsv data/corpus/test.tsv --avoid data/corpus/train.tsv
mkdir -p data/base_b && ln -sfn ../base/pretrained data/base_b/pretrained
$PY -m recipes.stages features --corpus data/corpus_b --work data/base_b --encoder whisper-base --workers 1
$PY -m recipes.corpus --out data/corpus_c --train 16000 --test 100 --seed 2 --jobs 2 \
    --exclude data/dev/dev.tsv data/corpus/test.tsv --avoid data/corpus/train.tsv data/corpus_b/train.tsv
mkdir -p data/base_c && ln -sfn ../base/pretrained data/base_c/pretrained
$PY -m recipes.stages features --corpus data/corpus_c --work data/base_c --encoder whisper-base --workers 1
$PY -m recipes.stages ctc --work data/base_c --more data/base data/base_b --dev-work data/base \
    --lr 3e-4 --minutes "${1:-60}" --no-ship
if [ "${2:-0}" != 0 ]; then
    $PY -m recipes.stages lm --work data/base_c --minutes "$2" --dev data/dev/dev.tsv
    echo "then: $PY -m recipes.stages ship --work data/base_c"
else
    $PY -m recipes.stages swap-head --work data/base_c --beam 4
    echo "compare it with the shipped model on synthetic voices first:"
    echo "  $PY -m bench.ctc_weight --model data/base_c/ctc/assembled/steno-default-en --manifest data/corpus/test.tsv --rows 200:300 --weights 0.7 0.8 --beams 4 --word-penalties 0 2"
    echo "then: $PY -m recipes.stages ship --work data/base_c --model-dir data/base_c/ctc/model"
fi
