"""Choose a bridge model's CTC weight (joint decoding, engine/decoding/search.py: CTCGuide) on
synthetic held-out clips, never on the real-speech dev set.

    .venv/bin/python -m bench.ctc_weight --model steno-default-en \
        --manifest data/corpus/test.tsv --rows 200:300 --weights 0 0.5 0.7 0.85 1 [--beams 1 4] \
        [--blank-penalties 0 1 2] [--word-penalties 0 2 4]

One Transcriber, one pass over the clips per weight and beam size; prints WER/CER/RTF. Rows
0-199 of the corpus's test split are the training recipe's dev set (they chose the
checkpoint), so the default range is the next 100.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="steno-default-en")
    p.add_argument("--manifest", type=Path, default=ROOT / "data/corpus/test.tsv")
    p.add_argument("--rows", default="200:300", help="a:b, the manifest lines to use")
    p.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.5, 0.7, 0.85, 1.0])
    p.add_argument("--beams", type=int, nargs="+", default=[1], help="beam sizes (1 = greedy)")
    p.add_argument("--blank-penalties", type=float, nargs="+", default=None,
                   help="nats off the CTC blank (decode.ctc_blank_penalty); default: the model's")
    p.add_argument("--word-penalties", type=float, nargs="+", default=None,
                   help="score off each unknown written word (decode.unknown_word_penalty); default: the model's")
    p.add_argument("--precision", choices=("int8", "fp32"), default=None)
    args = p.parse_args()
    from engine.evaluate import evaluate, read_manifest
    from engine.logs import quiet_libraries
    from engine.transcriber import Transcriber

    quiet_libraries()
    a, b = (int(x) for x in args.rows.split(":"))
    items = read_manifest(args.manifest)[a:b]
    tr = Transcriber(args.model, device="cpu", precision=args.precision)
    print(f"{tr.name}: {len(items)} clips of {args.manifest} (rows {a}-{b - 1})")
    decode = tr.backend.config.decode
    print("| ctc weight | blank penalty | unknown-word penalty | beam | WER | CER | RTF |\n"
          "|---|---|---|---|---|---|---|")
    for beam in args.beams:
        for penalty in args.blank_penalties or [decode.ctc_blank_penalty]:
            for word_penalty in args.word_penalties or [decode.unknown_word_penalty]:
                for w in args.weights:
                    decode.ctc_weight, decode.ctc_blank_penalty, tr.beam_size = w, penalty, beam
                    decode.unknown_word_penalty = word_penalty
                    report = evaluate(items, transcriber=tr)
                    print(f"| {w:g} | {penalty:g} | {word_penalty:g} | {beam} | {100 * report.wer:.1f}% "
                          f"| {100 * report.cer:.1f}% | {report.rtf:.3f} |", flush=True)


if __name__ == "__main__":
    main()
