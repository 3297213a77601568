"""Imported real speech as corpus folders that stage 1 (features) and stage 2 (the CTC head) read.

    .venv/bin/python -m recipes.real_corpus --real data/real --out data/real_corpus [--choice data/real_choice]

Writes two corpus folders, each with `train.tsv` and `test.tsv` (`audio<TAB>text`, absolute paths):
OUT/native (LJSpeech, the native speakers of the accent archive and FSDD) and OUT/other (the
rest), so a training run can draw native speech more often (`recipes.stages ctc --work
OUT_native_work --repeat-work N --more OUT_other_work`). Only `recipes.real_speech.trainable`
clips are used: the real choice set's speakers never reach training. The accent archive's
speakers all read one paragraph: at most `accent_cap` of them are used (two thirds native), so
the head learns voices, not that text. FSDD's single digits are capped per speaker for the same
reason. OUT/native/test.tsv is an evenly spaced sample of the real choice set (`--choice`), for
the head's dev WER while it trains; the choice set itself is measured with bench.real_choice.
A `teacher` manifest (recipes.teacher) replaces the text of the clips it names, or drops them.
"""

from __future__ import annotations

import random
from pathlib import Path

from recipes.real_speech import read_clips, trainable

ACCENT_CAP = 60        # accent-archive speakers in training (of 520 trainable), all reading one paragraph
FSDD_PER_SPEAKER = 100  # of each FSDD speaker's 500 single-digit clips
SPEECHOCEAN_PER_SPEAKER = 20  # of each speechocean762 speaker's 20 read sentences (all)
DEV_PER_SOURCE = 15     # choice-set clips per source in the dev sample the trainer logs


def capped(rows: list, cap: int, seed: int, native_share: float = 2 / 3) -> list:
    """At most `cap` rows, `native_share` of them native where there are enough, picked at random."""
    rng = random.Random(seed)
    native = [r for r in rows if r[3]]
    other = [r for r in rows if not r[3]]
    rng.shuffle(native)
    rng.shuffle(other)
    take_native = min(len(native), round(cap * native_share))
    picked = native[:take_native] + other[:cap - take_native]
    return sorted(picked, key=lambda r: str(r[0]))


def per_speaker(rows: list, cap: int) -> list:
    """The first `cap` rows of each speaker, in the order of the number that ends a clip's name
    (FSDD's DIGIT_SPEAKER_N: every digit before any digit's second take)."""
    seen: dict[str, int] = {}
    kept = []
    for r in sorted(rows, key=lambda r: (r[2], int(r[0].stem.rsplit("_", 1)[-1]), r[0].stem)):
        if seen.get(r[2], 0) < cap:
            seen[r[2]] = seen.get(r[2], 0) + 1
            kept.append(r)
    return kept


def training_rows(real: Path, accent_cap: int = ACCENT_CAP, fsdd_per_speaker: int = FSDD_PER_SPEAKER,
                  speechocean_per_speaker: int = SPEECHOCEAN_PER_SPEAKER, teacher: dict[str, str | None] | None = None,
                  seed: int = 33) -> list:
    """(audio, text, speaker, native) of every trainable clip of the sources imported under `real`,
    capped as the module says; `teacher` maps a clip's audio path to the text to train on (None: drop it)."""
    rows = []
    for manifest in sorted(real.glob("*/clips.tsv")):
        source = manifest.parent.name
        kept = trainable(source, read_clips(manifest))
        if source == "accent_archive":
            kept = capped(kept, accent_cap, seed)
        elif source == "fsdd":
            kept = per_speaker(kept, fsdd_per_speaker)
        elif source == "speechocean762":
            kept = per_speaker(kept, speechocean_per_speaker)
        rows += kept
    if teacher:
        rows = [(a, teacher.get(str(a), t), s, n) for a, t, s, n in rows]
        rows = [r for r in rows if r[1]]
    return rows


def dev_sample(choice: Path, per_source: int = DEV_PER_SOURCE) -> list[tuple[str, str]]:
    """(audio, text) of `per_source` evenly spaced clips of each choice-set manifest."""
    rows = []
    for tsv in sorted(choice.glob("*.tsv")):
        lines = [line.split("\t")[:2] for line in tsv.read_text(encoding="utf-8").splitlines() if line.strip()]
        step = max(1, len(lines) // per_source)
        rows += [tuple(x) for x in lines[::step][:per_source]]
    return rows


def write_corpora(real: Path, out: Path, choice: Path | None = None, **caps) -> dict[str, int]:
    """OUT/native and OUT/other corpus folders; returns the clips written per folder and split."""
    from engine.files import atomic_write_text

    rows = training_rows(real, **caps)
    counts = {}
    for group, native in (("native", True), ("other", False)):
        folder = out / group
        folder.mkdir(parents=True, exist_ok=True)
        train = [f"{a}\t{t}\n" for a, t, _, n in rows if n == native]
        test = [f"{a}\t{t}\n" for a, t in dev_sample(choice)] if choice and native else []
        atomic_write_text(folder / "train.tsv", "".join(train))
        atomic_write_text(folder / "test.tsv", "".join(test))
        counts[f"{group} train"], counts[f"{group} test"] = len(train), len(test)
    return counts


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", type=Path, default=Path("data/real"), help="where recipes.real_speech imported")
    p.add_argument("--out", type=Path, default=Path("data/real_corpus"))
    p.add_argument("--choice", type=Path, default=None, help="the real choice set (bench.real_choice build --out)")
    p.add_argument("--accent-cap", type=int, default=ACCENT_CAP)
    p.add_argument("--fsdd-per-speaker", type=int, default=FSDD_PER_SPEAKER)
    p.add_argument("--speechocean-per-speaker", type=int, default=SPEECHOCEAN_PER_SPEAKER,
                   help="fewer when the encoder's time is short (stage 1 runs ~5x real time on 2 cores)")
    p.add_argument("--teacher", type=Path, default=None, help="a recipes.teacher decisions.tsv: its text replaces the prompt")
    args = p.parse_args()
    teacher = None
    if args.teacher:
        from recipes.teacher import read_decisions

        teacher = read_decisions(args.teacher)
    counts = write_corpora(args.real, args.out, args.choice, accent_cap=args.accent_cap,
                           fsdd_per_speaker=args.fsdd_per_speaker,
                           speechocean_per_speaker=args.speechocean_per_speaker, teacher=teacher)
    print(", ".join(f"{k}: {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
