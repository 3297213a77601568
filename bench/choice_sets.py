"""Which default model to ship: word and character errors on the three synthetic choice sets,
each set and pooled, for one or more model folders, decoded as each model's steno.json says.

    .venv/bin/python -m bench.choice_sets --models ~/.local/share/steno/models/steno-default-en \
        data/lora_gpu_00500/lm/assembled/steno-default-en [--save-rows data/choice_rows.json] \
        [--decode word_bonus=0.5]

The sets (docs/model_history.md, "The sets, and the rule"): corpus2 test rows 200-299
(held-out voices and sentences of the Debian voices) and the test splits of corpora 7 and 8
(the held-out Kokoro speaker). The rule: fewest pooled word errors ships; a tie goes to the
pooled CER. The real dev set is never used to choose (93 words); it is measured once after,
by `python -m bench.default_model`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETS = [("corpus2 rows 200-299", ROOT / "data/corpus2/test.tsv", slice(200, 300)),
        ("corpus7 test", ROOT / "data/corpus7/test.tsv", slice(None)),
        ("corpus8 test", ROOT / "data/corpus8/test.tsv", slice(None))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", required=True, help="model folders or installed model names")
    p.add_argument("--save-rows", type=Path, default=None, help="write every reference and hypothesis here (JSON)")
    p.add_argument("--decode", nargs="+", default=[], metavar="KEY=VALUE",
                   help="decoding settings to try instead of each model's steno.json (ModelConfig.decode)")
    args = p.parse_args()
    from engine.evaluate import evaluate, read_manifest
    from engine.logs import quiet_libraries
    from engine.models.registry import resolve_model
    from engine.text.metrics import error_rates
    from engine.transcriber import Transcriber

    quiet_libraries()
    sets = [(name, read_manifest(path)[rows]) for name, path, rows in SETS]
    print("| model | " + " | ".join(f"{name} ({len(items)} clips)" for name, items in sets) + " | pooled WER (errors) / CER |")
    print("|---" * (len(sets) + 2) + "|")
    saved = {}
    for model in args.models:
        tr = Transcriber(resolve_model(model), device="cpu")
        for setting in args.decode:
            key, value = setting.split("=", 1)
            if not hasattr(tr.backend.config.decode, key):
                p.error(f"--decode {setting}: no decoding setting named {key!r}")
            setattr(tr.backend.config.decode, key, type(getattr(tr.backend.config.decode, key))(value))
        refs, hyps, cells = [], [], []
        for name, items in sets:
            report = evaluate(items, transcriber=tr)
            refs += [r["reference"] for r in report.rows]
            hyps += [r["hypothesis"] for r in report.rows]
            cells.append(f"{100 * report.wer:.1f}% / {100 * report.cer:.1f}%")
            saved.setdefault(model, {})[name] = report.rows
        pooled = error_rates(refs, hyps)
        label = " ".join([str(model)] + args.decode)
        print(f"| {label} | " + " | ".join(cells) +
              f" | {100 * pooled.wer:.2f}% ({round(pooled.wer * pooled.words)} of {pooled.words}) / {100 * pooled.cer:.2f}% |",
              flush=True)
    if args.save_rows:
        args.save_rows.write_text(json.dumps(saved, indent=1))


if __name__ == "__main__":
    main()
