"""Vocabulary hints without training (issue 5): does a word list in the prompt help, and
does an irrelevant one hurt?

    .venv/bin/python bench/trainer.py make-data --out data/clinical     # once (espeak-ng voices)
    .venv/bin/python bench/hints.py --data data/clinical [--models steno-default-en whisper-base]

On the clinical set's *new* sentences (40 drug names, voices not used to train the adapter
bench) it prints term recall and WER without hints and with the 40 names as hints; on the
general (non-clinical) sentences, WER without hints and with the same drug list, which is
irrelevant there. The default bridge model learned hints in training (25% of its samples
carried 1-3 of the sentence's rare words among distractors); Whisper gets them as its
previous-text prompt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def transcribe_all(transcriber, pairs, hints):
    return [transcriber.transcribe(p.audio, hints=hints).text for p in pairs]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("data/clinical"))
    p.add_argument("--models", nargs="+", default=["steno-default-en", "whisper-base"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit", type=int, default=0, help="use only the first N clips of each set")
    args = p.parse_args()

    from engine.metrics import error_rates, term_recall
    from engine.models import resolve_model
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
    for name in args.models:
        tr = Transcriber(resolve_model(name), device=args.device)
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


if __name__ == "__main__":
    main()
