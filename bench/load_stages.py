"""Resident memory and its peak after each step of loading a model and transcribing a clip,
in one fresh process: where a model's memory goes.

    STENO_HOME=/tmp/sh .venv/bin/python -m bench.load_stages MODEL CLIP

Figures are MB from /proc/self/status (VmRSS, VmHWM), with seconds since start.
"""

from __future__ import annotations

import argparse
import re
import time

START = time.perf_counter()


def memory_mb() -> tuple[int, int]:
    status = open("/proc/self/status").read()
    return tuple(int(re.search(rf"{key}:\s+(\d+)", status).group(1)) // 1024 for key in ("VmRSS", "VmHWM"))


def say(step: str) -> None:
    rss, peak = memory_mb()
    print(f"{time.perf_counter() - START:6.2f} s  {rss:5d} MB  peak {peak:5d} MB  {step}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("clip")
    args = p.parse_args()
    import numpy as np  # noqa: F401
    import onnxruntime  # noqa: F401
    import torch  # noqa: F401

    say("numpy, torch, ONNX Runtime imported")
    from engine.transcriber import Transcriber

    transcriber = Transcriber(args.model, device="cpu")
    say("model loaded")
    say(f"transcribed: {transcriber.transcribe(args.clip).text}")
    transcriber.transcribe(args.clip)
    say("transcribed again")


if __name__ == "__main__":
    main()
