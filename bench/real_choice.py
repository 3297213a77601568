"""The real choice set: held-out real speakers of every imported source, and the models measured on it.

    .venv/bin/python -m bench.real_choice build --real data/real [--out data/real_choice]
    .venv/bin/python -m bench.real_choice measure [--out data/real_choice] [--per-source 12] [--threads 2]
        [--models new=data/real_work/native/ctc/model]   # only these, added to the saved table
    .venv/bin/python -m bench.real_choice report [--out data/real_choice]     # the tables again
    .venv/bin/python -m bench.real_choice coverage [--out data/real_choice]   # words the CTC head cannot spell

`build` reads the sources imported by `python -m recipes.real_speech` and writes
OUT/SOURCE.tsv (`audio<TAB>text`, the manifest `steno eval` reads) for the held-out speakers
named in recipes/real_choice_speakers.json (the training recipe leaves the same speakers out:
recipes.real_speech.held_out). `measure` runs steno-default-en, Steno's Whisper tiny.en and
base, and faster-whisper tiny.en and base on about --per-source evenly spaced clips of each
source (all with 0), and prints WER per source and pooled, then puts each reference word the
bridge model missed down to one cause: a word its CTC head cannot spell (a token outside
`bridge.ctc_token_ids`), a word Whisper base (the teacher) missed too, or the bridge alone.
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


def word_hits(refs: list[str], hyps: list[str]) -> list[list[bool]]:
    """Per reference word (normalised text): did the hypothesis get it right?"""
    import jiwer

    hits = [[False] * len(r.split()) for r in refs]
    scored = [i for i, r in enumerate(refs) if r]
    result = jiwer.process_words([refs[i] for i in scored], [hyps[i] for i in scored])
    for i, chunks in zip(scored, result.alignments):
        for c in chunks:
            if c.type == "equal":
                hits[i][c.ref_start_idx:c.ref_end_idx] = [True] * (c.ref_end_idx - c.ref_start_idx)
    return hits


def error_causes(model_dir: Path, refs: list[str], hyps: list[str], teacher: list[str]) -> dict:
    """The bridge model's missed reference words, each put down to one cause: a word its CTC head
    cannot spell; a word the teacher (Whisper base) missed too (hard audio, or a prompt that is
    not what was said); or the bridge alone (its acoustics and LM). Inserted words apart."""
    import jiwer
    from transformers import AutoTokenizer

    from engine.text.metrics import normalize

    config = json.loads((model_dir / "steno.json").read_text())
    labels = set(config["bridge"]["ctc_token_ids"])
    tok = AutoTokenizer.from_pretrained(model_dir / "lm")
    refs, hyps, teacher = ([normalize(t) for t in texts] for texts in (refs, hyps, teacher))
    causes = {"words": 0, "unspellable_words": 0, "unspellable": 0, "teacher_missed_too": 0, "bridge_only": 0,
              "inserted": 0}
    unspellable: dict[str, int] = {}
    for ref, hyp, ours, theirs in zip(refs, hyps, word_hits(refs, hyps), word_hits(refs, teacher)):
        words = ref.split()
        causes["words"] += len(words)
        for word, hit, teacher_hit in zip(words, ours, theirs):
            can = spellable(word, tok, labels)
            if not can:
                causes["unspellable_words"] += 1
                unspellable[word] = unspellable.get(word, 0) + 1
            if hit:
                continue
            causes["unspellable" if not can else "bridge_only" if teacher_hit else "teacher_missed_too"] += 1
        if ref:
            causes["inserted"] += jiwer.process_words(ref, hyp).insertions
        else:
            causes["inserted"] += len(hyp.split())
    causes["unspellable_examples"] = sorted(unspellable, key=lambda w: -unspellable[w])[:12]
    return causes


def measure(out: Path, per_source: int, threads: int, ct2_root: Path, models: list[str] = ()) -> None:
    """Measure the engines (default: bench.default_model's five; `models`: LABEL=FOLDER bridge or
    Whisper model folders instead, added to OUT/measured.json when it holds the same clips)."""
    from bench.default_model import ENGINES, run
    from engine.evaluate import read_manifest

    sets = {}
    for manifest in sorted(out.glob("*.tsv")):
        items = read_manifest(manifest)
        step = -(-len(items) // per_source) if per_source else 1
        sets[manifest.stem] = items[::step]  # evenly spaced: every speaker group has its share
    items = [i for group in sets.values() for i in group]
    engines = [(label, "steno", folder) for label, folder in (m.split("=", 1) for m in models)] or ENGINES
    result = run(items, threads, 1, ct2_root, engines)
    measured = {"sets": {k: len(v) for k, v in sets.items()}, "references": result["references"],
                "audio_s": result["audio_s"], "engines": {}}
    saved_file = out / "measured.json"
    if models and saved_file.is_file():  # earlier engines on the same clips stay in the table
        saved = json.loads(saved_file.read_text())
        if saved["references"] == measured["references"]:
            measured["engines"] = saved["engines"]
    for label, kind, source in engines:
        e = result["engines"][label]
        measured["engines"][label] = {"texts": e["texts"], "rtf_short": e["rtf_short"], "model": source}
    saved_file.write_text(json.dumps(measured, indent=1))
    report(out)


def report(out: Path) -> None:
    """The tables of OUT/measured.json: WER per source and engine, and the bridge model's errors by cause."""
    from engine.models.registry import resolve_model
    from engine.text.metrics import error_rates

    saved = json.loads((out / "measured.json").read_text())
    refs, engines, sets = saved["references"], saved["engines"], saved["sets"]
    spans, start = {}, 0
    for name, n in sets.items():
        spans[name], start = slice(start, start + n), start + n
    print(f"real choice set: {len(refs)} clips, {saved['audio_s']:.0f} s of audio; "
          + ", ".join(f"{k} {n}" for k, n in sets.items()))
    print("| engine | " + " | ".join(sets) + " | pooled WER | pooled CER | RTF (<10 s clips) |")
    print("|---" * (len(sets) + 4) + "|")
    for name, e in engines.items():
        cells = [f"{100 * error_rates(refs[s], e['texts'][s]).wer:.1f}%" for s in spans.values()]
        pooled = error_rates(refs, e["texts"])
        print(f"| {name} | " + " | ".join(cells) + f" | {100 * pooled.wer:.1f}% | {100 * pooled.cer:.1f}% | "
              f"{e['rtf_short']:.3f} |")
    teacher = engines.get("steno whisper-base")
    bridges = [name for name in engines if "whisper" not in name] if teacher else []
    for bridge in bridges:  # every bridge model's errors by cause
        model = resolve_model(engines[bridge].get("model", bridge))
        print(f"\n{bridge}'s word errors by cause (teacher: Steno whisper-base)")
        print("| source | ref words | unspellable words | errors: unspellable | teacher missed too | bridge only | "
              "inserted |")
        print("|---" * 7 + "|")
        for name, s in list(spans.items()) + [("pooled", slice(None))]:
            c = error_causes(model, refs[s], engines[bridge]["texts"][s], teacher["texts"][s])
            print(f"| {name} | {c['words']} | {c['unspellable_words']} | {c['unspellable']} | "
                  f"{c['teacher_missed_too']} | {c['bridge_only']} | {c['inserted']} |")
        print("unspellable words seen: " + (", ".join(c["unspellable_examples"]) or "none"))


def coverage(out: Path) -> None:
    """Words of the whole choice set that the bridge's CTC head cannot spell, per source (no decoding)."""
    from transformers import AutoTokenizer

    from engine.models.registry import resolve_model

    model = resolve_model("steno-default-en")
    labels = set(json.loads((model / "steno.json").read_text())["bridge"]["ctc_token_ids"])
    tok = AutoTokenizer.from_pretrained(model / "lm")
    print(f"| source | words | distinct | unspellable by the CTC head ({len(labels)} labels) |\n|---|---|---|---|")
    for manifest in sorted(out.glob("*.tsv")):
        words = [w for line in manifest.read_text(encoding="utf-8").splitlines() for w in line.split("\t")[1].split()]
        bad = sorted({w for w in words if not spellable(w, tok, labels)})
        print(f"| {manifest.stem} | {len(words)} | {len(set(words))} | {sum(w in bad for w in words)}: "
              f"{', '.join(bad) or 'none'} |")


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
    m.add_argument("--models", nargs="+", default=[], metavar="LABEL=FOLDER",
                   help="Steno model folders to measure instead, added to the saved table of the same clips")
    c = sub.add_parser("coverage", help="words of the set the CTC head cannot spell (no decoding)")
    c.add_argument("--out", type=Path, default=Path("data/real_choice"))
    r = sub.add_parser("report", help="print the tables again from OUT/measured.json")
    r.add_argument("--out", type=Path, default=Path("data/real_choice"))
    args = p.parse_args()
    if args.command == "build":
        for source, n in build(args.real, args.out).items():
            print(f"{args.out / source}.tsv: {n} clips")
    elif args.command == "coverage":
        coverage(args.out)
    elif args.command == "report":
        report(args.out)
    else:
        from engine.logs import quiet_libraries

        quiet_libraries()
        measure(args.out, args.per_source, args.threads, args.ct2_root, args.models)


if __name__ == "__main__":
    main()
