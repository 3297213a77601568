"""The real choice set: held-out real speakers of every imported source, and the models measured on it.

    .venv/bin/python -m bench.real_choice build --real data/real [--out data/real_choice]
    .venv/bin/python -m bench.real_choice measure [--out data/real_choice] [--per-source 12] [--threads 2]

`build` reads the sources imported by `python -m recipes.real_speech` and writes
OUT/SOURCE.tsv (`audio<TAB>text`, the manifest `steno eval` reads) for the held-out speakers
named in recipes/real_choice_speakers.json (the training recipe leaves the same speakers out:
recipes.real_speech.held_out). `measure` runs steno-default-en, Steno's Whisper tiny.en and
base, and faster-whisper tiny.en and base on about --per-source evenly spaced clips of each
source (all with 0), and prints WER per source and pooled, then splits the bridge model's word errors
by cause: reference words its CTC head cannot spell (a token outside `bridge.ctc_token_ids`)
against the rest (acoustics and the LM).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def build(real: Path, out: Path) -> dict[str, int]:
    """OUT/SOURCE.tsv for every source in the speaker lists; returns clips per source."""
    from engine.files import atomic_write_text
    from recipes.real_speech import held_out, read_clips

    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for source, rule in held_out().items():
        rows = read_clips(real / source / "clips.tsv")
        keep = [r for r in rows if r[2] in rule["speakers"] or r[0].stem in rule.get("clips", ())]
        if "choose" in rule:  # a fixed part of a large held-out speaker
            keep = [r for r in keep if r[0].stem in rule["choose"]]
        atomic_write_text(out / f"{source}.tsv", "".join(f"{a.resolve()}\t{t}\t{s}\t{'native' if n else 'non-native'}\n"
                                                        for a, t, s, n in keep))
        counts[source] = len(keep)
    return counts


def spellable(word: str, tokenizer, labels: set[int]) -> bool:
    """Can the CTC head emit some written form of `word` (with or without a space, capitalised or not)?"""
    forms = {word, " " + word, word.capitalize(), " " + word.capitalize()}
    return any(all(t in labels for t in tokenizer.encode(f, add_special_tokens=False)) for f in forms)


def error_causes(model_dir: Path, refs: list[str], hyps: list[str]) -> dict:
    """The bridge model's word errors on reference words it cannot spell vs the rest."""
    import jiwer
    from transformers import AutoTokenizer

    from engine.text.metrics import normalize

    config = json.loads((model_dir / "steno.json").read_text())
    labels = set(config["bridge"]["ctc_token_ids"])
    tok = AutoTokenizer.from_pretrained(model_dir / "lm")
    pairs = [(normalize(r), normalize(h)) for r, h in zip(refs, hyps) if normalize(r)]
    words = oov_words = oov_errors = other_errors = 0
    oov_kinds: dict[str, int] = {}
    result = jiwer.process_words([p[0] for p in pairs], [p[1] for p in pairs])
    for (ref, _), chunks in zip(pairs, result.alignments):
        rw = ref.split()
        ok = [spellable(w, tok, labels) for w in rw]
        words += len(rw)
        oov_words += ok.count(False)
        for w in (w for w, good in zip(rw, ok) if not good):
            oov_kinds[w] = oov_kinds.get(w, 0) + 1
        for c in chunks:
            if c.type == "insert":
                other_errors += c.hyp_end_idx - c.hyp_start_idx
            elif c.type in ("substitute", "delete"):
                for i in range(c.ref_start_idx, c.ref_end_idx):
                    if ok[i]:
                        other_errors += 1
                    else:
                        oov_errors += 1
    return {"words": words, "oov_words": oov_words, "oov_errors": oov_errors, "other_errors": other_errors,
            "oov_examples": sorted(oov_kinds, key=lambda w: -oov_kinds[w])[:12]}


def measure(out: Path, per_source: int, threads: int, ct2_root: Path) -> None:
    from bench.default_model import run
    from engine.evaluate import read_manifest
    from engine.models.registry import resolve_model
    from engine.text.metrics import error_rates

    sets = {}
    for manifest in sorted(out.glob("*.tsv")):
        items = read_manifest(manifest)
        step = -(-len(items) // per_source) if per_source else 1
        sets[manifest.stem] = items[::step]  # evenly spaced: every speaker group has its share
    items = [i for group in sets.values() for i in group]
    result = run(items, threads, 1, ct2_root)
    engines = result["engines"]
    refs = result["references"]
    print(f"real choice set: {len(items)} clips, {result['audio_s']:.0f} s of audio; "
          + ", ".join(f"{k} {len(v)}" for k, v in sets.items()))
    print("| engine | " + " | ".join(sets) + " | pooled WER | pooled CER | RTF (<10 s clips) |")
    print("|---" * (len(sets) + 4) + "|")
    for name, e in engines.items():
        cells, start = [], 0
        for group in sets.values():
            r = error_rates(refs[start:start + len(group)], e["texts"][start:start + len(group)])
            cells.append(f"{100 * r.wer:.1f}%")
            start += len(group)
        print(f"| {name} | " + " | ".join(cells) + f" | {100 * e['wer']:.1f}% | {100 * e['cer']:.1f}% | "
              f"{e['rtf_short']:.3f} |")
    causes = error_causes(resolve_model("steno-default-en"), refs, engines["steno-default-en"]["texts"])
    errors = causes["oov_errors"] + causes["other_errors"]
    print(f"\nsteno-default-en word errors by cause: {errors} errors on {causes['words']} reference words; "
          f"{causes['oov_words']} reference words ({100 * causes['oov_words'] / max(1, causes['words']):.1f}%) "
          f"have a token outside the CTC head's labels, and {causes['oov_errors']} errors "
          f"({100 * causes['oov_errors'] / max(1, errors):.1f}% of all) fall on them; the other "
          f"{causes['other_errors']} are acoustics/LM. Most common unspellable words: "
          + ", ".join(causes["oov_examples"]))
    save = out / "measured.json"
    save.write_text(json.dumps({"sets": {k: len(v) for k, v in sets.items()}, "references": refs,
                                "texts": {n: e["texts"] for n, e in engines.items()}, "causes": causes}, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--real", type=Path, default=Path("data/real"), help="the imported sources (recipes.real_speech)")
    b.add_argument("--out", type=Path, default=Path("data/real_choice"))
    m = sub.add_parser("measure")
    m.add_argument("--out", type=Path, default=Path("data/real_choice"))
    m.add_argument("--per-source", type=int, default=12, help="about N evenly spaced clips of each source (0: all)")
    m.add_argument("--threads", type=int, default=2)
    m.add_argument("--ct2-root", type=Path, default=Path("data/ct2"), help="faster-whisper folders (made when missing)")
    args = p.parse_args()
    if args.command == "build":
        for source, n in build(args.real, args.out).items():
            print(f"{args.out / source}.tsv: {n} clips")
    else:
        from engine.logs import quiet_libraries

        quiet_libraries()
        measure(args.out, args.per_source, args.threads, args.ct2_root)


if __name__ == "__main__":
    main()
