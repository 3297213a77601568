"""Long recordings: does every sentence come back? Steno against faster-whisper on the same weights.

    .venv/bin/python -m bench.longform [--out data/longform] [--sentences 64] [--seed 1]
        [--models whisper-base whisper-tiny.en steno-default-en] [--beams 1 4]

Builds one recording of several minutes from sentences spoken by two espeak-ng voices in
turn (`resources/rehearsal/general.txt`), joined with pauses of 0.25-1.5 s, so 30-second
window joins fall anywhere. Each installed Steno model transcribes it as `steno transcribe`
does (VAD, windows, guards) at each beam size; for the Whisper models faster-whisper does
too, from the CTranslate2 folder assembled from the same pinned packages (int8, beam 1,
its defaults for long audio). Printed per run: WER and deletions over the whole recording
(engine.text.metrics normalisation), the reference sentences missing entirely (fewer than
half of their words aligned), and the real-time factor with the model loaded.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VOICES = ("en-us", "en-gb+f2")
SR = 16000


def make_recording(out: Path, count: int, seed: int) -> tuple[Path, list[str]]:
    import soundfile as sf
    import soxr

    lines = (ROOT / "resources" / "rehearsal" / "general.txt").read_text(encoding="utf-8").splitlines()
    pool = [s.strip() for s in lines if s.strip() and not s.startswith("#")]
    rng = random.Random(seed)
    sentences = rng.sample(pool, min(count, len(pool)))
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(sentences):
            wav = Path(tmp) / "s.wav"
            subprocess.run(["espeak-ng", "-v", VOICES[i % 2], "-s", "165", "-w", str(wav), text], check=True)
            audio, rate = sf.read(wav, dtype="float32")
            parts += [soxr.resample(audio, rate, SR), np.zeros(int(rng.uniform(0.25, 1.5) * SR), np.float32)]
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"longform-{count}-{seed}.wav"
    sf.write(path, np.concatenate(parts), SR)
    return path, sentences


def score(references: list[str], hypothesis: str) -> dict:
    """WER and deletions over the whole recording, and the sentences that are missing."""
    import jiwer

    from engine.text.metrics import normalize

    words = [normalize(r).split() for r in references]
    owner = [i for i, w in enumerate(words) for _ in w]
    out = jiwer.process_words(" ".join(w for ws in words for w in ws), normalize(hypothesis))
    hits = [0] * len(words)
    for chunk in out.alignments[0]:
        if chunk.type == "equal":
            for k in range(chunk.ref_start_idx, chunk.ref_end_idx):
                hits[owner[k]] += 1
    missing = [i for i, w in enumerate(words) if hits[i] < 0.5 * len(w)]
    return {"wer": out.wer, "deletions": out.deletions, "missing": missing}


def steno_runs(model: str, wav: Path, beams: list[int]):
    from engine.transcriber import Transcriber

    tr = Transcriber(model)
    for beam in beams:
        t0 = time.perf_counter()
        transcript = tr.transcribe(wav, beam_size=beam)
        seconds = time.perf_counter() - t0
        yield f"Steno {model} beam {beam}", " ".join(s.text for s in transcript.segments), seconds


def faster_run(model: str, wav: Path, work: Path):
    from faster_whisper import WhisperModel

    from engine.models.importers.whisper import assemble_ct2_folder

    folder = work / "ct2" / model
    if not folder.is_dir():
        assemble_ct2_folder(model, folder)
    fw = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=2)
    t0 = time.perf_counter()
    segments, _ = fw.transcribe(str(wav), beam_size=1, temperature=0.0, language="en")
    text = " ".join(s.text for s in segments)
    return f"faster-whisper {model} int8 beam 1", text, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "data" / "longform")
    p.add_argument("--sentences", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--models", nargs="+", default=["whisper-base", "whisper-tiny.en", "steno-default-en"])
    p.add_argument("--beams", nargs="+", type=int, default=[1, 4])
    args = p.parse_args()
    wav, references = make_recording(args.out, args.sentences, args.seed)
    import soundfile as sf

    duration = sf.info(wav).duration
    print(f"{wav}: {duration:.0f} s, {len(references)} sentences, voices {', '.join(VOICES)}")
    print("| engine | WER | deletions | sentences missing | RTF |\n|---|---|---|---|---|")
    results = {}
    for model in args.models:
        runs = list(steno_runs(model, wav, args.beams))
        if model.startswith("whisper-"):
            runs.append(faster_run(model, wav, args.out))
        for name, text, seconds in runs:
            s = score(references, text)
            results[name] = {**s, "text": text, "rtf": seconds / duration}
            print(f"| {name} | {100 * s['wer']:.1f}% | {s['deletions']} | {len(s['missing'])} of {len(references)} "
                  f"| {seconds / duration:.3f} |", flush=True)
    (args.out / "results.json").write_text(json.dumps({"references": references, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
