#!/usr/bin/env bash
# Stage 3 of the default model on a lent GPU machine (the device tool), which reaches
# nothing: python -m recipes.pack_for_gpu cuts what it needs into .xfer/p01..pNN (<= 50 MiB each,
# a call carries 64 MiB with the working tree). Carried paths do NOT stay between calls,
# so each call carries one part and copies it out of the tree while the machine is warm
# (it goes back after 30 s idle: make the calls back to back):
#   run(carry=[".xfer/p01"], command="mkdir -p /tmp/parts && cp .xfer/*/bundle.* /tmp/parts/")  ... pNN
# then, from audio (python -m recipes.pack_for_gpu):
#   run(command="bash recipes/gpu_stage3.sh prep 2.5")   # join, unpack, wheels, features (GPU), CTC head
#   run(command="bash recipes/gpu_stage3.sh lm 8")       # stage 3; weights + logs come back in $OUT
# or, LoRA alone on the frozen shipped bridge (python -m recipes.pack_for_gpu --lora; the last part can
# travel in the same call):
#   run(carry=[".xfer/pNN"], command="... && bash recipes/gpu_stage3.sh lora 5 2e-4")
# The device's Python also needs cffi + pycparser wheels for soundfile (pack_for_gpu adds them).
# The source (engine/, recipes/) travels with the working tree, not in the parts.
# State lives in /tmp/w, which stays while the machine is warm; `lm` and `lora` resume from their checkpoint.
set -euo pipefail
W=/tmp/w
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
say() { echo "[$(date +%T)] $*"; }
if [ ! -f $W/unpacked ]; then
  mkdir -p $W/base/pretrained
  cat /tmp/parts/bundle.* | tar -x -C $W
  for t in wheels models corpus cache; do
    if [ -f $W/$t.tar ]; then tar -xf $W/$t.tar -C $W; rm $W/$t.tar; fi
  done
  for m in whisper-base-encoder smollm2.gguf; do  # (lora/, if packed, stays in $W)
    if [ -e $W/$m ]; then mv $W/$m $W/base/pretrained/; fi
  done
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $W/wheels/*.whl
  touch $W/unpacked
  say "unpacked: $(du -sh $W | cut -f1)"
fi
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
case "${1:-prep}" in
  prep)
    python3 -m recipes.stages features --corpus $W/corpus --work $W/base --workers 14 | tail -n 4
    say "features done"
    python3 -m recipes.stages ctc --work $W/base --minutes "${2:-2.5}" --batch-size 32
    say "ctc done" ;;
  lm)
    python3 -m recipes.stages lm --work $W/base --minutes "${2:-8}" --batch-size 64 --dev $W/dev/dev.tsv
    # $OUT takes files of at most 16 MB: the two weight files travel on their own
    cp $W/base/lm/final/bridge.safetensors $W/base/lm/final/lora/adapter_model.safetensors $OUT/
    tar -cf $OUT/result.tar --exclude='*.safetensors' -C $W/base lm/final lm/log.jsonl ctc/log.jsonl ctc/vocab.json
    cp resources/default/ctc_head.safetensors resources/default/ctc_log.jsonl $OUT/
    say "packed" ;;
  lora)
    python3 -m recipes.stages lm --work $W/base --speech-cache $W/speech_cache --init-lora $W/lora \
      --minutes "${2:-5}" --lr "${3:-2e-4}" --batch-size 64 || say "training stopped: $?"
    # $OUT takes 8 files of at most 16 MB: the log, the last adapter and the four best by dev WER
    cp $W/base/lm/log.jsonl $OUT/ || true
    python3 - "$W/base/lm" "$OUT" <<'PY'
import json, shutil, sys
from pathlib import Path
stage, out = Path(sys.argv[1]), Path(sys.argv[2])
snaps = {int(p.stem.split("_")[1]): p for p in (stage / "snapshots").glob("step_*.safetensors")}
log = [json.loads(x) for x in (stage / "log.jsonl").read_text().splitlines() if x.strip()]
ranked = sorted((e["dev_wer"], e["step"]) for e in log if e["step"] in snaps)
keep = {s for _, s in ranked[:4]} | ({max(snaps)} if snaps else set())
for s in sorted(keep):
    shutil.copy2(snaps[s], out / snaps[s].name)
print("brought back", sorted(keep))
PY
    say "packed" ;;
esac
