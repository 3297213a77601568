"""`steno train` and `steno adapters ...`: argument wiring and printing over trainer.api.

app/cli.py declares the arguments and calls these; everything here is presentation.
"""

from __future__ import annotations

import json
import math
import signal
import sys
from pathlib import Path

from engine.errors import StenoError


def add_train_arguments(p) -> None:
    import argparse

    from trainer.api import TrainSettings

    p.add_argument("--data", action="append", default=[], metavar="PATH",
                   help="folder of audio + same-named .txt, a .tsv/.csv/.jsonl manifest, or an audio file (repeatable)")
    p.add_argument("--text", action="append", default=[], metavar="PATH",
                   help=".txt/.md/.docx document or folder of them, for text-only adaptation (repeatable)")
    p.add_argument("--words", metavar="PATH", help="word list (one term per line): scored, trained on as text, "
                                                   "and spoken by TTS voices (see --spoken)")
    p.add_argument("--spoken", type=_count, default=None, metavar="N",
                   help="with --words or --text: N sentences holding the terms, spoken by TTS voices and trained "
                        "on as recordings (default 4 per term, 48 to 400; 0 = off); the way a Whisper-family model learns a word list")
    p.add_argument("--eval", metavar="PATH", help="held-out set (folder or manifest); default: split off 15%%")
    p.add_argument("--base", help="base model folder or installed name (default: the best installed)")
    p.add_argument("--out", required=True, metavar="ADAPTER_DIR", help="where to save the adapter")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=int, default=None, help="LoRA alpha (default: 2 x rank)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--bridge", choices=("frozen", "lora", "full"), default="frozen")
    p.add_argument("--mlp", action="store_true", help="put LoRA on the LM's MLP too")
    p.add_argument("--cross-attention", action="store_true",
                   help="Whisper-family models: LoRA on the decoder's cross-attention too")
    p.add_argument("--text-weight", type=float, default=0.5)
    p.add_argument("--anchor", type=float, default=1.0,
                   help="Whisper-family models: KL weight keeping the decoder near the base model "
                        "(guards accuracy on general speech)")
    p.add_argument("--rehearsal", type=int, default=TrainSettings.rehearsal, metavar="N",
                   help="everyday sentences spoken by espeak-ng and trained on beside your data, so general "
                        "speech is not forgotten (default %(default)s; 0 = off)")
    p.add_argument("--hint-share", type=float, default=TrainSettings.hint_share,
                   help="share of clips trained with some of the terms in the prompt, so hints help "
                        "(default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue a cancelled or crashed run with the same data and settings (default: yes)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or data report")


def _count(text: str) -> int:
    """A whole number of sentences, 0 or more, refused while parsing."""
    import argparse

    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: use a whole number, 0 or more")
    return int(text)


def run_train(args) -> int:
    from trainer.api import TrainSettings, collect_data, speak_terms, train_adapter

    report = collect_data(data=[Path(p) for p in args.data], text=[Path(p) for p in args.text],
                          word_list=Path(args.words) if args.words else None,
                          eval_data=Path(args.eval) if args.eval else None, seed=args.seed)
    settings = TrainSettings(rank=args.rank, alpha=args.alpha or 2 * args.rank, epochs=args.epochs,
                             learning_rate=args.lr, batch_size=args.batch, grad_accum=args.grad_accum,
                             bridge=args.bridge, train_mlp=args.mlp, cross_attention=args.cross_attention,
                             anchor=args.anchor, text_weight=args.text_weight, seed=args.seed,
                             device=args.device, rehearsal=args.rehearsal, hint_share=args.hint_share)
    callback, close = _progress(args.quiet)
    stop = {"asked": False}

    def on_interrupt(signum, frame):
        if stop["asked"]:
            raise KeyboardInterrupt
        stop["asked"] = True
        print("\nsteno: stopping after this step (Ctrl-C again to quit at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        if report.texts and args.spoken != 0:
            report = speak_terms(report, args.spoken, args.seed, callback, cancel=lambda: stop["asked"])
        if not args.quiet:
            print("\n" + report.summary(), file=sys.stderr)
        if stop["asked"]:
            return _stopped()
        result = train_adapter(args.base, report, Path(args.out), settings, callback=callback,
                               cancel=lambda: stop["asked"], resume=args.resume)
    finally:
        signal.signal(signal.SIGINT, previous)
        close()
    if result.cancelled:
        return _stopped()
    print(result.table())
    how = f"{result.steps} steps, {result.seconds:.0f} s of training"
    how += ", stopped early" if result.stopped_early else ""
    print(f"adapter saved to {result.path} ({how})")
    return 0


def _stopped() -> int:
    print("steno: training stopped; run the same command again to continue from the last checkpoint",
          file=sys.stderr)
    return 130


def _progress(quiet: bool):
    """A tqdm bar over optimizer steps with the trainer's ETA; messages before training show as text."""
    if quiet:
        return (lambda p: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(total=0, desc="train", file=sys.stderr, dynamic_ncols=True, leave=False,
               bar_format="{desc}: {n}/{total} {bar} {postfix}")

    def update(p) -> None:
        if p.total_steps and bar.total != p.total_steps:
            bar.total = p.total_steps
        bar.n = p.step
        eta = f" ~{_clock(p.eta_seconds)} left" if p.eta_seconds is not None else ""
        bar.set_postfix_str(p.message + eta, refresh=False)
        bar.refresh()

    return update, bar.close


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


def add_adapters_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", help="saved adapters with their before/after figures")
    ls.add_argument("--root", help="folder of adapters (default: STENO_HOME/adapters)")
    show = sub.add_parser("show", help="an adapter's data, settings and figures")
    show.add_argument("adapter", help="adapter folder or saved name")
    show.add_argument("--root")
    show.add_argument("--json", action="store_true", help="print steno_adapter.json as is")
    rm = sub.add_parser("delete", help="delete an adapter folder")
    rm.add_argument("adapter")
    rm.add_argument("--root")
    merge = sub.add_parser("merge", help="merge an adapter into a new model folder")
    merge.add_argument("adapter")
    merge.add_argument("--base", help="base model (default: the one the adapter was trained on)")
    merge.add_argument("--out", required=True, help="the new model folder")
    merge.add_argument("--root")


def run_adapters(args) -> int:
    from trainer.store import resolve_adapter

    root = Path(args.root) if getattr(args, "root", None) else None
    if args.action == "list":
        return _list(root)
    folder = resolve_adapter(args.adapter, root)
    if args.action == "show":
        return _show(folder, args.json)
    if args.action == "delete":
        from trainer.api import delete_adapter

        delete_adapter(folder)
        print(f"deleted {folder}")
        return 0
    from engine.models.adapters import read_adapter_meta
    from trainer.api import merge_adapter

    base = args.base
    if base is None:
        saved = read_adapter_meta(folder).get("base_model_path")
        if not saved or not Path(saved).is_dir():
            raise StenoError("the adapter's base model is not where it was trained: pass --base", folder)
        base = saved
    out = merge_adapter(folder, base, Path(args.out))
    print(f"merged model saved to {out}")
    return 0


def _pct(x) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:.1f}%"


def _list(root) -> int:
    from trainer.api import list_adapters
    from trainer.store import adapters_dir

    found = list_adapters(root)
    if not found:
        print(f"no adapters in {root or adapters_dir()}")
        return 0
    width = max(10, *(len(a.base_model_name) for a in found))
    print(f"{'name':24} {'base model':{width}} {'created':20} {'WER before>after':>18} {'terms before>after':>19}")
    for a in found:
        wer = f"{_pct(a.before.wer if a.before else None)} > {_pct(a.after.wer if a.after else None)}"
        terms = f"{_pct(a.before.term_recall if a.before else None)} > {_pct(a.after.term_recall if a.after else None)}"
        print(f"{a.name:24} {a.base_model_name:{width}} {a.created[:19]:20} {wer:>18} {terms:>19}")
    return 0


def _show(folder: Path, as_json: bool) -> int:
    from trainer.api import scores_table
    from trainer.store import adapter_info

    info = adapter_info(folder)
    if as_json:
        print(json.dumps(info.meta, indent=2))
        return 0
    m = info.meta
    data, train, lora = m.get("data", {}), m.get("training", {}), m.get("lora", {})
    print(f"adapter      {info.name} ({folder})")
    print(f"base model   {info.base_model_name} (id {info.base_model_id})")
    print(f"created      {info.created}")
    targets = lora.get("target_modules", [])
    targets = targets if isinstance(targets, str) else ", ".join(targets)
    print(f"LoRA         rank {lora.get('rank')}, alpha {lora.get('alpha')}, on {targets}"
          f"; bridge {m.get('bridge', 'frozen')}")
    print(f"data         {data.get('train_pairs', 0)} pairs ({data.get('train_audio_seconds', 0) / 60:.1f} min), "
          f"{data.get('text_sentences', 0)} text sentences, {data.get('eval_pairs', 0)} held out, "
          f"{data.get('terms', 0)} terms ({data.get('terms_source', '')})")
    print(f"training     {train.get('steps')} steps, {train.get('epochs')} epochs, {train.get('seconds')} s on "
          f"{train.get('device')}" + (", stopped early" if train.get("stopped_early") else ""))
    print(scores_table(info.before, info.after))
    return 0
