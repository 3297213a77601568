#!/usr/bin/env bash
# The sentences of corpora 2-8 (data/corpusN/{train,test}.sentences.txt), as their builds drew
# them, without speaking: on a machine whose data/ is empty, a new corpus can still --avoid the
# sentences the shipped head trained on, and a test split can be rebuilt with its old --exclude.
# Needs data/dev/dev.tsv (python -m bench.devset) and the prose packages (recipes/install_voices.sh).
# Each corpus's options are the ones that built it (docs/model_history.md); a few seconds each.
set -euo pipefail
cd "$(dirname "$0")/.."
plan() { .venv/bin/python -m recipes.corpus --sentences-only "$@"; }
D=data/dev/dev.tsv
# a missing --exclude file is skipped silently and would draw other sentences: stop instead
[ -f "$D" ] || { echo "$D is missing: run .venv/bin/python -m bench.devset first" >&2; exit 1; }
S() { for c in "$@"; do printf 'data/corpus%s/train.sentences.txt ' "$c"; done; }
plan --out data/corpus2 --train 10000 --test 400 --seed 0 --exclude $D
plan --out data/corpus3 --train 16000 --test 100 --seed 1 --exclude $D data/corpus2/test.sentences.txt --avoid $(S 2)
plan --out data/corpus4 --train 16000 --test 100 --seed 2 --exclude $D data/corpus2/test.sentences.txt --avoid $(S 2 3)
plan --out data/corpus5 --train 16000 --test 100 --seed 3 --exclude $D data/corpus2/test.sentences.txt --avoid $(S 2 3 4)
plan --out data/corpus6 --train 16000 --test 100 --seed 4 --exclude $D data/corpus2/test.sentences.txt --avoid $(S 2 3 4 5)
plan --out data/corpus7 --train 6000 --test 100 --seed 5 --exclude $D data/corpus2/test.sentences.txt --avoid $(S 2 3 4 5 6)
plan --out data/corpus8 --train 6000 --test 100 --seed 8 --exclude $D data/corpus2/test.sentences.txt \
    data/corpus7/test.sentences.txt --avoid $(S 2 3 4 5 6 7)
wc -l data/corpus[2-8]/*.sentences.txt
