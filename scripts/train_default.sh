#!/usr/bin/env bash
# The default model's training, stage by stage; every stage resumes where it stopped.
#   bash scripts/train_default.sh [MINUTES_FOR_CTC] [MINUTES_FOR_LM]   (logs in data/*.log)
# On a lent GPU use scripts/pack_for_gpu.py + scripts/gpu_stage3.sh instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY -m trainer.corpus --out data/corpus --train 12000 --test 400 --jobs 2
$PY -m trainer.base_recipe features --corpus data/corpus --work data/base --encoder whisper-base
$PY -m trainer.base_recipe ctc --work data/base --minutes "${1:-120}"
$PY -m trainer.base_recipe lm --work data/base --minutes "${2:-240}" --dev data/dev/dev.tsv
