"""Pack what stage 3 of the default model needs for a lent GPU machine that reaches nothing.

A device call carries at most 64 MiB (working tree included), so everything travels in
parts, one per call, copied to /tmp/parts there; recipes/gpu_stage3.sh joins them:

    .venv/bin/python -m recipes.pack_for_gpu          # -> .xfer/p01 .. .xfer/pNN (git-ignored)
    .venv/bin/python -m recipes.pack_for_gpu --lora data/speech_cache --part-mb 58   # LoRA on the frozen bridge

With --lora the parts hold the shipped LoRA too, so the two large tracked weight files can be
emptied for the device calls (the working tree then weighs ~2 MB and a part may be 58 MiB);
`git checkout resources/default/model` puts them back.

- audio: the corpus as Ogg/Opus (compression level 0.95, ~19 kbps). Measured on 60 held-out
  clips through the Whisper base encoder and the CTC head: WER 26.0% from FLAC, 26.4% from
  this Opus, 27.9% at level 0.97 (~14 kbps). 930 MB of FLAC become ~130 MB.
- the Whisper base encoder alone, fp16 (its CTranslate2 source is fp16: nothing lost).
- the SmolLM2 GGUF from the pinned package (the dequantised LM is what users run).
- wheels the device's Python lacks or has in other versions (WHEELS).

The source (engine/, recipes/ and the rest of the working tree) is not packed: every device
call carries the working tree itself.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
# the device image has torch and an older transformers; these are what this code is tested with.
# A missing wheel costs a whole device call: check the imports with the wheels alone first
WHEELS = ["soundfile==0.14.0", "jiwer==4.0.0", "rapidfuzz==3.14.6", "gguf==0.19.0", "soxr==1.1.0",
          "transformers==5.24.0", "peft==0.21.2", "regex==2026.11.19", "cffi==2.1.1", "pycparser==3.12",
          "num2words==0.5.14"]  # engine.text.metrics needs it; its docopt is only for its command line


def _opus(args: tuple[str, str]) -> str:
    src, dst = args
    if not Path(dst).exists():
        x, sr = sf.read(src, dtype="float32")
        buf = io.BytesIO()
        sf.write(buf, x, sr, format="OGG", subtype="OPUS", compression_level=0.95)
        tmp = dst + ".tmp"
        Path(tmp).write_bytes(buf.getvalue())
        os.replace(tmp, dst)
    return dst


def opus_corpus(corpus: Path, out: Path, jobs: int) -> None:
    """Mirror corpus/{train,test}.tsv with .opus audio (resumable: done files are kept)."""
    work = []
    for split in ("train", "test"):
        lines = []
        for line in (corpus / f"{split}.tsv").read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rel, rest = line.split("\t", 1)
            new = str(Path(rel).with_suffix(".opus"))
            (out / new).parent.mkdir(parents=True, exist_ok=True)
            work.append((str(corpus / rel), str(out / new)))
            lines.append(f"{new}\t{rest}")
        (out / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with ProcessPoolExecutor(jobs) as pool:
        for i, _ in enumerate(pool.map(_opus, work, chunksize=64)):
            if i % 1000 == 0:
                print(f"opus {i}/{len(work)}", flush=True)


def download_wheels(stage: Path) -> None:
    wheels = stage / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp",
                    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                    "--platform", "manylinux2014_x86_64", "--platform", "any", "-d", str(wheels), *WHEELS], check=True)
    with tarfile.open(stage / "wheels.tar", "w") as tar:
        tar.add(wheels, arcname="wheels")


def write_parts(stage: Path, names: list[str], out: Path, part_mb: int) -> None:
    """One byte stream of the named tars, cut into parts; the device joins them with cat."""
    shutil.rmtree(out, ignore_errors=True)
    with open(stage / "bundle.tar", "wb") as bundle:
        with tarfile.open(fileobj=bundle, mode="w") as tar:
            for name in names:
                tar.add(stage / name, arcname=name)
    n = 0
    with open(stage / "bundle.tar", "rb") as f:
        while chunk := f.read(part_mb << 20):
            n += 1
            (out / f"p{n:02d}").mkdir(parents=True)
            (out / f"p{n:02d}" / f"bundle.{n:02d}").write_bytes(chunk)
    print(f"{n} parts of <= {part_mb} MB in {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=ROOT / "data/corpus")
    p.add_argument("--work", type=Path, default=ROOT / "data/base")
    p.add_argument("--out", type=Path, default=ROOT / ".xfer")
    p.add_argument("--part-mb", type=int, default=48)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--audio-only", action="store_true")
    p.add_argument("--lora", type=Path, default=None, metavar="SPEECH_CACHE",
                   help="pack for LoRA on the frozen shipped bridge instead: this speech cache "
                        "(recipes.stages cache), the GGUF and the wheels; no audio, no encoder")
    args = p.parse_args()
    stage = ROOT / "data/xfer_stage"
    from engine.models.importers.smollm2 import gguf_path

    if args.lora:
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        with tarfile.open(stage / "cache.tar", "w") as tar:
            for name in ("train.npz", "test.npz"):
                tar.add(args.lora / name, arcname=f"speech_cache/{name}")
        with tarfile.open(stage / "models.tar", "w") as tar:
            tar.add(gguf_path(), arcname="smollm2.gguf")
            tar.add(ROOT / "resources/default/model/lora", arcname="lora")  # the warm start
        download_wheels(stage)
        write_parts(stage, ["wheels.tar", "models.tar", "cache.tar"], args.out, args.part_mb)
        return
    opus_dir = ROOT / "data/corpus_opus"
    opus_corpus(args.corpus, opus_dir, args.jobs)
    if args.audio_only:
        return
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    with tarfile.open(stage / "corpus.tar", "w") as tar:
        tar.add(opus_dir, arcname="corpus")
        tar.add(ROOT / "data/dev", arcname="dev")
    from transformers import WhisperForConditionalGeneration

    whisper = WhisperForConditionalGeneration.from_pretrained(args.work / "pretrained/whisper-base")
    whisper.model.encoder.half().save_pretrained(stage / "whisper-base-encoder")
    with tarfile.open(stage / "models.tar", "w") as tar:
        tar.add(stage / "whisper-base-encoder", arcname="whisper-base-encoder")
        tar.add(gguf_path(), arcname="smollm2.gguf")
    download_wheels(stage)
    write_parts(stage, ["wheels.tar", "models.tar", "corpus.tar"], args.out, args.part_mb)


if __name__ == "__main__":
    main()
