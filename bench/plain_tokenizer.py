"""Whether engine.bridge.tokenizer reads a real LM's tokenizer exactly as transformers does:
every token decoded alone, random sequences decoded, and texts encoded, counted where they
differ.

    .venv/bin/python -m bench.plain_tokenizer MODEL_FOLDER/lm [--texts LJSpeech-1.1/metadata.csv]

`--texts`: a file of lines, the text after the last "|" of each (LJSpeech's metadata.csv as it is).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

EXTRA_TEXTS = [" Xarelto 5 mg, the patient's BP: 120/80.", "", "  two  spaces", "Ünïcödé — dash"]


def main() -> None:
    from transformers import AutoTokenizer

    from engine.bridge.tokenizer import plain_tokenizer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("lm", type=Path, help="the LM folder (tokenizer.json, tokenizer_config.json)")
    p.add_argument("--texts", type=Path, help="lines of text to encode (the part after the last '|')")
    p.add_argument("--sequences", type=int, default=2000)
    args = p.parse_args()
    ref, own = AutoTokenizer.from_pretrained(args.lm), plain_tokenizer(args.lm, {})
    if own is None:
        raise SystemExit(f"{args.lm}: transformers does more than wrap this tokenizer; it is not read plainly")
    size = len(ref)
    print(f"size {size} / {len(own)}, bos {ref.bos_token_id} / {own.bos_token_id}, "
          f"eos {ref.eos_token_id} / {own.eos_token_id} (transformers / plain)")
    tokens = sum(ref.decode([i], skip_special_tokens=skip) != own.decode([i], skip_special_tokens=skip)
                 for i in range(size) for skip in (False, True))
    rng = random.Random(0)
    seqs = [[rng.randrange(size) for _ in range(rng.randrange(1, 30))] for _ in range(args.sequences)]
    seq_diff = sum(ref.decode(s, skip_special_tokens=True) != own.decode(s, skip_special_tokens=True) for s in seqs)
    texts = list(EXTRA_TEXTS)
    if args.texts:
        texts += [line.rsplit("|", 1)[-1] for line in args.texts.read_text(encoding="utf-8").splitlines()]
    text_diff = sum(ref.encode(t, add_special_tokens=False) != own.encode(t, add_special_tokens=False) for t in texts)
    print(f"differ: {tokens} of {2 * size} token decodes (with and without special tokens), "
          f"{seq_diff} of {len(seqs)} sequences, {text_diff} of {len(texts)} texts encoded")


if __name__ == "__main__":
    main()
