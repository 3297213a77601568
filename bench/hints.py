"""Vocabulary hints without training (issue 5): does a word list in the prompt help, and
does an irrelevant one hurt?

    .venv/bin/python -m bench.adaptation make-data --out data/clinical     # once (espeak-ng voices)
    .venv/bin/python -m bench.hints --data data/clinical [--models steno-default-en whisper-base]

On the clinical set's *new* sentences (40 drug names, voices not used to train the adapter
bench) it prints term recall and WER without hints and with the 40 names as hints; on the
general (non-clinical) sentences, WER without hints and with the same drug list, which is
irrelevant there. The default bridge model learned hints in training (25% of its samples
carried 1-3 of the sentence's rare words among distractors); Whisper gets them as its
previous-text prompt.

Each clip is first transcribed without hints; only the terms that look like something in
that draft (`engine.decoding.hints.MIN_HINT_SCORE`) go into its prompt. `--calibrate` prints how
that threshold sorts terms on clips that are *not* the test clips: the clinical training
clips (terms said) and the trainer's rehearsal sentences (no term said):

    .venv/bin/python -m bench.hints --data data/clinical --calibrate [--models whisper-base]

`--calibrate-guard` does the same for the acceptance test (`engine.decoding.hints.uses_terms`): on
those clips it decodes with the selected terms and tabulates every stretch where the hinted
transcript writes a term, right (the term is in the reference) or wrong, by the fuzzy score
against the draft words it replaces and by how surely the draft heard those words:

    .venv/bin/python -m bench.hints --data data/clinical --calibrate-guard [--models whisper-base]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def transcribe_all(transcriber, pairs, hints):
    return [transcriber.transcribe(p.audio, hints=hints).text for p in pairs]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("data/clinical"))
    p.add_argument("--models", nargs="+", default=["steno-default-en", "whisper-base"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=("int8", "fp32"), default=None,
                   help="the decoder's weights (default: int8 on a CPU)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N clips of each set")
    p.add_argument("--adapter", action="append", default=[], metavar="MODEL=DIR",
                   help="also a row for MODEL with this adapter (e.g. one made by python -m bench.adaptation)")
    p.add_argument("--calibrate", action="store_true", help="score distributions for MIN_HINT_SCORE instead")
    p.add_argument("--calibrate-guard", action="store_true",
                   help="term edits on training and rehearsal clips, for MAX_REPLACED_CONFIDENCE, instead")
    p.add_argument("--whole-list", action="store_true",
                   help="instead: general WER with no hints, the whole list in the prompt unguarded, and with the guard")
    args = p.parse_args()
    if args.calibrate:
        return calibrate(args)
    if args.calibrate_guard:
        return calibrate_guard(args)
    if args.whole_list:
        return whole_list(args)

    from engine.models.registry import resolve_model
    from engine.text.metrics import error_rates, term_recall
    from engine.transcriber import Transcriber
    from trainer.api import collect_data

    terms = (args.data / "words.txt").read_text(encoding="utf-8").split()
    test = collect_data([args.data / "test"], eval_fraction=0).pairs
    general = collect_data([args.data / "general"], eval_fraction=0).pairs
    if args.limit:
        test, general = test[:args.limit], general[:args.limit]
    print(f"{len(terms)} terms; {len(test)} clinical clips, {len(general)} general clips")
    print("| model | term recall, no hints | with hints | clinical WER, no hints | with hints "
          "| general WER, no hints | with the (irrelevant) list |")
    print("|---|---|---|---|---|---|---|")
    rows = [(name, None) for name in args.models] + [tuple(a.split("=", 1)) for a in args.adapter]
    for name, adapter in rows:
        tr = Transcriber(resolve_model(name), adapter=adapter, device=args.device, precision=args.precision)
        if adapter:
            name = f"{name} + adapter {Path(adapter).name}"
        refs = [x.text for x in test]
        plain = transcribe_all(tr, test, None)
        hinted = transcribe_all(tr, test, terms)
        grefs = [x.text for x in general]
        gplain = transcribe_all(tr, general, None)
        ghinted = transcribe_all(tr, general, terms)
        cells = [term_recall(terms, refs, plain), term_recall(terms, refs, hinted),
                 error_rates(refs, plain).wer, error_rates(refs, hinted).wer,
                 error_rates(grefs, gplain).wer, error_rates(grefs, ghinted).wer]
        print(f"| {name} | " + " | ".join(f"{100 * c:.1f}%" for c in cells) + " |", flush=True)


def whole_list(args) -> None:
    """What the guard saves: the general (irrelevant-list) sentences with the terms passed
    straight to the backend, unguarded, against the Transcriber's guarded hints."""
    from engine.audio import load_audio, split_on_speech
    from engine.models.registry import resolve_model
    from engine.text.metrics import error_rates
    from engine.transcriber import Transcriber
    from trainer.api import collect_data

    terms = (args.data / "words.txt").read_text(encoding="utf-8").split()
    general = collect_data([args.data / "general"], eval_fraction=0).pairs[:args.limit or None]
    for name in args.models:
        tr = Transcriber(resolve_model(name), device=args.device, precision=args.precision)
        refs, plain, whole, guarded = [], [], [], []
        for p in general:
            chunks = split_on_speech(load_audio(p.audio), max_seconds=tr.config.max_segment_seconds)
            refs.append(p.text)
            plain.append(" ".join(s.text for s in tr.transcribe_chunks(chunks)))
            whole.append(" ".join(r.text for r in tr.backend.transcribe_batch(
                [c.audio for c in chunks], hints=terms[:tr.config.prompt.max_hint_terms], beam_size=1,
                timing=tr.timing)))
            guarded.append(" ".join(s.text for s in tr.transcribe_chunks(chunks, hints=terms)))
        print(f"{name}: general WER, no hints {100 * error_rates(refs, plain).wer:.1f}%, whole list in the prompt "
              f"{100 * error_rates(refs, whole).wer:.1f}%, guarded hints {100 * error_rates(refs, guarded).wer:.1f}%",
              flush=True)


def calibration_clips(args, tmp: Path):
    """The terms, the clinical *training* clips (terms said) and rehearsal sentences spoken
    into `tmp` (no term said): never the test clips."""
    from trainer.api import collect_data
    from trainer.rehearsal import rehearsal_pairs

    terms = (args.data / "words.txt").read_text(encoding="utf-8").split()
    clinical = collect_data([args.data / "train"], eval_fraction=0).pairs[:args.limit or 100]
    return terms, clinical, rehearsal_pairs(tmp, args.limit or 100, seed=1)


def calibrate(args) -> None:
    import tempfile

    from engine.decoding.hints import MIN_HINT_SCORE, hint_scores
    from engine.models.registry import resolve_model
    from engine.text.metrics import normalize
    from engine.transcriber import Transcriber

    with tempfile.TemporaryDirectory() as tmp:
        terms, clinical, general = calibration_clips(args, Path(tmp))
        for name in args.models:
            tr = Transcriber(resolve_model(name), device=args.device, precision=args.precision)
            said, unsaid, other = [], [], []  # scores of terms said / not said in clinical clips; in general clips
            for p in clinical:
                draft = tr.transcribe(p.audio).text
                ref = set(normalize(p.text).split())
                for t, sc in zip(terms, hint_scores(terms, draft)):
                    (said if normalize(t) in ref else unsaid).append(sc)
            for p in general:
                other.append(max(hint_scores(terms, tr.transcribe(p.audio).text)))
            n_cl, n_ge = len(clinical), len(general)
            print(f"\n{name}: {n_cl} clinical training clips ({len(said)} terms said), {n_ge} rehearsal clips "
                  f"(no term said); the threshold now is {MIN_HINT_SCORE:g}")
            print("| threshold | terms said that pass | unsaid terms passing per clinical clip "
                  "| general clips with any term passing |\n|---|---|---|---|")
            for th in range(40, 95, 5):
                print(f"| {th} | {100 * sum(x >= th for x in said) / max(len(said), 1):.1f}% "
                      f"| {sum(x >= th for x in unsaid) / n_cl:.2f} | {100 * sum(x >= th for x in other) / n_ge:.0f}% |",
                      flush=True)


def calibrate_guard(args) -> None:
    """Every term edit of the hinted decodes on training and rehearsal clips, then how many
    right and wrong edits each (fuzzy score, draft confidence) rule lets through."""
    import tempfile

    from engine.audio import load_audio, split_on_speech
    from engine.backend import Timing
    from engine.decoding.hints import MIN_HINT_SCORE, acceptable, select_hints, term_edits, word_confidences
    from engine.models.registry import resolve_model
    from engine.text.metrics import normalize
    from engine.transcriber import Transcriber

    with tempfile.TemporaryDirectory() as tmp:
        terms, clinical, general = calibration_clips(args, Path(tmp))
        for name in args.models:
            tr = Transcriber(resolve_model(name), device=args.device, precision=args.precision)
            limit = tr.config.prompt.max_hint_terms
            edits = []  # (edit, right)
            for p in clinical + general:
                ref = f" {normalize(p.text)} "
                for chunk in split_on_speech(load_audio(p.audio), max_seconds=tr.config.max_segment_seconds):
                    draft = tr.backend.transcribe_batch([chunk.audio], hints=None, beam_size=1, timing=Timing())[0]
                    picked = select_hints(terms, draft.text, limit)
                    if not picked:
                        continue
                    hinted = tr.backend.transcribe_batch([chunk.audio], hints=picked, beam_size=1, timing=Timing())[0]
                    conf = word_confidences(draft.token_texts, draft.logprobs)
                    hconf = word_confidences(hinted.token_texts, hinted.logprobs)
                    for e in term_edits(draft.text, hinted.text, picked, conf, hconf):
                        edits.append((e, all(f" {t} " in ref for t in e.terms)))
            right = sum(r for _, r in edits)
            print(f"\n{name}: {len(clinical)} clinical training clips, {len(general)} rehearsal clips; "
                  f"{len(edits)} term edits, {right} right (the term is said there)")
            known = [e.draft_confidence for e, _ in edits if e.draft_confidence is not None]
            print(f"draft confidence known for {len(known)} edits; right edits' confidences: "
                  f"{sorted(round(e.draft_confidence, 2) for e, r in edits if r and e.draft_confidence is not None)}")
            print(f"wrong edits' confidences: "
                  f"{sorted(round(e.draft_confidence, 2) for e, r in edits if not r and e.draft_confidence is not None)}")
            print(f"draft words replaced, right edits: {sorted(len(e.draft_words) for e, r in edits if r)}; "
                  f"wrong: {sorted(len(e.draft_words) for e, r in edits if not r)}")
            print(f"hinted stretch confidence, right edits: "
                  f"{sorted(round(e.hinted_confidence, 2) for e, r in edits if r and e.hinted_confidence is not None)}; "
                  f"wrong: {sorted(round(e.hinted_confidence, 2) for e, r in edits if not r and e.hinted_confidence is not None)}")
            print("| min fuzzy score | max draft confidence | right edits passing | wrong edits passing |\n|---|---|---|---|")
            for score in (0, 30, 40, MIN_HINT_SCORE, 60):
                for conf in (1.01, 0.99, 0.95, 0.9, 0.8, 0.6):
                    ok = [(r) for e, r in edits if acceptable(e, score, conf)]
                    print(f"| {score:g} | {conf:g} | {sum(ok)} of {right} | {len(ok) - sum(ok)} of {len(edits) - right} |",
                          flush=True)
            for e, r in edits:
                if not r and acceptable(e):
                    print(f"  wrong and accepted now: {' '.join(e.draft_words)!r} -> {' '.join(e.hinted_words)!r} "
                          f"(score {e.score:.0f}, confidence {e.draft_confidence})")


if __name__ == "__main__":
    main()
