#!/usr/bin/env bash
# The default model's training, stage by stage; every stage resumes where it stopped.
#   bash scripts/train_default.sh [MINUTES_FOR_CTC] [MINUTES_FOR_LM]   (logs in data/*.log)
# Needs scripts/install_voices.sh first (TTS voices, piper, Debian prose).
# On a CPU only, the LM stage is too slow to help: set MINUTES_FOR_LM to 0, and the retrained
# CTC head replaces the shipped bridge under the shipped LoRA instead (session 6's route:
# two corpora with no sentence in common, the head trained on both).
# On a lent GPU use scripts/pack_for_gpu.py + scripts/gpu_stage3.sh instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY -m trainer.corpus --out data/corpus --train 10000 --test 400 --jobs 2
$PY -m trainer.base_recipe features --corpus data/corpus --work data/base --encoder whisper-base --workers 1
$PY -m trainer.corpus --out data/corpus_b --train 16000 --test 100 --seed 1 --jobs 2 \
    --exclude data/dev/dev.tsv data/corpus/test.tsv --avoid data/corpus/train.tsv
mkdir -p data/base_b && ln -sfn ../base/pretrained data/base_b/pretrained
$PY -m trainer.base_recipe features --corpus data/corpus_b --work data/base_b --encoder whisper-base --workers 1
$PY -m trainer.base_recipe ctc --work data/base_b --more data/base --dev-work data/base --minutes "${1:-60}" --no-ship
if [ "${2:-0}" != 0 ]; then
    $PY -m trainer.base_recipe lm --work data/base_b --minutes "$2" --dev data/dev/dev.tsv
    echo "then: $PY -m trainer.base_recipe ship --work data/base_b"
else
    $PY -m trainer.base_recipe swap-head --work data/base_b --beam 4
    echo "compare it with the shipped model on synthetic voices first:"
    echo "  $PY bench/ctc_weight.py --model data/base_b/ctc/assembled/steno-default-en --manifest data/corpus/test.tsv --rows 200:300 --weights 0.7 0.8 --beams 4"
    echo "then: $PY -m trainer.base_recipe ship --work data/base_b --model-dir data/base_b/ctc/model"
fi
