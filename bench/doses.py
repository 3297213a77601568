"""Doses and the words their meaning hangs on: written as a clinician writes them, or flagged.

    .venv/bin/python -m bench.doses [--models whisper-base whisper-tiny.en] [--voices en-us en-gb+f2]

`resources/clinical/doses.tsv` holds 30 clinical sentences as they are said ("seventy five
milligrams") and as they are written ("75 mg"). Each voice (espeak-ng) says each sentence;
each model transcribes it as `steno transcribe` does, and faster-whisper (its defaults, beam
1, same weights) does too, without Steno's writing of units. Printed per engine:
- doses kept: the number and the unit both right, in any spelling ("75mg", "75 milligrams");
- doses as written: exactly the clinician's form ("75 mg");
- key words right: stop/start/increase/reduce/continue/not/left/right... as said;
- wrong and unflagged: sentences with a wrong dose or key word that no unsure mark points at
  (engine.text.doses.unsure_key_words): the errors a reader would sign without a warning.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SENTENCES = ROOT / "resources" / "clinical" / "doses.tsv"


def sentences() -> list[tuple[str, str]]:
    rows = [line.split("\t") for line in SENTENCES.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]
    return [(spoken, written) for spoken, written in rows]


def speak(text: str, voice: str, folder: Path, name: str) -> Path:
    wav = folder / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(wav), text], check=True)
    return wav


def judge(written: str, text: str, words) -> dict:
    """Doses kept / as written, key words right, and whether an error went unflagged."""
    from engine.text.doses import KEY_WORDS, doses, same_dose

    want = doses(written)
    got = doses(text)
    kept = sum(any(same_dose(w, g) for g in got) for w in want)
    as_written = sum(re.search(rf"(?<![\w.]){re.escape(w.text)}(?!\w)", text) is not None for w in want)
    said = [k for k in re.findall(r"[a-z']+", written.lower()) if k in KEY_WORDS]
    heard = [k for k in re.findall(r"[a-z']+", text.lower()) if k in KEY_WORDS]
    keys_right = said == heard
    wrong = kept < len(want) or not keys_right
    return {"doses": len(want), "kept": kept, "as_written": as_written, "keys": len(said),
            "keys_right": keys_right, "wrong": wrong, "flagged": bool(words)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["whisper-base", "whisper-tiny.en"])
    p.add_argument("--voices", nargs="+", default=["en-us", "en-gb+f2"])
    p.add_argument("--out", type=Path, default=ROOT / "data" / "doses")
    args = p.parse_args()
    from bench.longform import faster_run
    from engine.text.doses import unsure_key_words
    from engine.transcriber import Transcriber

    items = sentences()
    with tempfile.TemporaryDirectory() as tmp:
        wavs, refs = [], []
        for v, voice in enumerate(args.voices):
            for i, (spoken, written) in enumerate(items):
                wavs.append(speak(spoken, voice, Path(tmp), f"{v}-{i}"))
                refs.append(written)
        print(f"{len(items)} sentences x {len(args.voices)} voices ({', '.join(args.voices)})")
        print("| engine | doses kept | doses as written | key words right | wrong and unflagged | s |")
        print("|---|---|---|---|---|---|")
        for model in args.models:
            tr = Transcriber(model)
            t0 = time.perf_counter()
            runs = []
            texts, flags = [], []
            for wav in wavs:
                transcript = tr.transcribe(wav)
                texts.append(transcript.text)
                flags.append([w for s in transcript.segments for w in unsure_key_words(s)])
            runs.append((f"Steno {model} beam 1", texts, flags, time.perf_counter() - t0))
            if model.startswith("whisper-"):
                name, fw_texts, seconds = faster_run(model, wavs, args.out)
                runs.append((name, fw_texts, [[] for _ in wavs], seconds))
            for name, texts, flags, seconds in runs:
                rows = [judge(r, t, f) for r, t, f in zip(refs, texts, flags)]
                n = sum(r["doses"] for r in rows)
                unflagged = sum(r["wrong"] and not r["flagged"] for r in rows)
                print(f"| {name} | {sum(r['kept'] for r in rows)}/{n} | {sum(r['as_written'] for r in rows)}/{n} "
                      f"| {sum(r['keys_right'] for r in rows)}/{len(rows)} | {unflagged} of {sum(r['wrong'] for r in rows)} "
                      f"| {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
