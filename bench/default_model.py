"""Steno's default bridge model against Whisper tiny.en and base (Steno's backend and
faster-whisper on the same pinned weights): the table of issue 6.

    .venv/bin/python -m bench.default_model [--synthetic 100] [--repeats 3] [--record]

Sets:
- dev: real read speech (data/dev/dev.tsv: 5 LibriVox clips from pocketsphinx-testdata and
  jfk.wav; built by `python -m bench.devset` when missing). Never used to train or choose anything.
- synthetic: held-out TTS voices and sentences (data/corpus/test.tsv rows 200-299 by default;
  rows 0-199 are the training recipe's dev set, which chose between checkpoints).
Engines, each in its own process, all loaded at once and taking turns clip by clip (see
bench.whisper_vs_faster for why): `steno-default-en` (VAD, ONNX encoder+bridge, greedy
SmolLM2), Steno's Whisper backend, and faster-whisper fp32 greedy. Printed: WER/CER
(engine.text.metrics normalisation), RTF on clips under 10 s (best of --repeats, after a warm-up),
peak RSS. --record writes the default model's dev WER/CER/RTF into its steno.json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from bench.whisper_vs_faster import RTF_MAX_SECONDS, race

ENGINES = [("steno-default-en", "steno", "steno-default-en"),
           ("steno whisper-tiny.en", "steno", "whisper-tiny.en"),
           ("faster-whisper tiny.en", "faster-float32", "whisper-tiny.en"),
           ("steno whisper-base", "steno", "whisper-base"),
           ("faster-whisper base", "faster-float32", "whisper-base")]


def synthetic_items(count: int, start: int = 200):
    from engine.evaluate import ManifestItem

    rows = (ROOT / "data/corpus/test.tsv").read_text(encoding="utf-8").splitlines()[start:start + count]
    return [ManifestItem(ROOT / "data/corpus" / r.split("\t")[0], r.split("\t")[1]) for r in rows if r.strip()]


def run(items, threads: int, repeats: int, ct2_root: Path, engines: list[tuple[str, str, str]] = ENGINES) -> dict:
    from engine.audio import SAMPLE_RATE, load_audio
    from engine.models.importers.whisper import assemble_ct2_folder
    from engine.text.metrics import error_rates

    paths = [str(i.audio) for i in items]
    refs = [i.text for i in items]
    durations = [len(load_audio(p)) / SAMPLE_RATE for p in paths]
    specs = []
    for label, kind, model in engines:
        source = model
        if kind.startswith("faster"):
            source = str(ct2_root / model)
            if not Path(source).is_dir():
                assemble_ct2_folder(model, Path(source))
        specs.append((label, kind, source))
    out = race(specs, paths, threads, repeats)
    short = [i for i, d in enumerate(durations) if d < RTF_MAX_SECONDS]
    for e in out.values():
        rates = error_rates(refs, e["texts"])
        e["wer"], e["cer"] = rates.wer, rates.cer
        e["rtf_short"] = sum(e["times"][i] for i in short) / max(1e-9, sum(durations[i] for i in short))
    return {"utterances": len(items), "short_clips": len(short), "audio_s": sum(durations), "engines": out,
            "references": refs}


def table(title: str, result: dict) -> str:
    lines = [f"{title}: {result['utterances']} utterances, {result['audio_s']:.0f} s of audio "
             f"({result['short_clips']} under {RTF_MAX_SECONDS:.0f} s)",
             f"| engine | WER | CER | RTF (<{RTF_MAX_SECONDS:.0f} s clips) | peak RSS |", "|---|---|---|---|---|"]
    for name, e in result["engines"].items():
        lines.append(f"| {name} | {100 * e['wer']:.1f}% | {100 * e['cer']:.1f}% | {e['rtf_short']:.3f} | "
                     f"{e['peak_rss_mb']:.0f} MB |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synthetic", type=int, default=100, help="held-out synthetic clips (0: skip)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--record", action="store_true")
    p.add_argument("--show-texts", action="store_true")
    args = p.parse_args()

    from engine.evaluate import read_manifest
    from engine.models.default_install import DEFAULT_NAME, install_default
    from engine.models.registry import models_dir
    from engine.models.whisper_install import install_whisper_model, record_metrics

    manifest = ROOT / "data/dev/dev.tsv"
    if not manifest.is_file():
        from bench.devset import build

        manifest = build(manifest.parent)
    install_default()
    for name in ("whisper-tiny.en", "whisper-base"):
        install_whisper_model(name)
    sets = [("dev (real speech)", read_manifest(manifest), args.repeats)]
    if args.synthetic:
        sets.append((f"synthetic held-out voices (test.tsv rows 200-{199 + args.synthetic})",
                     synthetic_items(args.synthetic), 1))
    with tempfile.TemporaryDirectory() as ct2_root:
        for title, items, repeats in sets:
            result = run(items, args.threads, repeats, Path(ct2_root))
            print(table(title, result), flush=True)
            if args.show_texts:
                for i, ref in enumerate(result["references"]):
                    print(f"    ref      {ref}")
                    for name, e in result["engines"].items():
                        print(f"    {name[:24]:24} {e['texts'][i]}")
            if args.record and title.startswith("dev"):
                e = result["engines"][DEFAULT_NAME]
                record_metrics(models_dir() / DEFAULT_NAME, dev_wer=round(e["wer"], 4), dev_cer=round(e["cer"], 4),
                               rtf=round(e["rtf_short"], 4), dev_set=f"{manifest.name} ({len(items)} utterances)",
                               measured_with=f"python -m bench.default_model, {args.threads} threads, CPU")


if __name__ == "__main__":
    main()
