"""`steno batch` throughput on this machine: in-process, and a local Ray instance with 1 and 2 workers.

    .venv/bin/python -m bench.batch --ljspeech PATH/LJSpeech-1.1 [--files 24] [--model whisper-tiny.en]
        [--modes in-process ray-1 ray-2] [--device cpu|cuda|auto] [--out data/batch-bench]

The first `--files` clips of an LJSpeech folder (real read speech, 1-10 s each; fetched, never
committed) are transcribed by `app.batch.run_batch` in each mode, every mode into a fresh
output folder, one after another in one run (compare modes as ratios: the machine is shared).
Printed per mode: start-up (until the first file is back: Ray, workers, model load), files
per minute and aggregate RTF (wall time / audio) over the whole run and after start-up, the
figures a cluster's per-node throughput is estimated from (docs/batch.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from app.batch import BatchSettings, run_batch
from app.batch_worker import WorkerSettings

MODES = {"in-process": (True, None), "ray-1": (False, 1), "ray-2": (False, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ljspeech", required=True, help="LJSpeech-1.1 folder (wavs/ inside)")
    ap.add_argument("--files", type=int, default=24)
    ap.add_argument("--model", default="whisper-tiny.en")
    ap.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    ap.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                    help="cuda on a GPU machine: Ray gives each worker a GPU (or a share of one)")
    ap.add_argument("--out", default=None, help="keep outputs and results.json here (default: a temp folder)")
    args = ap.parse_args(argv)

    clips = sorted((Path(args.ljspeech) / "wavs").glob("*.wav"))[: args.files]
    if not clips:
        raise SystemExit(f"no clips in {args.ljspeech}/wavs")
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="steno-batch-bench-"))
    src = work / "src"
    src.mkdir(parents=True, exist_ok=True)
    for c in clips:
        if not (src / c.name).exists():
            (src / c.name).symlink_to(c.resolve())
    results = {}
    print(f"{len(clips)} clips, model {args.model}, device {args.device}")
    print(f"{'mode':12} {'start-up s':>10} {'files/min':>10} {'RTF':>7} {'files/min after start':>22} {'RTF after':>10}")
    for mode in args.modes:
        in_process, workers = MODES[mode]
        out = work / f"out-{mode}"
        shutil.rmtree(out, ignore_errors=True)
        s = run_batch(BatchSettings(sources=[str(src)], out_dir=out, in_process=in_process, workers=workers,
                                    worker=WorkerSettings(model=args.model, device=args.device), quiet=True))
        steady = s.wall_seconds - (s.first_seconds or 0.0)
        per_file = s.audio_seconds / max(s.done, 1)
        r = {"done": s.done, "failed": s.failed, "audio_s": round(s.audio_seconds, 1),
             "wall_s": round(s.wall_seconds, 1), "startup_s": round(s.first_seconds or 0.0, 1),
             "files_per_min": round(60 * s.done / s.wall_seconds, 1), "rtf": round(s.rtf, 3),
             "files_per_min_after_start": round(60 * (s.done - 1) / steady, 1) if steady > 0 else None,
             "rtf_after_start": round(steady / (s.audio_seconds - per_file), 3) if steady > 0 else None}
        results[mode] = r
        print(f"{mode:12} {r['startup_s']:>10} {r['files_per_min']:>10} {r['rtf']:>7} "
              f"{r['files_per_min_after_start']!s:>22} {r['rtf_after_start']!s:>10}")
    (work / "results.json").write_text(json.dumps({"model": args.model, "files": len(clips), "modes": results},
                                                  indent=2))
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
