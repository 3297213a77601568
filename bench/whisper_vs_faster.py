"""Steno's Whisper backend against faster-whisper on the same weights, side by side.

    .venv/bin/python -m bench.whisper_vs_faster [--manifest data/dev/dev.tsv] [--threads 2]
        [--models whisper-tiny.en whisper-base] [--repeats 3] [--record]
    .venv/bin/python -m bench.whisper_vs_faster --windows    # encoder input: clip frames vs 30 s

For each model, each engine runs in its own process (so peak memory is its own) with the
same thread count; all are loaded together and take turns clip by clip (rotating the
order), so load from other work on the machine falls on all of them alike:
- steno            `Transcriber.transcribe` as `steno transcribe` runs it: VAD, 30 s window, greedy,
                   fp32 encoder graph, int8 decoder (the CPU default, engine.decoding.int8)
- steno-fp32       the same with the decoder in fp32 too (`--precision fp32`)
- steno-int8       the same with the encoder graph in int8 as well (`--precision int8`)
- steno-whole      the backend on each whole clip without the VAD, 30 s window, all fp32
- steno-fwpad      the same, but the log-mel padded with zeros as faster-whisper does: proves
                   the converted weights against faster-whisper frame for frame
- faster-fp32/int8 faster-whisper 1.2 on the CTranslate2 folder assembled from the same
                   pinned packages, greedy (beam 1, temperature 0, no fallback), English
Printed: WER/CER (engine.text.metrics, normalised), the share of utterances whose greedy
transcript equals faster-whisper fp32's ("= faster": after engine.text.metrics.normalize;
"same text": character for character), RTF on clips under 10 s (each
clip's best of --repeats runs after a warm-up, model load excluded) and peak RSS.
--record writes `steno`'s dev WER/CER and RTF into the installed model's steno.json, which
`steno models` shows and the default model choice reads.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RTF_MAX_SECONDS = 10.0


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not getrusage's ru_maxrss: that one
    survives exec, so a spawned worker would report its parent's peak when larger."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _steno_engine(kind: str, model: str, threads: int):
    import torch

    import engine.runtime
    from engine.backend import Timing
    from engine.transcriber import Transcriber

    torch.set_num_threads(threads)
    engine.runtime.cpu_threads = lambda: threads
    precision = {"steno": None, "steno-int8": "int8"}.get(kind, "fp32")  # None: the CPU default
    tr = Transcriber(model, device="cpu", precision=precision)
    if kind in ("steno", "steno-fp32", "steno-int8"):
        return lambda a: tr.transcribe(a).text
    tr.backend.window = {"steno-whole": "30s", "steno-fwpad": "30s-zeros"}[kind]
    return lambda a: tr.backend.transcribe_batch([a], hints=None, beam_size=1, timing=Timing())[0].text


def _faster_engine(kind: str, ct2_dir: str, threads: int):
    from faster_whisper import WhisperModel

    m = WhisperModel(ct2_dir, device="cpu", compute_type=kind.split("-")[1], cpu_threads=threads)

    def fn(a):
        segments, _ = m.transcribe(a, beam_size=1, temperature=0.0, language="en",
                                   condition_on_previous_text=False, vad_filter=False)
        return "".join(s.text for s in segments).strip()

    return fn


def _worker(kind: str, source: str, paths: list[str], threads: int, conn) -> None:
    """One engine in its own process: load, then transcribe clip i on request, timed."""
    from engine.audio import load_audio

    make = _steno_engine if kind.startswith("steno") else _faster_engine
    fn = make(kind, source, threads)
    audios = [load_audio(p) for p in paths]
    fn(audios[0])  # warm-up: first calls allocate
    conn.send("ready")
    while (i := conn.recv()) is not None:
        t = time.perf_counter()
        text = fn(audios[i])
        conn.send((text, time.perf_counter() - t))
    conn.send(_peak_rss_mb())


def race(engines: list[tuple[str, str, str]], paths: list[str], threads: int, repeats: int) -> dict:
    """(label, kind, model or CT2 folder) engines, each in its own process, loaded one after
    another (so loading peaks never overlap), then timed clip by clip in turn, the order
    rotating, so a busy machine slows them alike. Per label: texts, best times, peak RSS."""
    ctx = mp.get_context("spawn")
    workers = {}
    for label, kind, source in engines:
        here, there = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(kind, source, paths, threads, there))
        proc.start()
        assert here.recv() == "ready"
        workers[label] = (proc, here)
    names = list(workers)
    texts = {n: [""] * len(paths) for n in names}
    times = {n: [float("inf")] * len(paths) for n in names}
    turn = 0
    for _ in range(repeats):
        for i in range(len(paths)):
            for name in names[turn % len(names):] + names[:turn % len(names)]:
                conn = workers[name][1]
                conn.send(i)
                texts[name][i], dt = conn.recv()
                times[name][i] = min(times[name][i], dt)
            turn += 1
    out = {}
    for name, (proc, conn) in workers.items():
        conn.send(None)
        out[name] = {"texts": texts[name], "times": times[name], "peak_rss_mb": conn.recv()}
        proc.join()
    return out


def compare(model: str, items, threads: int, repeats: int, ct2_root: Path) -> dict:
    """All engines loaded at once, each in its own process, and timed clip by clip in turn
    (the order rotating), so a busy machine slows them alike."""
    from engine.audio import SAMPLE_RATE, load_audio
    from engine.models.importers.whisper import assemble_ct2_folder
    from engine.text.metrics import error_rates, normalize

    paths = [str(i.audio) for i in items]
    refs = [i.text for i in items]
    durations = [len(load_audio(p)) / SAMPLE_RATE for p in paths]
    ct2_dir = ct2_root / model
    if not ct2_dir.is_dir():
        assemble_ct2_folder(model, ct2_dir)
    names = ["steno", "steno-fp32", "steno-int8", "steno-whole", "steno-fwpad", "faster-float32", "faster-int8"]
    engines = race([(n, n, model if n.startswith("steno") else str(ct2_dir)) for n in names], paths, threads, repeats)
    raw = engines["faster-float32"]["texts"]
    baseline = [normalize(t) for t in raw]
    short = [i for i, d in enumerate(durations) if d < RTF_MAX_SECONDS]
    for e in engines.values():
        rates = error_rates(refs, e["texts"])
        e["wer"], e["cer"] = rates.wer, rates.cer
        e["equal_to_faster"] = sum(normalize(t) == b for t, b in zip(e["texts"], baseline)) / len(baseline)
        e["identical_to_faster"] = sum(t.strip() == b.strip() for t, b in zip(e["texts"], raw)) / len(raw)
        e["rtf_short"] = sum(e["times"][i] for i in short) / sum(durations[i] for i in short)
    return {"model": model, "utterances": len(items), "short_clips": len(short),
            "audio_s": sum(durations), "engines": engines, "references": refs}


def window_study(model: str, items, threads: int) -> str:
    """What the encoder is fed, compared through the whole pipeline (VAD included): the
    clip's frames only, the clip padded with silence to 30 s, or its log-mel padded with
    zeros to 30 s (faster-whisper's way). WER/CER on the dev set and RTF on the short clips."""
    import torch

    import engine.runtime
    from engine.audio import SAMPLE_RATE, load_audio
    from engine.backend import Timing
    from engine.text.metrics import error_rates
    from engine.transcriber import Transcriber

    torch.set_num_threads(threads)
    engine.runtime.cpu_threads = lambda: threads
    tr = Transcriber(model, device="cpu")
    audios = [load_audio(i.audio) for i in items]
    short = [i for i, a in enumerate(audios) if len(a) / SAMPLE_RATE < RTF_MAX_SECONDS]
    lines = [f"{model}: encoder input window, whole pipeline",
             f"  {'window':10} {'WER %':>6} {'CER %':>6} {'RTF':>6} {'encoder RTF':>11} {'flags'}"]
    for window in ("clip", "30s", "30s-zeros"):
        tr.backend.window = window
        tr.transcribe(audios[0])  # warm-up
        tr.timing = Timing()
        texts, flags, wall = [], [], 0.0
        for i, a in enumerate(audios):
            t = time.perf_counter()
            transcript = tr.transcribe(a)
            if i in short:
                wall += time.perf_counter() - t
            texts.append(transcript.text)
            flags += [f for s in transcript.segments for f in s.flags]
        rates = error_rates([i.text for i in items], texts)
        seconds = sum(len(audios[i]) for i in short) / SAMPLE_RATE
        enc = tr.timing.encoder_seconds / tr.timing.audio_seconds
        lines.append(f"  {window:10} {100 * rates.wer:6.2f} {100 * rates.cer:6.2f} {wall / seconds:6.3f} {enc:11.3f} "
                     f"{','.join(sorted(set(flags))) or '-'}")
    return "\n".join(lines)


def table(result: dict) -> str:
    lines = [f"{result['model']}: {result['utterances']} utterances ({result['audio_s']:.1f} s), "
             f"RTF over the {result['short_clips']} clips under {RTF_MAX_SECONDS:.0f} s",
             f"  {'engine':16} {'WER %':>6} {'CER %':>6} {'= faster':>9} {'same text':>9} {'RTF':>6} {'peak MB':>8}"]
    for name, e in result["engines"].items():
        lines.append(f"  {name:16} {100 * e['wer']:6.2f} {100 * e['cer']:6.2f} {100 * e['equal_to_faster']:8.0f}% "
                     f"{100 * e['identical_to_faster']:8.0f}% {e['rtf_short']:6.3f} {e['peak_rss_mb']:8.0f}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", default=str(ROOT / "data" / "dev" / "dev.tsv"))
    p.add_argument("--models", nargs="+", default=["whisper-tiny.en", "whisper-base"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--record", action="store_true", help="write dev WER and RTF into the installed models")
    p.add_argument("--json", help="also write the full results (texts, times) here")
    p.add_argument("--show-texts", action="store_true")
    p.add_argument("--windows", action="store_true",
                   help="instead: compare the encoder input windows (clip frames only vs 30 s)")
    args = p.parse_args()

    from engine.evaluate import read_manifest
    from engine.models.registry import models_dir
    from engine.models.whisper_install import install_whisper_model, record_metrics
    from engine.whisper.encoder import ensure_encoder_onnx

    manifest = Path(args.manifest)
    if not manifest.is_file():
        from bench.devset import build

        manifest = build(manifest.parent)
    items = read_manifest(manifest)
    for model in args.models:
        install_whisper_model(model)  # a no-op when installed
        for precision in ("fp32", "int8"):  # a stale graph is re-exported here, not in a timed worker
            ensure_encoder_onnx(models_dir() / model, precision)
    if args.windows:
        for model in args.models:
            print(window_study(model, items, args.threads), flush=True)
        return
    results = []
    with tempfile.TemporaryDirectory() as ct2_root:
        for model in args.models:
            result = compare(model, items, args.threads, args.repeats, Path(ct2_root))
            results.append(result)
            print(table(result), flush=True)
            if args.show_texts:
                for i, ref in enumerate(result["references"]):
                    print(f"    ref   {ref}")
                    for name, e in result["engines"].items():
                        print(f"    {name:5.5} {e['texts'][i]}")
            if args.record:
                s = result["engines"]["steno"]
                record_metrics(models_dir() / model, dev_wer=round(s["wer"], 4), dev_cer=round(s["cer"], 4),
                               rtf=round(s["rtf_short"], 4), dev_set=f"{manifest.name} ({len(items)} utterances)",
                               measured_with=f"python -m bench.whisper_vs_faster, {args.threads} threads, CPU")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
