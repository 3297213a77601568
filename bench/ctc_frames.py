"""What a bridge model's CTC head writes on its own: greedy CTC text (blanks dropped, repeats
merged) beside each reference, and with --frames each frame's four most likely labels.

    .venv/bin/python -m bench.ctc_frames [--model steno-default-en] [--manifest data/dev/dev.tsv] \
        [--frames CLIP_NUMBER]

Why: joint decoding can only write what the head offers, so a word the head never writes
with confidence is where the LM has to guess. On the real dev set (this script's defaults)
the shipped head writes the first piece of a rare word and leaves the rest to blank ("le" for "leisure",
"prud" for "prudently", "am" for "amiable": the continuation pieces get 0.05-0.2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="steno-default-en")
    p.add_argument("--manifest", type=Path, default=ROOT / "data/dev/dev.tsv")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help="also print the top labels of every frame of the manifest's N-th clip (from 0)")
    args = p.parse_args()
    from engine.audio import load_audio
    from engine.decoding.ctc_prefix import best_path, label_tokens
    from engine.evaluate import read_manifest
    from engine.logs import quiet_libraries
    from engine.models.registry import resolve_model
    from engine.transcriber import Transcriber

    quiet_libraries()
    tr = Transcriber(resolve_model(args.model), device="cpu")
    backend = tr.backend
    label_to_token = label_tokens(backend.model.bridge.token_to_label.cpu().numpy())
    tokenizer = backend.model.tokenizer

    def text_of(label: int) -> str:
        return "_" if label == 0 else tokenizer.decode([int(label_to_token[label])])

    for i, item in enumerate(read_manifest(args.manifest)):
        if args.frames is not None and i != args.frames:
            continue
        logp = backend.speech_outputs(load_audio(item.audio))[1]
        text = tokenizer.decode([int(label_to_token[x]) for x in best_path(logp.argmax(-1))])
        print(f"{i:3d} ref {item.text}\n    ctc {text}")
        if args.frames is not None:
            for j, row in enumerate(logp):
                top = np.argsort(-row)[:4]
                print(f"    {j:4d} " + "  ".join(f"{text_of(x)!r} {np.exp(row[x]):.2f}" for x in top))


if __name__ == "__main__":
    main()
