"""Time to first transcript and memory, side by side in one run, for every installed model.

    STENO_HOME=/tmp/sh .venv/bin/python -m bench.startup CLIP [--models a,b] [--runs 3]
        [--ct2-root DIR] [--no-app] [--baseline OTHER_CHECKOUT]

Every figure comes from a fresh process, launch to exit (the OS file cache is warm after the
first run, as on a user's second start); the engines take turns run by run, so load from
other work on the machine falls on all alike, and each one's best run is shown. Peak memory
is the child's own peak resident set (`os.wait4`).
- steno           `steno transcribe CLIP --model NAME -q`: the CLI as a user runs it (fp32
                  encoder graph, int8 decoder: the CPU default)
- steno int8      the same with `--precision int8` (the encoder graph in int8 too)
- faster int8     a faster-whisper 1.2 script on the same weights (the CTranslate2 folder
                  assembled from the same pinned packages, bench.whisper_vs_faster), int8,
                  greedy, English: Whisper models only
- warm            the clip transcribed again in the same process: seconds per clip, best of 3
- app ready       the desktop app (offscreen): launch to the model loaded, ready to dictate
- steno baseline  with --baseline: the plain steno command run from another checkout of the
                  code (an earlier commit), taking turns with the rest: before and after
                  measured in one run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WARM_REPEATS = 3


def timed_run(argv: list[str], ready_line: str | None = None, cwd: Path = ROOT) -> dict:
    """Run argv in a fresh process: seconds from launch to exit (or to the first stdout line
    starting with `ready_line`), its peak memory in MB, its exit code and first stdout line."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seconds, first = None, ""
    for line in proc.stdout:
        first = first or line.strip()
        if ready_line is not None and seconds is None and line.startswith(ready_line):
            seconds = time.perf_counter() - start
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if seconds is None:
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "code": proc.returncode, "text": first}


def engine_commands(model: str, clip: str, family: str, ct2_dir: Path | None) -> dict[str, list[str]]:
    """The cold-start command of each engine for one model."""
    py = sys.executable
    steno = [py, "-m", "app.cli", "transcribe", clip, "--model", model, "-q"]
    out = {"steno": steno}
    if family == "whisper":
        out["steno int8"] = steno + ["--precision", "int8"]
        if ct2_dir is not None:
            out["faster int8"] = [py, "-m", "bench.startup", "--child", "faster", str(ct2_dir), clip]
    return out


def child_faster(ct2_dir: str, clip: str, warm: str = "") -> None:
    """faster-whisper as a user's script would run it: load, transcribe, print; with `warm`,
    then the best time of transcribing the clip again."""
    from faster_whisper import WhisperModel

    model = WhisperModel(ct2_dir, device="cpu", compute_type="int8")

    def run() -> str:
        segments, _ = model.transcribe(clip, beam_size=1, temperature=0.0, language="en",
                                       condition_on_previous_text=False, vad_filter=False)
        return "".join(s.text for s in segments).strip()

    print(run(), flush=True)
    if warm:
        print(json.dumps({"warm": _best_time(run)}))


def child_steno_warm(model: str, clip: str) -> None:
    from engine.transcriber import Transcriber

    transcriber = Transcriber(model)
    print(transcriber.transcribe(clip).text, flush=True)
    print(json.dumps({"warm": _best_time(lambda: transcriber.transcribe(clip))}))


def _best_time(fn) -> float:
    best = float("inf")
    for _ in range(WARM_REPEATS):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def child_app(model: str) -> None:
    """The app as `steno gui` starts it, offscreen, until its model is loaded."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtWidgets import QApplication

    from app.gui.player import FakeOutputStream
    from app.gui.window import MainWindow
    from app.settings import AppSettings

    app = QApplication([sys.argv[0]])
    window = MainWindow(AppSettings(model=model), output_stream=FakeOutputStream)
    window.model_loader.ready.connect(lambda: (print("ready", flush=True), window.close(), app.quit()))
    window.show()
    print("window", flush=True)
    app.exec()


def measure(models: list[tuple[str, str]], clip: str, runs: int, ct2_root: Path | None, app: bool,
            baseline: Path | None = None) -> list[dict]:
    rows = []
    for name, family in models:
        ct2_dir = None
        if family == "whisper" and ct2_root is not None:
            from engine.models.importers.whisper import assemble_ct2_folder

            ct2_dir = ct2_root / name
            if not ct2_dir.is_dir():
                assemble_ct2_folder(name, ct2_dir)
        commands = engine_commands(name, clip, family, ct2_dir)
        roots = {engine: ROOT for engine in commands}
        if baseline is not None:
            commands["steno baseline"], roots["steno baseline"] = commands["steno"], baseline
        best: dict[str, dict] = {}
        for r in range(runs):
            order = list(commands)
            order = order[r % len(order):] + order[:r % len(order)]
            for engine in order:
                got = timed_run(commands[engine], cwd=roots[engine])
                if got["code"] != 0:
                    raise SystemExit(f"{engine} on {name} failed (exit {got['code']}): {' '.join(commands[engine])}")
                prev = best.get(engine)
                best[engine] = {"seconds": min(got["seconds"], prev["seconds"]) if prev else got["seconds"],
                                "peak_mb": min(got["peak_mb"], prev["peak_mb"]) if prev else got["peak_mb"],
                                "text": got["text"]}
        warm = {"steno": _child_json([sys.executable, "-m", "bench.startup", "--child", "steno-warm", name, clip])}
        if "faster int8" in commands:
            warm["faster int8"] = _child_json(commands["faster int8"] + ["warm"])
        ready = None
        if app:
            ready = min(timed_run([sys.executable, "-m", "bench.startup", "--child", "app", name], "ready")["seconds"]
                        for _ in range(runs))
        rows.append({"model": name, "cold": best, "warm": warm, "app_ready_s": ready})
    return rows


def _child_json(argv: list[str]) -> float:
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["warm"]


def table(rows: list[dict]) -> str:
    lines = ["| model | engine | cold: launch to transcript | peak memory | warm, per clip | app: launch to ready |",
             "|---|---|---:|---:|---:|---:|"]
    for row in rows:
        for i, (engine, cold) in enumerate(row["cold"].items()):
            warm = row["warm"].get(engine)
            ready = row["app_ready_s"] if engine == "steno" and row["app_ready_s"] is not None else None
            lines.append(f"| {row['model'] if i == 0 else ''} | {engine} | {cold['seconds']:.2f} s | "
                         f"{cold['peak_mb']:.0f} MB | {f'{warm:.2f} s' if warm is not None else '-'} | "
                         f"{f'{ready:.2f} s' if ready is not None else '-'} |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, *rest = sys.argv[2:]
        {"faster": child_faster, "steno-warm": child_steno_warm, "app": child_app}[kind](*rest)
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clip", help="a short speech clip (a few seconds)")
    p.add_argument("--models", help="comma-separated installed names (default: all installed)")
    p.add_argument("--runs", type=int, default=3, help="cold runs per engine; the best is shown")
    p.add_argument("--ct2-root", type=Path, default=Path(tempfile.gettempdir()) / "steno-ct2",
                   help="where the CTranslate2 folders for faster-whisper are assembled")
    p.add_argument("--no-faster", action="store_true", help="leave faster-whisper out")
    p.add_argument("--no-app", action="store_true", help="leave the app's launch out")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--baseline", type=Path, help="another checkout of the code (git archive of an earlier commit) "
                                                   "whose `steno transcribe` takes turns with this one's")
    args = p.parse_args()
    from engine.models.registry import list_models

    installed = {m.name: m.family for m in list_models()}
    names = args.models.split(",") if args.models else list(installed)
    missing = [n for n in names if n not in installed]
    if missing:
        raise SystemExit(f"not installed: {', '.join(missing)}")
    help_s = min(timed_run([sys.executable, "-m", "app.cli", "--help"])["seconds"] for _ in range(args.runs))
    rows = measure([(n, installed[n]) for n in names], str(Path(args.clip).resolve()), args.runs,
                   None if args.no_faster else args.ct2_root, not args.no_app,
                   args.baseline.resolve() if args.baseline else None)
    for row in rows:
        for engine, cold in row["cold"].items():
            print(f"{row['model']} / {engine}: {cold['text']}")
    print(f"steno --help: {help_s:.2f} s")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"help_s": help_s, "models": rows}, indent=2))


if __name__ == "__main__":
    main()
