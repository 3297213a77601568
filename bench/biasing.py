"""A word list used while decoding (issue 29): term recall on new sentences in voices no
adapter heard, what an irrelevant list costs general speech, rare names in real speech,
and what a 1,000-term list costs in speed.

    python -m bench.biasing make-data --out /tmp/biasing      # espeak-ng; never goes into git
    python -m bench.biasing run --data /tmp/biasing --lj /tmp/data/LJSpeech-1.1 \\
        --models whisper-base --modes none prompt bias both
    python -m bench.biasing speed --data /tmp/biasing --modes both bias    # 1,000 terms / none
    steno train --words /tmp/biasing/words.txt --base whisper-base --out /tmp/drugs12   # the list-trained adapter
    python -m bench.biasing run --data /tmp/biasing --models whisper-base --adapter /tmp/drugs12 --modes none both

Sets (made by make-data): 12 drug names in 24 new sentences, each spoken by the held-out
voices en-gb+f2 and en-us-nyc (the "clinical" clips); 24 general sentences by the same voices
(the drug list is irrelevant there). With `--lj`: LJSpeech clips holding rare proper names
(mid-sentence capitalised words with a wordfreq Zipf frequency under 3), the names as the
list; nothing here trains on LJSpeech. Modes are the Transcriber's `hint_mode`s, "none"
meaning no list. The 1,000-term list is the 12 drugs plus 988 rare English words.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

DRUGS12 = ["amlodipine", "metoprolol", "lisinopril", "atorvastatin", "apixaban", "rivaroxaban", "clopidogrel",
           "bisoprolol", "sertraline", "quetiapine", "levothyroxine", "prednisolone"]
VOICES = [("en-gb+f2", 0), ("en-us-nyc", 0)]


def make_data(args) -> None:
    import random

    from bench.adaptation import GENERAL, TEST_TEMPLATES, speak

    rng = random.Random(args.seed)
    texts = []
    for i in range(24):
        d = DRUGS12[i % len(DRUGS12)]
        e = rng.choice([x for x in DRUGS12 if x != d])
        s = TEST_TEMPLATES[i % len(TEST_TEMPLATES)].format(d=d, e=e)
        texts.append(s[0].upper() + s[1:] + ".")
    for name, sents in (("clinical", texts), ("general", GENERAL[:24])):
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        for v, (voice, pitch) in enumerate(VOICES):
            for i, text in enumerate(sents):
                stem = folder / f"{v}-{i:02d}"
                if speak(text, stem.with_suffix(".wav"), voice, pitch, 165):
                    stem.with_suffix(".txt").write_text(text + "\n")
    (args.out / "words.txt").write_text("\n".join(DRUGS12) + "\n")
    print(f"{args.out}: {len(list((args.out / 'clinical').glob('*.wav')))} clinical and "
          f"{len(list((args.out / 'general').glob('*.wav')))} general clips")


def pairs(folder: Path) -> list[tuple[Path, str]]:
    return [(w, w.with_suffix(".txt").read_text().strip()) for w in sorted(folder.glob("*.wav"))
            if w.with_suffix(".txt").is_file()]


def lj_names(lj: Path, clips: int) -> tuple[list[tuple[Path, str]], list[str]]:
    """The first `clips` LJSpeech clips that say a rare proper name, and those names."""
    from wordfreq import zipf_frequency

    out, names = [], []
    for line in (lj / "metadata.csv").read_text(encoding="utf-8").splitlines():
        key, _, text = line.split("|")
        wav = lj / "wavs" / f"{key}.wav"
        if not wav.is_file():
            continue
        found = [w for w in re.findall(r"(?<=[a-z,;] )[A-Z][a-z]+", text) if zipf_frequency(w, "en") < 3.0]
        if found:
            out.append((wav, text))
            names += [w for w in found if w not in names]
        if len(out) == clips:
            break
    return out, names


def rare_words(n: int) -> list[str]:
    """`n` rare English words (Zipf 1.5-2.5, letters only, 7+ long), the same every run."""
    from wordfreq import get_frequency_dict, zipf_frequency

    words = sorted(w for w in get_frequency_dict("en", "large") if w.isalpha() and w.isascii() and len(w) >= 7
                   and 1.5 <= zipf_frequency(w, "en") <= 2.5)
    step = max(1, len(words) // n)
    return words[::step][:n]


NO_TERM_PASS = ":no-term-pass"


def mode_label(text: str) -> str:
    """A `--modes` entry: "none", a hint mode, or a hint mode + NO_TERM_PASS ("both:no-term-pass")."""
    from engine.decoding.hints import HINT_MODES

    mode = text.removesuffix(NO_TERM_PASS)
    if mode not in HINT_MODES and text != "none":
        raise argparse.ArgumentTypeError(f"{text}: not none or one of {', '.join(HINT_MODES)} (optionally + {NO_TERM_PASS})")
    return text


def use_mode(tr, label: str, term_pass: bool) -> str:
    """Sets `tr` up for the `--modes` entry `label`; returns its hint mode ("none": no list)."""
    mode = label.removesuffix(NO_TERM_PASS)
    tr.term_pass = term_pass and not label.endswith(NO_TERM_PASS)
    if mode != "none":
        tr.hint_mode = mode
    return mode


def transcribe(tr, clips, terms, beam):
    return [tr.transcribe(str(p), hints=terms, beam_size=beam).text for p, _ in clips]


def run(args) -> None:
    from engine.models.registry import resolve_model
    from engine.text.metrics import error_rates, term_recall
    from engine.transcriber import Transcriber

    drugs = (args.data / "words.txt").read_text().split()
    clinical, general = pairs(args.data / "clinical"), pairs(args.data / "general")
    if args.voice is not None:
        clinical, general = ([c for c in s if c[0].name.startswith(f"{args.voice}-")] for s in (clinical, general))
    if args.limit:
        clinical, general = clinical[:args.limit], general[:args.limit]
    lj, names = lj_names(args.lj, args.lj_clips) if args.lj else ([], [])
    big = drugs + [w for w in rare_words(1000) if w not in drugs][:1000 - len(drugs)]
    print(f"{len(drugs)} drugs, {len(clinical)} clinical and {len(general)} general clips; "
          f"{len(lj)} LJSpeech clips, {len(names)} names: {' '.join(names)}")
    print("| model | list used as | beam | term recall | clinical WER | general WER, no list | with the irrelevant "
          "list | ratio | LJSpeech name recall | LJSpeech WER | RTF with 1,000 terms / none |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        tr = Transcriber(resolve_model(name), adapter=args.adapter, device=args.device, precision=args.precision)
        tr.backend.bias_bonus = args.bonus
        beam = args.beam or tr.beam_size
        if args.adapter:
            name += f" + adapter {args.adapter.name}"
        refs = [t for _, t in clinical]
        grefs = [t for _, t in general]
        gplain = transcribe(tr, general, None, beam)
        g0 = error_rates(grefs, gplain).wer
        for label in args.modes:
            mode = use_mode(tr, label, not args.no_term_pass)
            use = (lambda t: None) if mode == "none" else (lambda t: t)
            hyp = transcribe(tr, clinical, use(drugs), beam)
            g1 = error_rates(grefs, transcribe(tr, general, use(drugs), beam)).wer if mode != "none" else g0
            cells = [f"{100 * term_recall(drugs, refs, hyp):.1f}%", f"{100 * error_rates(refs, hyp).wer:.1f}%",
                     f"{100 * g0:.1f}%", f"{100 * g1:.1f}%", f"{g1 / max(g0, 1e-9):.2f}x"]
            if lj:
                lhyp = transcribe(tr, lj, use(names), beam)
                lrefs = [t for _, t in lj]
                cells += [f"{100 * term_recall(names, lrefs, lhyp):.1f}%", f"{100 * error_rates(lrefs, lhyp).wer:.1f}%"]
            else:
                cells += ["-", "-"]
            if args.rtf and mode != "none":
                times = []
                for terms in (None, big, None, big):
                    t0 = time.perf_counter()
                    transcribe(tr, clinical[:args.rtf], terms, beam)
                    times.append(time.perf_counter() - t0)
                cells.append(f"{(times[1] + times[3]) / (times[0] + times[2]):.2f}x")
            else:
                cells.append("-")
            print(f"| {name} | {label} | {beam} | " + " | ".join(cells) + " |", flush=True)


def speed(args) -> None:
    """Decode time with the 1,000-term list over without a list, every 4th clip of each set,
    passes alternated (none, list, none, list) so that load on a shared machine hits both,
    after an untimed pass over the set (else the first mode's first pass is the slowest: 9.0 s
    against 2.3 s for the same 12 clips, even after one clip decoded before)."""
    from engine.models.registry import resolve_model
    from engine.transcriber import Transcriber

    drugs = (args.data / "words.txt").read_text().split()
    big = drugs + [w for w in rare_words(1000) if w not in drugs][:1000 - len(drugs)]
    tr = Transcriber(resolve_model(args.models[0]), device=args.device, precision=args.precision)
    beam = args.beam or tr.beam_size
    transcribe(tr, pairs(args.data / "clinical")[:1], big, beam)  # untimed: the list's index, wordfreq's load
    for name in ("clinical", "general"):
        clips = pairs(args.data / name)[::4]
        transcribe(tr, clips, None, beam)  # untimed: a set's first pass is slower (9.0 s against 2.3 s)
        for label in args.modes:
            use_mode(tr, label, not args.no_term_pass)
            times = []
            for terms in (None, big, None, big):
                t0 = time.perf_counter()
                transcribe(tr, clips, terms, beam)
                times.append(time.perf_counter() - t0)
            print(f"| {len(clips)} {name} | {label} | {(times[1] + times[3]) / (times[0] + times[2]):.2f}x | "
                  + ", ".join(f"{t:.1f}" for t in times) + " |", flush=True)


def widen(args) -> None:
    """The term pass's candidate search set from the flags, for measuring a wider one."""
    from engine.decoding import term_pass

    for flag, name in (("span_words", "MAX_SPAN_WORDS"), ("max_candidates", "MAX_CANDIDATES"),
                       ("min_similarity", "MIN_SIMILARITY")):
        if getattr(args, flag) is not None:
            setattr(term_pass, name, getattr(args, flag))
    print(f"term pass: spans of up to {term_pass.MAX_SPAN_WORDS} words, {term_pass.MAX_CANDIDATES} candidates "
          f"per clip, similarity floor {term_pass.MIN_SIMILARITY:g}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-data")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--seed", type=int, default=29)
    r = sub.add_parser("run")
    sp = sub.add_parser("speed", help="time with the 1,000-term list / without, per mode (--modes both bias)")
    sp.add_argument("--data", type=Path, required=True)
    sp.add_argument("--models", nargs=1, default=["whisper-base"])
    sp.add_argument("--modes", nargs="+", default=["both", "bias"], type=mode_label,
                    help=f"hint modes, each optionally + {NO_TERM_PASS} (e.g. both{NO_TERM_PASS})")
    sp.add_argument("--no-term-pass", action="store_true", help="every mode without the term pass")
    sp.add_argument("--beam", type=int, default=1)
    sp.add_argument("--device", default="cpu")
    sp.add_argument("--precision", choices=("int8", "fp32"), default=None)
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--lj", type=Path, help="an LJSpeech-1.1 folder (metadata.csv, wavs/)")
    r.add_argument("--lj-clips", type=int, default=30)
    r.add_argument("--models", nargs="+", default=["whisper-base"])
    r.add_argument("--modes", nargs="+", default=["none", "prompt", "bias", "both"], type=mode_label,
                   help=f"none (no list) or hint modes, each optionally + {NO_TERM_PASS} (e.g. both{NO_TERM_PASS})")
    r.add_argument("--beam", type=int, default=0, help="beam size (default: the model's)")
    r.add_argument("--bonus", type=float, default=None, help="biasing bonus per token (default: the engine's)")
    r.add_argument("--rtf", type=int, default=0, help="time N clinical clips with the 1,000-term list and without")
    r.add_argument("--limit", type=int, default=0)
    r.add_argument("--voice", type=int, choices=range(len(VOICES)), help="only the clips of this voice (0: en-gb+f2, "
                                                                          "the term pass's tuning voice; 1: en-us-nyc)")
    r.add_argument("--no-term-pass", action="store_true", help="every mode without the term pass (engine.decoding.term_pass)")
    r.add_argument("--adapter", type=Path, help="an adapter folder to apply (e.g. from `steno train --words "
                                                "DATA/words.txt`: its spoken sentences use none of the test voices)")
    r.add_argument("--device", default="cpu")
    r.add_argument("--precision", choices=("int8", "fp32"), default=None)
    for q in (r, sp):
        q.add_argument("--span-words", type=int, help="the term pass's longest span (default: the engine's)")
        q.add_argument("--max-candidates", type=int, help="the term pass's candidates per clip (default: the engine's)")
        q.add_argument("--min-similarity", type=float, help="the term pass's similarity floor (default: the engine's)")
    args = p.parse_args()
    if args.cmd == "make-data":
        return make_data(args)
    widen(args)
    if args.cmd == "speed":
        return speed(args)
    if args.bonus is None:
        from engine.decoding.biasing import DEFAULT_BONUS

        args.bonus = DEFAULT_BONUS
    run(args)


if __name__ == "__main__":
    main()
