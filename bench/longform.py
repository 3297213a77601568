"""Long recordings: does every sentence come back? Steno against faster-whisper on the same weights.

    .venv/bin/python -m bench.longform [--out data/longform] [--sentences 64] [--seed 1]
        [--ljspeech PATH/LJSpeech-1.1 [--recordings 3] [--seconds 180]]
        [--models whisper-base whisper-tiny.en steno-default-en] [--beams 1 4] [--fw-beams 1 5]

Two sets of recordings of several minutes, sentences joined with pauses of 0.25-1.5 s;
where a 30-second mark falls just ahead, the pause is put on it, so window joins land
between sentences and right beside them:
- synthetic: sentences of `resources/rehearsal/general.txt` spoken by two espeak-ng voices
  in turn (an interview's turns);
- LJSpeech (with `--ljspeech`): real read speech, consecutive clips of the LJSpeech part in
  github:PrernaSocity/lj_speech_dataset_part_1 (commit 328134a60409, 385 clips; fetched,
  never committed), `--recordings` recordings of `--seconds` each, no clip used twice.
Each installed Steno model transcribes them as `steno transcribe` does (VAD, windows,
guards) at each beam size; for the Whisper models faster-whisper does too, from the
CTranslate2 folder assembled from the same pinned packages, with its own defaults (int8,
previous text as prompt, temperature fallback) at beams 1 and 5 (its default). Printed per
set and run: WER and deletions (engine.text.metrics normalisation), the reference sentences
missing entirely (fewer than half of their words aligned), and the
real-time factor with the model loaded. Everything goes to OUT/results.json.
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
LJ_STRIDE = 130  # rows between the real recordings' first clips: no clip is used twice


def espeak_sentences(count: int, seed: int) -> list[tuple[np.ndarray, str]]:
    """Sentences from `resources/rehearsal/general.txt` spoken by two espeak-ng voices in turn."""
    import soundfile as sf
    import soxr

    lines = (ROOT / "resources" / "rehearsal" / "general.txt").read_text(encoding="utf-8").splitlines()
    pool = [s.strip() for s in lines if s.strip() and not s.startswith("#")]
    sentences = random.Random(seed).sample(pool, min(count, len(pool)))
    items = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(sentences):
            wav = Path(tmp) / "s.wav"
            subprocess.run(["espeak-ng", "-v", VOICES[i % 2], "-s", "165", "-w", str(wav), text], check=True)
            audio, rate = sf.read(wav, dtype="float32")
            items.append((soxr.resample(audio, rate, SR), text))
    return items


def ljspeech_clips(folder: Path, first: int, seconds: float) -> list[tuple[np.ndarray, str]]:
    """Consecutive LJSpeech clips (`metadata.csv`, the normalised text) from row `first`
    until `seconds` of speech: real read speech, one speaker, a book's running text."""
    import soundfile as sf
    import soxr

    rows = [line.split("|") for line in (folder / "metadata.csv").read_text(encoding="utf-8").splitlines()]
    items, total = [], 0.0
    for row in rows[first:]:
        audio, rate = sf.read(folder / "wavs" / f"{row[0]}.wav", dtype="float32")
        items.append((soxr.resample(audio, rate, SR), row[-1]))
        total += len(audio) / rate
        if total >= seconds:
            break
    return items


def pause_after(t: float, rng: random.Random, longest: float = 1.5) -> float:
    """A pause of 0.25-`longest` s after speech that ends at `t` s, or, where a 30-second mark
    falls less than 1.5 s ahead, one that reaches it (give or take a few tenths)."""
    mark = (t // 30 + 1) * 30
    pause = mark - t + rng.uniform(-0.2, 0.3) if mark - t < 1.5 else rng.uniform(0.25, longest)
    return min(max(pause, 0.25), 1.5)


def join(items: list[tuple[np.ndarray, str]], seed: int, path: Path) -> tuple[Path, list[str]]:
    """One recording of `items` with pauses of 0.25-1.5 s; where a 30-second mark falls less
    than 1.5 s ahead, the pause is placed on it, so window joins fall between sentences and
    right beside them."""
    import soundfile as sf

    rng = random.Random(seed)
    parts, t = [], 0.0
    for audio, _ in items:
        parts.append(audio)
        t += len(audio) / SR
        pause = pause_after(t, rng)
        parts.append(np.zeros(int(pause * SR), np.float32))
        t += pause
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.concatenate(parts), SR)
    return path, [text for _, text in items]


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
    return {"wer": out.wer, "deletions": out.deletions, "missing": missing, "words": len(owner),
            "errors": out.substitutions + out.deletions + out.insertions}


def steno_runs(model: str, wavs: list[Path], beams: list[int]):
    """(name, one text per recording, seconds) for each beam size, the model loaded once."""
    from engine.transcriber import Transcriber

    tr = Transcriber(model)
    for beam in beams:
        t0 = time.perf_counter()
        texts = [" ".join(s.text for s in tr.transcribe(wav, beam_size=beam).segments) for wav in wavs]
        yield f"Steno {model} beam {beam}", texts, time.perf_counter() - t0


def faster_run(model: str, wavs: list[Path], work: Path, beam: int = 1):
    """faster-whisper on the same weights with its own defaults (int8 on a CPU, previous text
    as prompt, temperature fallback), but for the beam size."""
    from faster_whisper import WhisperModel

    from engine.models.importers.whisper import assemble_ct2_folder

    folder = work / "ct2" / model
    if not folder.is_dir():
        assemble_ct2_folder(model, folder)
    fw = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=2)
    t0 = time.perf_counter()
    texts = []
    for wav in wavs:
        segments, _ = fw.transcribe(str(wav), beam_size=beam, language="en")
        texts.append(" ".join(s.text for s in segments))
    return f"faster-whisper {model} int8 beam {beam}", texts, time.perf_counter() - t0


def recordings(args) -> dict[str, list[tuple[Path, list[str]]]]:
    """The sets of recordings to transcribe: synthetic interview voices, and real read speech
    where an LJSpeech folder is given."""
    sets = {"synthetic": [join(espeak_sentences(args.sentences, args.seed), args.seed,
                               args.out / f"longform-{args.sentences}-{args.seed}.wav")]}
    if args.ljspeech:
        sets["LJSpeech"] = [join(ljspeech_clips(args.ljspeech, first, args.seconds), first,
                                 args.out / f"ljspeech-{first}-{args.seconds:.0f}.wav")
                            for first in range(0, args.recordings * LJ_STRIDE, LJ_STRIDE)]
    return sets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "data" / "longform")
    p.add_argument("--sentences", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ljspeech", type=Path, default=None,
                   help="an LJSpeech-1.1 folder (metadata.csv, wavs/): adds real read speech")
    p.add_argument("--recordings", type=int, default=3, help="real recordings to build")
    p.add_argument("--seconds", type=float, default=180.0, help="length of each real recording")
    p.add_argument("--models", nargs="+", default=["whisper-base", "whisper-tiny.en", "steno-default-en"])
    p.add_argument("--beams", nargs="+", type=int, default=[1, 4])
    p.add_argument("--fw-beams", nargs="+", type=int, default=[1, 5], help="faster-whisper's (5 is its default)")
    args = p.parse_args()
    import soundfile as sf

    sets = recordings(args)
    for name, recs in sets.items():
        minutes = sum(sf.info(wav).duration for wav, _ in recs) / 60
        print(f"{name}: {len(recs)} recording(s), {minutes:.1f} min, {sum(len(r) for _, r in recs)} sentences")
    print("| set | engine | WER | deletions | sentences missing | RTF |\n|---|---|---|---|---|---|")
    results = {}
    for name, recs in sets.items():
        wavs = [wav for wav, _ in recs]
        duration = sum(sf.info(wav).duration for wav in wavs)
        for model in args.models:
            runs = list(steno_runs(model, wavs, args.beams))
            if model.startswith("whisper-"):
                runs += [faster_run(model, wavs, args.out, beam) for beam in args.fw_beams]
            for engine, texts, seconds in runs:
                scores = [score(refs, text) for (_, refs), text in zip(recs, texts)]
                errors, words = sum(s["errors"] for s in scores), sum(s["words"] for s in scores)
                missing = sum(len(s["missing"]) for s in scores)
                results.setdefault(name, {})[engine] = {"scores": scores, "texts": texts, "rtf": seconds / duration}
                print(f"| {name} | {engine} | {100 * errors / words:.1f}% | {sum(s['deletions'] for s in scores)} "
                      f"| {missing} of {sum(len(r) for _, r in recs)} | {seconds / duration:.3f} |", flush=True)
    report = {"sets": {name: [{"wav": str(w), "references": r} for w, r in recs] for name, recs in sets.items()},
              "runs": results}
    (args.out / "results.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
