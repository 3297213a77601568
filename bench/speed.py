"""Speed and memory of one model on one audio file: real-time factor split into
encoder+bridge (ONNX Runtime) and LM decoding, tokens/s and peak memory.

    .venv/bin/python -m bench.speed --model DIR_OR_NAME audio.wav [--device cpu|cuda|auto] [--beam N]

Each device given is measured in the same run, so the figures compare as ratios.
"""

from __future__ import annotations

import argparse
import resource
import time


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(model: str, audio_path: str, device: str, beam: int, repeats: int) -> dict:
    import torch

    from engine.audio import SAMPLE_RATE, load_audio
    from engine.backend import Timing
    from engine.transcriber import Transcriber

    t0 = time.perf_counter()
    tr = Transcriber(model, device=device, beam_size=beam)
    load_s = time.perf_counter() - t0
    audio = load_audio(audio_path)
    tr.transcribe(audio)  # warm-up: first ONNX/torch calls allocate
    tr.timing = Timing()
    start = time.perf_counter()
    for _ in range(repeats):
        transcript = tr.transcribe(audio)
    wall = (time.perf_counter() - start) / repeats
    t = tr.timing
    seconds = len(audio) / SAMPLE_RATE
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {"device": tr.device_text, "audio_s": seconds, "load_s": load_s, "wall_rtf": wall / seconds,
            "encoder_rtf": t.encoder_seconds / max(t.audio_seconds, 1e-9),
            "decoder_rtf": t.decoder_seconds / max(t.audio_seconds, 1e-9),
            "tokens_per_s": t.tokens / max(t.decoder_seconds, 1e-9), "peak_rss_mb": peak_rss_mb(),
            "cuda_peak_mb": cuda_peak, "text": transcript.text[:80]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("audio")
    p.add_argument("--model", default=None)
    p.add_argument("--device", action="append", choices=("auto", "cpu", "cuda"))
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from engine.logs import quiet_libraries

    quiet_libraries()
    devices = args.device or ["cpu"]
    import torch

    if args.device is None and torch.cuda.is_available():
        devices.append("cuda")
    print(f"{'device':58} {'audio s':>7} {'RTF':>6} {'enc RTF':>8} {'dec RTF':>8} {'tok/s':>7} {'peak MB':>8}")
    for device in devices:
        r = measure(args.model, args.audio, device, args.beam, args.repeats)
        print(f"{r['device']:58} {r['audio_s']:7.1f} {r['wall_rtf']:6.3f} {r['encoder_rtf']:8.3f} "
              f"{r['decoder_rtf']:8.3f} {r['tokens_per_s']:7.1f} {r['peak_rss_mb']:8.0f}"
              + (f"  (CUDA peak {r['cuda_peak_mb']:.0f} MB)" if r["cuda_peak_mb"] else ""))
        print(f"  text: {r['text']!r}")


if __name__ == "__main__":
    main()
