"""Recording from a microphone straight into a WAV file in the project folder.

The audio callback (PortAudio's thread) only copies blocks into a queue. A timer on the
GUI thread drains it every 50 ms: it writes the blocks to the WAV file and flushes, so
a crash loses at most that much, then updates the level meter, the clock and the live
dictation buffer. Pause keeps the stream open but drops the blocks, so the file holds
only what the user meant to record, and its timeline is the transcript's timeline.

`stream_factory` builds the input stream; tests pass a fake with the same shape as
sounddevice.InputStream (start/stop/close, the callback called with (indata, frames,
time, status)).
"""

from __future__ import annotations

import logging
import queue
import time
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
from PySide6.QtCore import QObject, QTimer, Signal

log = logging.getLogger(__name__)

PREFERRED_RATE = 16000  # what the models want; recorded at the device's rate when it can't


def sounddevice_or_reason():
    """sounddevice, or the reason it cannot be used (no PortAudio library, ...)."""
    try:
        import sounddevice as sd
    except OSError as e:  # "PortAudio library not found"
        return None, f"audio system unavailable ({e}); install libportaudio2"
    except ImportError as e:
        return None, f"sounddevice is not installed ({e})"
    return sd, None


def input_devices() -> tuple[list[tuple[int, str]], str | None]:
    """(index, name) of every input device, and the reason when there are none."""
    sd, why = sounddevice_or_reason()
    if sd is None:
        return [], why
    try:
        devices = sd.query_devices()
    except Exception as e:  # noqa: BLE001 - PortAudio errors vary by host API
        return [], f"cannot list audio devices ({e})"
    found = [(i, d["name"]) for i, d in enumerate(devices) if d.get("max_input_channels", 0) > 0]
    if not found:
        return [], "no microphone or other audio input device was found"
    return found, None


def output_available() -> str | None:
    """None when playback can work, else the reason it cannot."""
    sd, why = sounddevice_or_reason()
    if sd is None:
        return why
    try:
        devices = sd.query_devices()
    except Exception as e:  # noqa: BLE001
        return f"cannot list audio devices ({e})"
    if not any(d.get("max_output_channels", 0) > 0 for d in devices):
        return "no speaker or other audio output device was found"
    return None


def sounddevice_input(samplerate: int, channels: int, device: int | None, callback: Callable):
    """A real input stream at 16 kHz if the device takes it, else at its own rate."""
    sd, why = sounddevice_or_reason()
    if sd is None:
        raise RuntimeError(why)
    try:
        sd.check_input_settings(device=device, samplerate=samplerate, channels=channels, dtype="float32")
    except Exception:  # noqa: BLE001 - the device does not do 16 kHz: use its default rate
        samplerate = int(sd.query_devices(device, "input")["default_samplerate"])
    return sd.InputStream(samplerate=samplerate, channels=channels, dtype="float32", device=device,
                          callback=callback, blocksize=0)


class Recorder(QObject):
    """Start/pause/resume/stop a recording into `path`; emits level, elapsed time and audio."""

    level = Signal(float)  # 0..1, peak of the last blocks on a dB scale
    elapsed = Signal(float)  # seconds recorded (pauses excluded)
    state_changed = Signal(str)  # idle | recording | paused
    audio = Signal(object, int)  # mono float32 block as written, and its sample rate
    failed = Signal(str)

    def __init__(self, stream_factory: Callable | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.stream_factory = stream_factory or sounddevice_input
        self.state = "idle"
        self.path: Path | None = None
        self.samplerate = PREFERRED_RATE
        self.frames = 0
        self._stream = None
        self._file: sf.SoundFile | None = None
        self._queue: queue.Queue = queue.Queue()
        self._status_errors = 0
        self._timer = QTimer(self)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self.drain)

    @property
    def seconds(self) -> float:
        return self.frames / self.samplerate

    def _callback(self, indata, frames, time_info, status) -> None:
        """PortAudio's thread: copy and hand over, nothing else (no allocation-heavy work, no I/O)."""
        if status:
            self._status_errors += 1
        self._queue.put(np.array(indata, dtype=np.float32, copy=True))

    def start(self, path: Path, device: int | None = None) -> None:
        if self.state != "idle":
            return
        self.path = Path(path)
        self.frames = 0
        self._queue = queue.Queue()
        try:
            self._stream = self.stream_factory(PREFERRED_RATE, 1, device, self._callback)
            self.samplerate = int(getattr(self._stream, "samplerate", PREFERRED_RATE))
            self._file = sf.SoundFile(self.path, "w", samplerate=self.samplerate, channels=1, subtype="PCM_16",
                                      format="WAV")
            self._stream.start()
        except Exception as e:  # noqa: BLE001 - any device error is reported, never raised into Qt
            self._close_stream()
            if self._file is not None:
                self._file.close()
                self._file = None
            self.failed.emit(f"cannot start recording: {e}")
            return
        self._timer.start()
        self._set_state("recording")
        log.info("recording to %s at %d Hz", self.path, self.samplerate)

    def pause(self) -> None:
        if self.state == "recording":
            self.drain()
            self._set_state("paused")

    def resume(self) -> None:
        if self.state == "paused":
            self.drain(discard=True)  # what came in while paused is not part of the recording
            self._set_state("recording")

    def stop(self) -> Path | None:
        """Stop, write what is left and close the file (which fills in the WAV header)."""
        if self.state == "idle":
            return None
        self._close_stream()
        self.drain(discard=self.state == "paused")
        self._timer.stop()
        if self._file is not None:
            self._file.close()
            self._file = None
        self._set_state("idle")
        self.level.emit(0.0)
        log.info("recording stopped: %.1f s in %s", self.seconds, self.path)
        return self.path

    def drain(self, discard: bool = False) -> None:
        """Move queued blocks to the file (flushed), the meter and the live dictation buffer."""
        blocks = []
        while True:
            try:
                blocks.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not blocks or self._file is None:
            return
        data = np.concatenate(blocks)
        mono = data.mean(axis=1, dtype=np.float32) if data.ndim == 2 else data.astype(np.float32)
        peak = float(np.max(np.abs(mono))) if len(mono) else 0.0
        if discard or self.state == "paused":
            return
        try:
            self._file.write(mono)
            self._file.flush()
        except (OSError, RuntimeError, sf.SoundFileError) as e:
            self.failed.emit(f"cannot write the recording ({e}); recording stopped")
            self.stop()
            return
        self.frames += len(mono)
        db = 20 * np.log10(max(peak, 1e-6))
        self.level.emit(float(np.clip((db + 60) / 60, 0.0, 1.0)))  # -60 dBFS .. 0 dBFS
        self.elapsed.emit(self.seconds)
        self.audio.emit(mono, self.samplerate)

    def _close_stream(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            except Exception as e:  # noqa: BLE001
                log.warning("closing the input stream: %s", e)
            self._stream = None

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)


class FakeInputStream:
    """An input stream driven by hand (tests, demos): `feed(block)` calls the callback."""

    def __init__(self, samplerate: int, channels: int, device, callback):
        self.samplerate = samplerate
        self.channels = channels
        self.callback = callback
        self.started = False
        self.closed = False

    def start(self):
        self.started = True

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True

    def feed(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float32).reshape(-1, 1)
        if self.started:
            self.callback(block, len(block), time.monotonic(), None)
