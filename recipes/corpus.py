"""The synthetic speech corpus: our sentences spoken by many TTS voices, then roughened.

    .venv/bin/python -m recipes.corpus --out data/corpus --train 9000 --test 400 [--jobs 2]

The voices, their speaking and the augmentation are trainer/voices.py's (the trainer speaks
with them too). A few voices and a separate set of sentences are kept out of training for
the synthetic test set, and no sentence shares five words in a row with the rehearsal
sentences or a real-speech evaluation set (`--exclude`). Every training clip and half the
test clips are augmented (reverberation, telephone band, noise, gain), so that the model
learns speech rather than the voices.
Output: `train.tsv`/`test.tsv` (audio<TAB>text, as `steno eval` reads) and 16 kHz FLACs.
Resumable: files already written are skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from trainer.voices import (
    ENGINE_SHARE,
    KOKORO_TEST_STYLE,
    SR,
    Voice,
    all_voices,
    augment,
    available,
    by_engine,
    pick_voice,
    synthesize,
)

# Never used for training: the synthetic test set's voices.
TEST_VOICES = {"espeak:en-gb-scotland+f2", "espeak:en-029+m3", "espeak:en-us-nyc+f4", "espeak:en+m6",
               "mbrola:mb-us2", "flite:rms", "festival:rab_diphone", "pico:en-GB", "rhvoice:clb",
               f"kokoro:{KOKORO_TEST_STYLE}"}


def _make_one(job: tuple[str, str, str, int, bool]) -> tuple[str, str, str] | None:
    path, text, voice_id, seed, do_augment = job
    out = Path(path)
    if out.exists():
        return path, text, voice_id
    engine, name = voice_id.split(":", 1)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            audio = synthesize(Voice(engine, name), text, rng, Path(tmp))
        except (subprocess.SubprocessError, OSError, RuntimeError):
            return None
    if len(audio) < SR // 4 or len(audio) > 30 * SR:
        return None
    if do_augment:
        audio, _ = augment(audio, np.random.default_rng(seed))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".tmp.flac")
    sf.write(tmp_out, audio, SR, subtype="PCM_16")
    tmp_out.rename(out)
    return path, text, voice_id


def manifest_texts(paths: list[Path]) -> list[str]:
    """The sentences of manifests (audio<TAB>text[<TAB>...]) or plain text files that exist."""
    texts = []
    for path in paths:
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                texts.append(line.split("\t")[1] if "\t" in line else line)
    return texts


def exclusion_texts(paths: list[Path]) -> list[str]:
    """Sentences the corpus must not contain: the rehearsal text and every given manifest
    (audio<TAB>text) or plain text file that exists."""
    from trainer.rehearsal import sentences as rehearsal_sentences

    return rehearsal_sentences() + manifest_texts(paths)


def build(out: Path, n_train: int, n_test: int, jobs: int = 2, seed: int = 0, progress=None,
          exclude: list[Path] | None = None, avoid: list[Path] | None = None,
          share: dict[str, float] | None = None, written_only: bool = False,
          sentences_only: bool = False) -> None:
    """`exclude`: manifests whose sentences (and their 5-grams) stay out; `avoid`: manifests
    whose exact sentences are not drawn again (a second corpus beside a first); `share`:
    engine weights that replace ENGINE_SHARE's. `written_only`: speak nothing, write the
    manifests of the clips already on disk (a build stopped early becomes usable; running
    the build again still finishes it). `sentences_only`: speak nothing, write the sentences
    each split would get (`train.sentences.txt`, `test.sentences.txt`), so that a corpus whose
    files are lost can still be avoided or excluded by a later one."""
    from recipes.sentences import build_sentences

    out.mkdir(parents=True, exist_ok=True)
    sentences = build_sentences(n_train + n_test, seed=seed, exclude=exclusion_texts(exclude or []),
                                avoid=set(manifest_texts(avoid or [])))
    rng = random.Random(seed)
    rng.shuffle(sentences)
    test_sents, train_sents = sentences[:n_test], sentences[n_test:]
    if sentences_only:  # needs no voice: none is probed
        _write_lines(out / "test.sentences.txt", test_sents)
        _write_lines(out / "train.sentences.txt", train_sents)
        return
    voices = [v for v in all_voices() if available(v)]
    train_voices = [v.id for v in voices if v.id not in TEST_VOICES]
    test_voices = [v.id for v in voices if v.id in TEST_VOICES]
    shares = {**ENGINE_SHARE, **(share or {})}
    plan = []
    for split, sents, vs in (("test", test_sents, test_voices), ("train", train_sents, train_voices)):
        groups = by_engine(vs)
        for i, text in enumerate(sents):
            voice = pick_voice(groups, rng, shares)
            key = hashlib.sha1(f"{split}{i}{text}{voice}".encode()).hexdigest()[:12]
            plan.append((split, (str(out / split / key[:2] / f"{key}.flac"), text, voice, seed * 1_000_003 + i,
                                 split == "train" or rng.random() < 0.5)))
    if written_only:
        for split in ("test", "train"):
            _write_manifest(out, split, [p[:3] for s, p in plan if s == split and Path(p[0]).is_file()])
        if progress:
            progress(1.0)
        return
    done = 0
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for split in ("test", "train"):  # each manifest is written once its split is spoken: test first
            items = []
            for result in pool.map(_make_one, [p for s, p in plan if s == split], chunksize=8):
                if result is not None:
                    items.append(result)
                done += 1
                if progress:
                    progress(done / len(plan))
            _write_manifest(out, split, items)


def _write_manifest(out: Path, split: str, items: list[tuple[str, str, str]]) -> None:
    """`split`.tsv (audio path relative to `out`, text, voice), through a temp file."""
    _write_lines(out / f"{split}.tsv", [f"{Path(p).relative_to(out).as_posix()}\t{t}\t{v}" for p, t, v in items])


def _write_lines(path: Path, lines: list[str]) -> None:
    """One line each, through a temp file, so a killed build leaves no half-written list."""
    temp = path.with_name(path.name + ".tmp")
    temp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temp.replace(path)


def engine_share(arg: str) -> tuple[str, float]:
    """`kokoro=0.5` -> ("kokoro", 0.5), for --share."""
    engine, _, weight = arg.partition("=")
    if engine not in ENGINE_SHARE or not weight:
        raise argparse.ArgumentTypeError(f"{arg!r}: write ENGINE=WEIGHT, ENGINE one of {', '.join(ENGINE_SHARE)}")
    try:
        value = float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{arg!r}: the weight must be a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{arg!r}: the weight must not be negative")
    return engine, value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("data/corpus"))
    p.add_argument("--train", type=int, default=9000)
    p.add_argument("--test", type=int, default=400)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exclude", type=Path, nargs="*", default=[Path("data/dev/dev.tsv")],
                   help="evaluation manifests or text files whose sentences must stay out (default: data/dev/dev.tsv)")
    p.add_argument("--avoid", type=Path, nargs="*", default=[],
                   help="manifests of another corpus whose sentences are not drawn again")
    p.add_argument("--share", nargs="*", default=[], metavar="ENGINE=WEIGHT", type=engine_share,
                   help=f"how often an engine speaks, replacing the default ({ENGINE_SHARE})")
    p.add_argument("--written-only", action="store_true",
                   help="speak nothing: write the manifests of the clips already spoken (same other options)")
    p.add_argument("--sentences-only", action="store_true",
                   help="speak nothing: write the sentences each split would get (same other options)")
    args = p.parse_args()
    from tqdm import tqdm

    bar = tqdm(total=1000, desc="corpus")
    last = [0]

    def progress(f):
        n = int(f * 1000)
        bar.update(n - last[0])
        last[0] = n

    build(args.out, args.train, args.test, args.jobs, args.seed, progress, exclude=args.exclude, avoid=args.avoid,
          share=dict(args.share), written_only=args.written_only, sentences_only=args.sentences_only)
    bar.close()


if __name__ == "__main__":
    main()
