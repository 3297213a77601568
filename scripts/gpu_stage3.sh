#!/usr/bin/env bash
# Stage 1-3 of the default model on a lent GPU machine (the device tool), which reaches
# nothing: scripts/pack_for_gpu.py cuts what it needs into .xfer/p01..pNN (<= 50 MiB each,
# a call carries 64 MiB with the working tree). Carried paths do NOT stay between calls,
# so each call carries one part and copies it out of the tree while the machine is warm
# (it goes back after 30 s idle: make the calls back to back):
#   run(carry=[".xfer/p01"], command="mkdir -p /tmp/parts && cp .xfer/*/bundle.* /tmp/parts/")  ... pNN
#   run(command="bash scripts/gpu_stage3.sh prep 2.5")   # join, unpack, wheels, features (GPU), CTC head
#   run(command="bash scripts/gpu_stage3.sh lm 8")       # stage 3; weights + logs come back in $OUT
# The device's Python also needs cffi + pycparser wheels for soundfile (pack_for_gpu.py adds them).
# State lives in /tmp/w, which stays while the machine is warm; `lm` resumes from its checkpoint.
set -euo pipefail
W=/tmp/w
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
say() { echo "[$(date +%T)] $*"; }
if [ ! -f $W/unpacked ]; then
  mkdir -p $W/base/pretrained
  cat /tmp/parts/bundle.* | tar -x -C $W
  for t in wheels models corpus; do tar -xf $W/$t.tar -C $W; rm $W/$t.tar; done
  mv $W/whisper-base-encoder $W/smollm2.gguf $W/base/pretrained/
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $W/wheels/*.whl
  touch $W/unpacked
  say "unpacked: $(du -sh $W | cut -f1)"
fi
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
case "${1:-prep}" in
  prep)
    python3 -m trainer.base_recipe features --corpus $W/corpus --work $W/base --workers 14 | tail -n 4
    say "features done"
    python3 -m trainer.base_recipe ctc --work $W/base --minutes "${2:-2.5}" --batch-size 32
    say "ctc done" ;;
  lm)
    python3 -m trainer.base_recipe lm --work $W/base --minutes "${2:-8}" --batch-size 64 --dev $W/dev/dev.tsv
    # $OUT takes files of at most 16 MB: the two weight files travel on their own
    cp $W/base/lm/final/bridge.safetensors $W/base/lm/final/lora/adapter_model.safetensors $OUT/
    tar -cf $OUT/result.tar --exclude='*.safetensors' -C $W/base lm/final lm/log.jsonl ctc/log.jsonl ctc/vocab.json
    cp resources/default/ctc_head.safetensors resources/default/ctc_log.jsonl $OUT/
    say "packed" ;;
esac
