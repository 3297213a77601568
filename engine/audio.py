"""Audio in: decode any file to 16 kHz mono float32, then cut it where nobody speaks.

Every encoder Steno uses wants 16 kHz mono and at most ~30 s at a time, and a model fed
long silences invents text. So a recording goes through two steps here:

- `load_audio` decodes with soundfile (libsndfile: WAV, FLAC, OGG, MP3, ...) and falls
  back to an `ffmpeg` process for everything else (AAC, video files), then mixes to mono
  and resamples with soxr. Blocks are mixed and resampled as they are read, so a
  two-hour file costs little more than the 16 kHz array itself.
- `split_on_speech` runs silero-vad (its ONNX model, straight through onnxruntime, no
  torch) and returns `AudioChunk`s of at most `max_seconds` that keep their times on
  the original timeline.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import soxr

from engine.errors import AudioError, StenoError

SAMPLE_RATE = 16000

_BLOCK_FRAMES = 1 << 18  # frames read per soundfile block (~6 s at 44.1 kHz)
# A header outside these rates is damaged: 1 Hz would make resampling to 16 kHz ask for
# 16000 samples per stored one (gigabytes), and no recording is made that way.
MIN_RATE, MAX_RATE = 1000, 768_000

# silero-vad v5/v6 at 16 kHz: 512 new samples per call, preceded by the last 64 samples
# of the previous window, with a (2, 1, 128) recurrent state carried between calls.
VAD_WINDOW = 512
VAD_CONTEXT = 64
VAD_FRAME_S = VAD_WINDOW / SAMPLE_RATE  # 32 ms
_VAD_MODEL = "silero_vad.onnx"
_MIN_SPEECH_S = 0.1  # speech shorter than this is a click, not a word
_NEG_THRESHOLD_GAP = 0.15  # hysteresis: speech ends below threshold - 0.15 (as silero does)
# Faint speech next to a speech region joins it (`_widen`): whispered, falsetto and quiet
# words score 0.1-0.5 where voiced speech scores near 1, and silence near 0.
EDGE_THRESHOLD = 0.1
# Creaky and whispered speech peaks near 0.5 where silence, hiss, hum and tones stay under
# 0.05: a chunk whose VAD reaches this much is worth the model's own word (the Transcriber's
# check of text on near-silence). Looking for speech this low adds more invented text
# than speech (bench.short_clips): chunks are still found at the VAD's own 0.5.
FAINT_SPEECH = 0.3
EDGE_GAP_S = 1.0
EDGE_MAX_S = 2.0


# ----------------------------------------------------------------------------- decoding


def check_audio_file(path: str | Path) -> Path:
    """Refuse, in one line naming the file, what cannot be an audio file: checked before
    any model loads. A named pipe or a device is refused rather than opened: reading one
    could wait forever (a FIFO nobody writes) or never end (/dev/zero)."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioError("file not found", path) from None
    except OSError as e:
        raise AudioError(f"cannot read file ({e.strerror or e})", path) from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError("is a folder, not an audio file", path)
    if not stat.S_ISREG(st.st_mode):
        kind = "a named pipe" if stat.S_ISFIFO(st.st_mode) else "a device" \
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a socket or other special file"
        raise AudioError(f"is {kind}, not an audio file", path)
    if st.st_size == 0:
        raise AudioError("empty file (0 bytes)", path)
    try:
        with open(path, "rb"):
            pass
    except OSError as e:  # e.g. permission denied: say so, not "damaged file"
        raise AudioError(f"cannot read file ({e.strerror or e})", path) from None
    return path


def _sf_reason(err: Exception) -> str:
    """libsndfile's own words ("Format not recognised."), without the repeated file name."""
    reason = getattr(err, "error_string", None) or str(err)
    return reason.strip().rstrip(".") or type(err).__name__


_stderr_lock = threading.Lock()
# What libsndfile's MP3 decoder (libmpg123) prints to the C stderr while it searches a
# file: "Note: Illegal Audio-MPEG-Header ...", "Note: Trying to resync...".
_DECODER_CHATTER = ("Note:", "Warning:", "[src/libmpg123")


@contextlib.contextmanager
def _decoder_stderr_captured():
    """Keep a C decoder's chatter out of the terminal: a text file named .mp3 must give the
    user one line, not mpg123's notes first. Anything else written meanwhile (another
    thread's log line) is passed on afterwards. One capture at a time: a second decode
    running meanwhile is simply not captured."""
    if not _stderr_lock.acquire(blocking=False):
        yield
        return
    try:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            yield
            return
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                held.seek(0)
                kept = [ln for ln in held.read().splitlines(keepends=True)
                        if not ln.decode("utf-8", "replace").lstrip().startswith(_DECODER_CHATTER)]
                if kept:
                    os.write(2, b"".join(kept))
    finally:
        _stderr_lock.release()


def _check_finite(samples: np.ndarray, path: Path) -> None:
    """NaN or infinite samples (a float WAV from a broken tool) poison resampling and every
    model after it; they are refused here, with the file's name."""
    for i in range(0, len(samples), 1 << 20):  # slices: no whole-file boolean copy
        if not np.isfinite(samples[i : i + (1 << 20)]).all():
            raise AudioError("damaged audio: it contains NaN or infinite sample values", path)


def _read_soundfile(path: Path) -> np.ndarray:
    """Decode block by block, mixing to mono and resampling as we go."""
    with sf.SoundFile(path) as f:
        rate, channels, frames = f.samplerate, f.channels, f.frames
        if frames == 0:
            raise AudioError("contains no audio (zero length)", path)
        if not MIN_RATE <= rate <= MAX_RATE:
            raise AudioError(f"damaged header: a sample rate of {rate} Hz (audio is {MIN_RATE}-{MAX_RATE} Hz)", path)
        expected = frames if rate == SAMPLE_RATE else math.ceil(frames * SAMPLE_RATE / rate)
        out = np.empty(expected + 64, dtype=np.float32)
        n = 0
        stream = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")

        def put(block: np.ndarray) -> None:
            nonlocal out, n
            if n + len(block) > len(out):  # the header undercounted (some MP3s): grow
                out = np.concatenate([out[:n], np.empty(max(len(block), len(out) // 8), np.float32)])
            out[n : n + len(block)] = block
            n += len(block)

        while True:
            block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
            if len(block) == 0:
                break
            _check_finite(block.reshape(-1), path)
            mono = block[:, 0] if channels == 1 else block.mean(axis=1, dtype=np.float32)
            put(mono if stream is None else stream.resample_chunk(mono, last=False))
        if stream is not None:
            put(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    if n == 0:
        raise AudioError("contains no audio (zero length)", path)
    return out[:n]  # a view: copying would double the peak memory of a long file


def _read_ffmpeg(path: Path, ffmpeg: str) -> np.ndarray:
    """Let ffmpeg decode, mix and resample; read raw float32 from its stdout."""
    # "file:" keeps ffmpeg from reading a name like "http:..." or "pipe:0" as a protocol.
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-i", f"file:{path}",
           "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "-"]
    buf = bytearray()
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty stderr cannot deadlock us
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 20):
            buf += chunk
        proc.stdout.close()
        code = proc.wait()
        err.seek(0)
        lines = [ln.strip() for ln in err.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    if code != 0:
        reason = lines[-1] if lines else f"ffmpeg exited with code {code}"
        # ffmpeg prefixes the path to its message; the AudioError names the file already.
        reason = reason.replace(f"file:{path}: ", "").replace(f"{path}: ", "")
        raise AudioError(f"cannot decode audio: unknown format or damaged file (ffmpeg: {reason})", path)
    if len(buf) % 4:
        del buf[len(buf) - len(buf) % 4 :]  # in place: slicing would copy
    if not buf:
        raise AudioError("contains no audio (zero length)", path)
    audio = np.frombuffer(buf, dtype=np.float32)
    _check_finite(audio, path)
    return audio


def load_audio(path: str | Path) -> np.ndarray:
    """Decode `path` to float32 mono at 16 kHz. Silence is returned, not refused.

    Raises AudioError (naming the file, one line) for a missing or empty file, a folder,
    a pipe or device, audio neither soundfile nor ffmpeg can decode, a header's impossible
    sample rate, NaN or infinite samples, zero-length audio, and audio too long for memory.
    """
    path = check_audio_file(path)
    try:
        with _decoder_stderr_captured():
            return _read_soundfile(path)
    except AudioError:
        raise
    except (sf.SoundFileError, RuntimeError) as e:  # libsndfile cannot read it
        reason = _sf_reason(e)
    except OSError as e:
        raise AudioError(f"cannot read file ({e.strerror or e})", path) from None
    except MemoryError:
        raise AudioError("too long to decode in this computer's memory", path) from None
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(
            f"cannot decode audio: unknown format or damaged file (libsndfile: {reason}); "
            "installing ffmpeg adds more formats", path)
    try:
        return _read_ffmpeg(path, ffmpeg)
    except MemoryError:
        raise AudioError("too long to decode in this computer's memory", path) from None


def audio_duration(path: str | Path) -> float:
    """Length in seconds from the file header (ffprobe for what soundfile cannot open)."""
    path = check_audio_file(path)
    try:
        with _decoder_stderr_captured():
            return float(sf.info(str(path)).duration)
    except (sf.SoundFileError, RuntimeError) as e:
        reason = _sf_reason(e)
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise AudioError(f"cannot decode audio: unknown format or damaged file (libsndfile: {reason})", path)
    cmd = [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", f"file:{path}"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    try:
        return float(res.stdout.strip())
    except ValueError:
        lines = res.stderr.strip().splitlines()
        why = lines[-1].replace(f"file:{path}: ", "").replace(f"{path}: ", "") if lines else "no duration in header"
        raise AudioError(f"cannot decode audio: unknown format or damaged file (ffprobe: {why})", path) from None


# ------------------------------------------------------------------ voice activity (VAD)


@dataclass
class AudioChunk:
    """A stretch of the 16 kHz signal; start/end are seconds on the original timeline."""

    start: float
    end: float
    audio: np.ndarray
    # The VAD's speech probability for each window the chunk covers, from the run over the
    # whole file (`split_on_speech`), so asking again whether it holds speech costs nothing.
    speech_probs: np.ndarray | None = None


def _vad_model_path() -> Path:
    """The ONNX file inside the installed silero-vad wheel.

    Found with find_spec rather than importlib.resources.files("silero_vad.data"): that
    would run silero_vad/__init__.py, which imports torch (seconds, ~250 MB) for nothing.
    """
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise StenoError("the silero-vad package is not installed (pip install silero-vad)")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "data" / _VAD_MODEL
        if path.is_file():
            return path
    raise StenoError(f"silero-vad is installed but has no data/{_VAD_MODEL}")


@functools.lru_cache(maxsize=1)
def _vad_session():
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # one small window at a time: threads only add overhead
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(_vad_model_path()), sess_options=opts, providers=["CPUExecutionProvider"])


def speech_probabilities(
    audio: np.ndarray, progress: Callable[[float], None] | None = None
) -> np.ndarray:
    """Silero's speech probability for each 32 ms window (512 samples) of 16 kHz audio.

    Window i covers samples [512 i, 512 i + 512); the last one is zero-padded. The model
    is streaming: it sees the window plus the 64 samples before it, and carries an LSTM
    state, so windows must be fed in order (as silero's own OnnxWrapper does).
    """
    audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    n = -(-len(audio) // VAD_WINDOW)
    probs = np.zeros(n, dtype=np.float32)
    if n == 0:
        return probs
    session = _vad_session()
    state = np.zeros((2, 1, 128), dtype=np.float32)
    sr = np.array(SAMPLE_RATE, dtype=np.int64)
    width = VAD_CONTEXT + VAD_WINDOW
    report_every = max(1, n // 100)
    for i in range(n):
        lo = i * VAD_WINDOW - VAD_CONTEXT
        if lo >= 0 and lo + width <= len(audio):
            x = audio[lo : lo + width]  # a view: no copy of the long signal
        else:  # first window (zero context) or last window (zero tail)
            x = np.zeros(width, dtype=np.float32)
            seg = audio[max(lo, 0) : lo + width]
            start = max(-lo, 0)
            x[start : start + len(seg)] = seg
        out, state = session.run(None, {"input": x[None, :], "state": state, "sr": sr})
        probs[i] = out[0, 0]
        if progress is not None and (i + 1) % report_every == 0:
            progress((i + 1) / n)
    return probs


def _speech_regions(probs: np.ndarray, threshold: float, min_silence_s: float) -> list[tuple[int, int]]:
    """Runs of speech windows as [first, last+1) window indices, with short pauses bridged."""
    neg = max(threshold - _NEG_THRESHOLD_GAP, 0.01)
    regions: list[tuple[int, int]] = []
    start = None
    for i, p in enumerate(probs):
        if start is None and p >= threshold:
            start = i
        elif start is not None and p < neg:
            regions.append((start, i))
            start = None
    if start is not None:
        regions.append((start, len(probs)))
    merged: list[tuple[int, int]] = []
    min_gap = min_silence_s / VAD_FRAME_S
    for a, b in regions:
        if merged and a - merged[-1][1] < min_gap:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return [(a, b) for a, b in merged if (b - a) * VAD_FRAME_S >= _MIN_SPEECH_S]


def _widen(a: int, b: int, probs: np.ndarray) -> tuple[int, int]:
    """Speech windows [a, b) grown over the faint speech beside them: windows the VAD gives
    at least EDGE_THRESHOLD, each within EDGE_GAP_S of the next, up to EDGE_MAX_S a side.

    The VAD is surest of loud, voiced speech; a quiet first word, a whispered or falsetto
    end of a sentence scores well below its threshold. Cutting there loses words; a little
    silence kept instead costs nothing (the decoder's timestamps and guards see it).
    """
    gap, most = round(EDGE_GAP_S / VAD_FRAME_S), round(EDGE_MAX_S / VAD_FRAME_S)
    first, last = max(a - most, 0), min(b + most, len(probs))
    while a > first:
        lo = max(a - gap, first)
        faint = np.flatnonzero(probs[lo:a] >= EDGE_THRESHOLD)
        if len(faint) == 0:
            break
        a = lo + int(faint[0])
    while b < last:
        hi = min(b + gap, last)
        faint = np.flatnonzero(probs[b:hi] >= EDGE_THRESHOLD)
        if len(faint) == 0:
            break
        b += int(faint[-1]) + 1
    return a, b


def _cut_long(start: float, end: float, probs: np.ndarray, max_seconds: float) -> list[tuple[float, float]]:
    """Cut a region longer than max_seconds at its least speech-like window.

    The cut is searched in the second half of each max_seconds span so no piece gets
    tiny; if that span holds no whole window, cut hard at max_seconds.
    """
    pieces = []
    while end - start > max_seconds:
        lo = math.ceil((start + max_seconds / 2) / VAD_FRAME_S)
        hi = min(math.floor((start + max_seconds) / VAD_FRAME_S), len(probs))  # windows [lo, hi)
        if hi > lo:
            window = probs[lo:hi]
            i = lo + int(len(window) - 1 - np.argmin(window[::-1]))  # latest minimum: longer pieces
            cut = min((i + 0.5) * VAD_FRAME_S, start + max_seconds)
        else:
            cut = start + max_seconds
        pieces.append((start, cut))
        start = cut
    pieces.append((start, end))
    return pieces


def _plan_chunks(
    probs: np.ndarray,
    duration: float,
    max_seconds: float,
    *,
    min_silence_s: float,
    pad_s: float,
    threshold: float,
    max_gap_s: float,
) -> list[tuple[float, float]]:
    """Chunk (start, end) times in seconds from per-window speech probabilities."""
    padded: list[list[float]] = []
    for a, b in _speech_regions(probs, threshold, min_silence_s):
        a, b = _widen(a, b, probs)
        s, e = max(a * VAD_FRAME_S - pad_s, 0.0), min(b * VAD_FRAME_S + pad_s, duration)
        if padded and s <= padded[-1][1]:  # padding made neighbours touch
            padded[-1][1] = e
        else:
            padded.append([s, e])
    pieces = [p for s, e in padded for p in _cut_long(s, e, probs, max_seconds)]
    chunks: list[tuple[float, float]] = []
    for s, e in pieces:
        if chunks and e - chunks[-1][0] <= max_seconds and s - chunks[-1][1] <= max_gap_s:
            chunks[-1] = (chunks[-1][0], e)
        else:
            chunks.append((s, e))
    if not chunks and len(probs) and float(probs.max()) >= FAINT_SPEECH:
        # Nothing the VAD is sure of, yet something faint: a whispered or creaky recording,
        # whose words score 0.1-0.5 and lie too far apart to join. The whole of it goes to
        # the model, as faster-whisper decodes it; its text stands only where the model
        # vouches for it (the Transcriber's faint-speech check).
        chunks = _cut_long(0.0, duration, probs, max_seconds)
    return chunks


def split_on_speech(
    audio: np.ndarray,
    max_seconds: float = 30.0,
    *,
    min_silence_s: float = 0.3,
    pad_s: float = 0.2,
    threshold: float = 0.5,
    max_gap_s: float = 2.0,
    progress: Callable[[float], None] | None = None,
) -> list[AudioChunk]:
    """Speech in `audio` (16 kHz) as chunks of at most `max_seconds`; [] if nobody speaks.

    Speech regions (VAD probability from `threshold`) closer than `min_silence_s` are merged,
    grown over faint speech beside them (`_widen`), padded by `pad_s` each side, and cut at
    the least speech-like point when longer than `max_seconds`. Neighbouring
    regions are then packed into one chunk while it stays within `max_seconds` and the
    pause between them is at most `max_gap_s`: a long silence inside a chunk is where
    models hallucinate, and a long pause is also where a new paragraph starts.
    Chunk audio is a view into `audio`, not a copy.
    """
    if max_seconds <= VAD_FRAME_S:
        raise ValueError(f"max_seconds must exceed one VAD window ({VAD_FRAME_S} s)")
    audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    probs = speech_probabilities(audio, progress)
    duration = len(audio) / SAMPLE_RATE
    times = _plan_chunks(probs, duration, max_seconds, min_silence_s=min_silence_s,
                         pad_s=pad_s, threshold=threshold, max_gap_s=max_gap_s)
    chunks = []
    for s, e in times:
        a, b = round(s * SAMPLE_RATE), min(round(e * SAMPLE_RATE), len(audio))
        if b > a:
            chunks.append(AudioChunk(a / SAMPLE_RATE, b / SAMPLE_RATE, audio[a:b],
                                     probs[a // VAD_WINDOW:-(-b // VAD_WINDOW)]))
    if progress is not None:
        progress(1.0)
    return chunks
