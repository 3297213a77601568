"""Speaker labels: DER and speaker count on interviews with known turns, and diarization speed.

    .venv/bin/python -m bench.speakers --real PATH/speechocean762 [--ljspeech PATH/LJSpeech-1.1]
        [--accent PATH/accent_archive] [--no-synthetic] [--interviews 12] [--turns 16] [--seed 1] [--hour | --only-hour] [--threads 2] [--out data/speakers]

Interviews are assembled from clips of distinct speakers, turns of 1-3 clips each, pauses
of 0.2-0.9 s between turns (0.1-0.3 s within one), the speakers taking turns at random:
- real: speakers of speechocean762 (github:jimbozhang/speechocean762, `WAVE/SPEAKERnnnn/`,
  adults and children reading English; fetched, never committed), plus LJSpeech's reader
  with `--ljspeech`; each clip is trimmed to its speech (VAD) and its span is the reference;
- accent: with `--accent` (recipes.real_speech's accent_archive folder), the accent archive's
  held-out speakers (adults of many first languages, one paragraph each, cut at its pauses
  into phrases of at least 1.5 s);
(bench.speaker_count given a projection leaves out the speakers it was trained on);
- synthetic: four espeak-ng voices reading `resources/rehearsal/general.txt`.
For each interview with 2, 3 and 4 speakers: DER (pyannote.metrics, 0.25 s collar,
overlap not skipped) with the count found (`auto`) and with the count given, and whether
`auto` found the right count. `--hour` also times one hour of interviews: the VAD (which
transcription runs anyway) and the diarization on top of it, as `steno transcribe
--speakers` runs them. `--thread-check` times the encoder on 1 and 2 torch threads.
`--single FOLDER...` instead joins each folder's first audio files
(one speaker each) into one recording and prints how many speakers `auto` finds in it.
Everything goes to OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SR = 16000
VOICES = ("en-gb-scotland+f4", "en-us+klatt", "en-gb-x-rp+f5", "en-029+m7")  # the four least alike to the encoder
COUNTS = (2, 3, 4)


def trimmed(audio: np.ndarray) -> np.ndarray:
    """The clip from its first to its last speech frame (VAD at 0.5)."""
    from engine.audio import VAD_WINDOW, speech_probabilities

    idx = np.flatnonzero(speech_probabilities(audio) >= 0.5)
    return audio[idx[0] * VAD_WINDOW:(idx[-1] + 1) * VAD_WINDOW] if len(idx) else audio[:0]


def real_voices(folder: Path, ljspeech: Path | None, clips: int = 12,
                exclude: frozenset[str] = frozenset()) -> list[list[np.ndarray]]:
    """Per speaker, up to `clips` trimmed clips of at least 1 s; none of the speakers in
    `exclude` (`speechocean762/NNNN`, as recipes.speaker_projection names them)."""
    from engine.audio import load_audio
    from recipes.speaker_projection import speechocean_id

    dirs = sorted(p for p in (folder / "WAVE").iterdir()
                  if p.is_dir() and f"speechocean762/{speechocean_id(p.name)}" not in exclude)
    groups = [sorted(d.glob("*.WAV"))[:clips] for d in dirs]
    if ljspeech is not None:
        groups.append(sorted((ljspeech / "wavs").glob("*.wav"))[:clips])
    voices = []
    for files in groups:
        audio = [a for a in (trimmed(load_audio(f)) for f in files) if len(a) >= SR]
        if len(audio) >= 4:
            voices.append(audio)
    return voices


def phrases(audio: np.ndarray, pause_s: float = 0.25, shortest_s: float = 1.5) -> list[np.ndarray]:
    """A recording cut at its pauses (VAD) into pieces of speech of at least `shortest_s`."""
    from engine.audio import VAD_FRAME_S, VAD_WINDOW, speech_probabilities

    speech = speech_probabilities(audio) >= 0.5
    edges = np.flatnonzero(np.diff(np.concatenate([[0], speech.astype(np.int8), [0]])))
    runs: list[list[int]] = []
    for a, b in zip(edges[::2], edges[1::2]):
        if runs and (a - runs[-1][1]) * VAD_FRAME_S < pause_s:
            runs[-1][1] = b
        else:
            runs.append([a, b])
    out: list[list[int]] = []
    for a, b in runs:
        if out and (out[-1][1] - out[-1][0]) * VAD_FRAME_S < shortest_s:
            out[-1][1] = b  # too short alone: joined with the next, the pause kept
        else:
            out.append([a, b])
    return [audio[a * VAD_WINDOW:b * VAD_WINDOW] for a, b in out if (b - a) * VAD_FRAME_S >= shortest_s]


def accent_voices(folder: Path, exclude: frozenset[str] = frozenset()) -> list[list[np.ndarray]]:
    """The accent archive's held-out speakers (recipes.speaker_projection.held_out_accent),
    none in `exclude` (`accent_archive/NAME`), each one paragraph cut into phrases."""
    from engine.audio import load_audio
    from recipes.speaker_projection import held_out_accent, read_clips

    clips = read_clips(folder)
    keep = {s for s in held_out_accent([s for _, s in clips]) if f"accent_archive/{s}" not in exclude}
    voices = []
    for path, speaker in sorted(clips):
        if speaker in keep:
            parts = phrases(load_audio(path))
            if len(parts) >= 4:
                voices.append(parts)
    return voices


def synthetic_voices(clips: int = 12, seed: int = 1) -> list[list[np.ndarray]]:
    import soundfile as sf
    import soxr

    lines = (ROOT / "resources" / "rehearsal" / "general.txt").read_text(encoding="utf-8").splitlines()
    pool = [s.strip() for s in lines if s.strip() and not s.startswith("#")]
    rng = random.Random(seed)
    voices = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        for voice in VOICES:
            audio = []
            for text in rng.sample(pool, clips):
                subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(wav), text], check=True)
                a, rate = sf.read(wav, dtype="float32")
                audio.append(trimmed(soxr.resample(a, rate, SR).astype(np.float32)))
            voices.append(audio)
    return voices


def interview(voices: list[list[np.ndarray]], turns: int, rng: random.Random):
    """Audio and reference [(start, end, speaker)]: `turns` turns among these voices, each
    speaker at least once, never the same speaker twice in a row."""
    order = list(range(len(voices)))
    rng.shuffle(order)
    while len(order) < turns:
        order.append(rng.choice([k for k in range(len(voices)) if k != order[-1]]))
    pieces, ref, t = [], [], 0.0
    for k in order:
        for j in range(rng.randint(1, 3)):
            clip = rng.choice(voices[k])
            pause = rng.uniform(0.2, 0.9) if j == 0 else rng.uniform(0.1, 0.3)
            pieces += [np.zeros(int(pause * SR), np.float32), clip]
            t += pause
            ref.append((t, t + len(clip) / SR, k))
            t += len(clip) / SR
    pieces.append(np.zeros(SR // 2, np.float32))
    return np.concatenate(pieces), ref


def der(ref: list[tuple[float, float, int]], turns) -> float:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    r, h = Annotation(), Annotation()
    for i, (s, e, k) in enumerate(ref):
        r[Segment(s, e), i] = f"ref{k}"
    for i, t in enumerate(turns):
        h[Segment(t.start, t.end), i] = f"hyp{t.speaker}"
    return float(DiarizationErrorRate(collar=0.25)(r, h))


def evaluate(name: str, voices: list[list[np.ndarray]], args) -> dict:
    from engine.audio import split_on_speech
    from engine.speakers.diarize import diarize

    rng = random.Random(args.seed)
    rows = []
    for n in COUNTS:
        for _ in range(args.interviews):
            if len(voices) < n:
                break
            audio, ref = interview(rng.sample(voices, n), args.turns, rng)
            chunks = split_on_speech(audio)
            auto = diarize(audio, None, chunks=chunks)
            given = diarize(audio, n, chunks=chunks)
            rows.append({"speakers": n, "seconds": len(audio) / SR, "found": auto.speakers,
                         "der_auto": der(ref, auto.turns), "der_given": der(ref, given.turns)})
    out = {}
    for n in COUNTS:
        sel = [r for r in rows if r["speakers"] == n]
        if sel:
            out[n] = {"interviews": len(sel), "minutes": sum(r["seconds"] for r in sel) / 60,
                      "der_auto": float(np.mean([r["der_auto"] for r in sel])),
                      "der_given": float(np.mean([r["der_given"] for r in sel])),
                      "count_right": sum(r["found"] == n for r in sel) / len(sel),
                      "found": [r["found"] for r in sel]}
            o = out[n]
            print(f"{name} {n} speakers: {o['interviews']} interviews, {o['minutes']:.1f} min, DER auto "
                  f"{100 * o['der_auto']:.1f}%, given {100 * o['der_given']:.1f}%, count right "
                  f"{100 * o['count_right']:.0f}% (found {o['found']})", flush=True)
    return out


def hour(voices: list[list[np.ndarray]], seed: int) -> dict:
    """Seconds to find speech in, and to diarize, one hour of three speakers taking turns."""
    from engine.audio import split_on_speech
    from engine.speakers.diarize import diarize
    from engine.speakers.voice import voice_encoder

    rng = random.Random(seed)
    three = rng.sample(voices, 3)
    parts, total = [], 0
    while total < 3600 * SR:
        a, _ = interview(three, 40, rng)
        parts.append(a)
        total += len(a)
    audio = np.concatenate(parts)[:3600 * SR]
    voice_encoder()
    t0 = time.perf_counter()
    chunks = split_on_speech(audio)
    t1 = time.perf_counter()
    d = diarize(audio, None, chunks=chunks)
    t2 = time.perf_counter()
    out = {"vad_s": t1 - t0, "diarize_s": t2 - t1, "found": d.speakers}
    print(f"one hour of 3 speakers: VAD {out['vad_s']:.0f} s (transcription runs it anyway), diarization on "
          f"top {out['diarize_s']:.0f} s, {d.speakers} speakers found", flush=True)
    return out


def single(folders: list[Path], files: int = 15) -> dict:
    """Speakers found by `auto` in each folder's first `files` clips joined (one speaker)."""
    from engine.audio import load_audio, split_on_speech
    from engine.speakers.diarize import diarize

    out = {}
    for folder in folders:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".wav", ".flac"))[:files]
        audio = np.concatenate([np.concatenate([load_audio(p), np.zeros(SR // 2, np.float32)]) for p in paths])
        d = diarize(audio, None, chunks=split_on_speech(audio))
        out[str(folder)] = {"seconds": len(audio) / SR, "found": d.speakers}
        print(f"{folder}: {len(paths)} clips, {len(audio) / SR:.0f} s, found {d.speakers}", flush=True)
    return out


def thread_check(windows: int = 64, rounds: int = 2) -> dict:
    """Seconds to embed `windows` 1.5 s windows on 1 and on 2 torch threads, alternating: why
    VoiceEncoder.embed pins one thread."""
    import torch

    from engine.speakers import voice

    enc = voice.voice_encoder()
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(int(1.5 * SR))).astype(np.float32) for _ in range(windows)]
    out: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds):
        for n in (1, 2):
            torch.set_num_threads(n)
            t = time.perf_counter()
            with torch.inference_mode():
                for b in range(0, windows, 64):
                    enc.lstm(torch.stack([enc.mels(c) for c in clips[b:b + 64]]))
            out[n].append(time.perf_counter() - t)
    print(" ".join(f"{n} thread{'s' * (n > 1)}: " + ", ".join(f"{x:.2f} s" for x in v) for n, v in out.items()),
          f"for {windows} windows", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, help="a speechocean762 checkout (WAVE/SPEAKERnnnn/*.WAV)")
    ap.add_argument("--ljspeech", type=Path, help="LJSpeech-1.1 folder: its reader joins the real speakers")
    ap.add_argument("--accent", type=Path, help="recipes.real_speech's accent_archive folder: its held-out speakers")
    ap.add_argument("--no-synthetic", action="store_true", help="leave out the espeak-ng interviews")
    ap.add_argument("--interviews", type=int, default=12, help="interviews per speaker count")
    ap.add_argument("--turns", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hour", action="store_true", help="also time one hour of audio")
    ap.add_argument("--only-hour", action="store_true", help="time one hour of audio, nothing else")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--thread-check", action="store_true", help="time the speaker encoder on 1 and 2 threads")
    ap.add_argument("--single", type=Path, nargs="+", help="folders of one speaker's clips each")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "speakers")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.thread_check:
        thread_check()
        return
    if args.single:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "single.json").write_text(json.dumps(single(args.single), indent=2))
        return
    results = {}
    sets = {} if args.no_synthetic else {"synthetic": synthetic_voices(seed=args.seed)}
    if args.real is not None:
        sets["real"] = real_voices(args.real, args.ljspeech)
    if args.accent is not None:
        sets["accent"] = accent_voices(args.accent)
    for name, voices in sets.items():
        if not args.only_hour:
            results[name] = evaluate(name, voices, args)
    if args.hour or args.only_hour:
        results["hour"] = hour(sets.get("real") or next(iter(sets.values())), args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
