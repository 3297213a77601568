"""Playback for correcting a transcript: play/pause, seek, and 0.5-2x speed at the same pitch.

PySide6-Essentials has no QtMultimedia, so this plays through a sounddevice output
stream. Slower or faster speech keeps its pitch with WSOLA (overlap-add of short frames
taken at the new pace, each shifted a little to line up with the waveform of the one
before, so there are no clicks or echoes). The audio callback runs on PortAudio's
thread and shares only the stretcher (behind a lock) and plain numbers with the GUI.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from app.gui.recorder import output_available, sounddevice_or_reason

log = logging.getLogger(__name__)

SR = 16000
SPEEDS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


class Stretcher:
    """Reads audio from `pos` at `speed`, giving 16 kHz output in hops of `HOP` samples."""

    FRAME = 640  # 40 ms
    HOP = FRAME // 2
    TOL = 160  # how far (10 ms) a frame may move to match the waveform before it

    def __init__(self, audio: np.ndarray, pos: int = 0, speed: float = 1.0):
        self.audio = audio
        self.window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.FRAME) / self.FRAME)  # sums to 1 at HOP
        self.speed = speed
        self.seek(pos)

    def seek(self, pos: int) -> None:
        self.ideal = float(max(0, min(pos, len(self.audio))))
        self.prev = int(self.ideal) - self.HOP
        self.tail = np.zeros(self.HOP, np.float32)

    @property
    def position(self) -> float:
        """Input samples consumed so far."""
        return self.ideal

    @property
    def finished(self) -> bool:
        return self.ideal >= len(self.audio)

    def _take(self, start: int, n: int) -> np.ndarray:
        out = np.zeros(n, np.float32)
        a, b = max(start, 0), min(start + n, len(self.audio))
        if b > a:
            out[a - start:b - start] = self.audio[a:b]
        return out

    def hop(self) -> np.ndarray:
        if self.speed == 1.0:  # straight copy: exact, and cheap
            pos = int(self.ideal)
            out = self._take(pos, self.HOP)
            self.ideal = pos + self.HOP
            self.prev = pos
            self.tail[:] = 0
            return out
        target = self._take(self.prev + self.HOP, self.FRAME)  # how the last frame goes on
        self.ideal += self.HOP * self.speed
        lo = int(self.ideal) - self.TOL
        region = self._take(lo, 2 * self.TOL + self.FRAME)
        if np.any(target):
            best = lo + int(np.argmax(np.correlate(region, target, "valid")))
        else:
            best = int(self.ideal)
        frame = self.window * self._take(best, self.FRAME)
        out = self.tail + frame[:self.HOP]
        self.tail = frame[self.HOP:].astype(np.float32)
        self.prev = best
        return out.astype(np.float32)

    def read(self, n: int) -> np.ndarray:
        """Whole hops covering at least `n` samples (callers buffer what they do not use yet)."""
        hops = [self.hop() for _ in range(max(1, -(-n // self.HOP)))]
        return np.concatenate(hops)


def sounddevice_output(samplerate: int, channels: int, callback: Callable):
    sd, why = sounddevice_or_reason()
    if sd is None:
        raise RuntimeError(why)
    try:
        sd.check_output_settings(samplerate=samplerate, channels=channels, dtype="float32")
    except Exception:  # noqa: BLE001 - the device wants its own rate; we resample
        samplerate = int(sd.query_devices(None, "output")["default_samplerate"])
    return sd.OutputStream(samplerate=samplerate, channels=channels, dtype="float32", callback=callback)


class Player(QObject):
    position_changed = Signal(float)  # seconds
    state_changed = Signal(str)  # playing | paused
    failed = Signal(str)

    def __init__(self, stream_factory: Callable | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.stream_factory = stream_factory or sounddevice_output
        self.unavailable = None if stream_factory else output_available()
        self.audio = np.zeros(0, np.float32)
        self.speed = 1.0
        self.state = "paused"
        self._lock = threading.Lock()
        self._stretcher = Stretcher(self.audio)
        self._stream = None
        self._fifo = np.zeros(0, np.float32)
        self._resampler = None
        self._rate = SR
        self._timer = QTimer(self)
        self._timer.setInterval(40)
        self._timer.timeout.connect(self._tick)

    @property
    def duration(self) -> float:
        return len(self.audio) / SR

    @property
    def position(self) -> float:
        """Where the listener is: what was read, less what still waits in the output buffer."""
        ahead = len(self._fifo) * (SR / self._rate) * self.speed
        return max(0.0, self._stretcher.position - ahead) / SR

    def load(self, audio: np.ndarray | None) -> None:
        self.pause()
        with self._lock:
            self.audio = np.zeros(0, np.float32) if audio is None else np.asarray(audio, np.float32)
            self._stretcher = Stretcher(self.audio, 0, self.speed)
        self.position_changed.emit(0.0)

    def seek(self, seconds: float) -> None:
        with self._lock:
            self._stretcher.seek(int(max(0.0, min(seconds, self.duration)) * SR))
            self._fifo = np.zeros(0, np.float32)
        self.position_changed.emit(self.position)

    def skip(self, seconds: float) -> None:
        self.seek(self.position + seconds)

    def set_speed(self, speed: float) -> None:
        self.speed = float(min(max(speed, 0.5), 2.0))
        with self._lock:
            self._stretcher.speed = self.speed

    def faster(self, step: int = 1) -> float:
        i = min(range(len(SPEEDS)), key=lambda k: abs(SPEEDS[k] - self.speed))
        self.set_speed(SPEEDS[max(0, min(len(SPEEDS) - 1, i + step))])
        return self.speed

    def toggle(self) -> None:
        self.pause() if self.state == "playing" else self.play()

    def play(self) -> None:
        if self.state == "playing" or not len(self.audio):
            return
        if self.unavailable:
            self.failed.emit(f"cannot play audio: {self.unavailable}")
            return
        if self._stretcher.finished:
            self.seek(0.0)
        try:
            self._stream = self.stream_factory(SR, 1, self._callback)
            self._rate = int(getattr(self._stream, "samplerate", SR))
            if self._rate != SR:
                import soxr

                self._resampler = soxr.ResampleStream(SR, self._rate, 1, dtype="float32")
            self._fifo = np.zeros(0, np.float32)
            self._stream.start()
        except Exception as e:  # noqa: BLE001 - device errors become a message
            self._stream = None
            self.failed.emit(f"cannot play audio: {e}")
            return
        self.state = "playing"
        self._timer.start()
        self.state_changed.emit(self.state)

    def pause(self) -> None:
        if self.state != "playing":
            return
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception as e:  # noqa: BLE001
                log.warning("closing the output stream: %s", e)
        self.state = "paused"
        self._timer.stop()
        self.state_changed.emit(self.state)
        self.position_changed.emit(self.position)

    def _callback(self, outdata, frames, time_info, status) -> None:
        """PortAudio's thread: fill `outdata` with the next stretched (and resampled) audio."""
        with self._lock:
            while len(self._fifo) < frames:
                block = self._stretcher.read(1024)
                if self._resampler is not None:
                    block = self._resampler.resample_chunk(block)
                self._fifo = np.concatenate([self._fifo, block])
            out, self._fifo = self._fifo[:frames], self._fifo[frames:]
        outdata[:] = out.reshape(-1, 1) if outdata.ndim == 2 else out

    def _tick(self) -> None:
        self.position_changed.emit(self.position)
        if self._stretcher.finished:
            self.pause()


class FakeOutputStream:
    """An output stream driven by hand (tests): `pull(frames)` asks the player for audio."""

    def __init__(self, samplerate: int, channels: int, callback: Callable):
        self.samplerate = samplerate
        self.callback = callback
        self.started = False
        self.played: list[np.ndarray] = []

    def start(self):
        self.started = True

    def stop(self):
        self.started = False

    def close(self):
        pass

    def pull(self, frames: int) -> np.ndarray:
        out = np.zeros((frames, 1), np.float32)
        self.callback(out, frames, None, None)
        self.played.append(out[:, 0].copy())
        return out[:, 0]
