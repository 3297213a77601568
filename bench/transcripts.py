"""Every clip's transcript from every model, as JSON: run it on two versions of the code and
compare, to show a change to loading or speed changed no word.

    STENO_HOME=/tmp/sh .venv/bin/python -m bench.transcripts CLIP... [--models a,b] > after.json
    (cd OTHER_CHECKOUT && STENO_HOME=/tmp/sh python -m bench.transcripts CLIP...) > before.json
    cmp before.json after.json

Each model is run in both decoder precisions (int8, the CPU default, and fp32).
"""

from __future__ import annotations

import argparse
import json
import logging


def main() -> None:
    from engine.models.registry import list_models
    from engine.transcriber import Transcriber

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clips", nargs="+")
    p.add_argument("--models", help="comma-separated names (default: every installed model)")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    names = args.models.split(",") if args.models else [m.name for m in list_models()]
    out = {}
    for name in names:
        for precision in ("int8", "fp32"):
            t = Transcriber(name, device="cpu", precision=None if precision == "int8" else "fp32")
            out[f"{name} {precision}"] = {clip: t.transcribe(clip).text for clip in args.clips}
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
