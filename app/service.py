"""The one loaded model, shared by the file queue and live dictation.

The GUI thread only says which model, adapter and device it wants (`configure`); the
engine job thread loads or switches on its next `get()`. Switching the adapter of the
same base model is cheap (Transcriber.set_adapter), anything else reloads, so changing
settings never needs a restart and never blocks the window.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from engine.errors import StenoError

log = logging.getLogger(__name__)

# Chunks decoded at once on a CPU. Progress and cancel are looked at between batches, so a
# batch is how long the bar stands still and how late Cancel takes effect; the Whisper CPU
# backend decodes two at a time anyway (engine.whisper.backend.CPU_BATCH).
CPU_BATCH = 2


@dataclass(frozen=True)
class Wanted:
    model: str | None
    adapter: str | None
    device: str


class TranscriptionService:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wanted = Wanted(None, None, "auto")
        self._loaded: Wanted | None = None
        self._transcriber = None
        self.beam_size = 1
        self.hints: list[str] = []
        self.speakers: str | int | None = None  # files and recordings: None, "auto" or a count (engine.speakers)

    def configure(self, model: str | None, adapter: str | None, device: str, beam_size: int = 1,
                  hints: list[str] | None = None) -> None:
        with self._lock:
            self._wanted = Wanted(model or None, adapter or None, device or "auto")
            self.beam_size = max(1, int(beam_size))
            self.hints = list(hints or [])

    @property
    def loaded_text(self) -> str:
        """What is loaded, for the status bar ("" before the first job)."""
        t = self._transcriber
        if t is None:
            return ""
        adapter = f" + {self._loaded.adapter.rstrip('/').split('/')[-1]}" if self._loaded and self._loaded.adapter else ""
        return f"{t.name}{adapter}: {t.device_text}"

    def get(self, progress=None):
        """The Transcriber for the current settings, loading or switching first if needed.

        Called from the engine job thread only (one thread: no two jobs touch the model).
        """
        from engine.transcriber import Transcriber

        with self._lock:
            wanted = self._wanted
        loaded = self._loaded
        if self._transcriber is not None and loaded == wanted:
            return self._transcriber
        if self._transcriber is not None and loaded.model == wanted.model and loaded.device == wanted.device:
            if progress:
                progress(0.0, "switching adapter")
            self._transcriber.set_adapter(wanted.adapter)
        else:
            if progress:
                progress(0.0, "loading model")
            self._transcriber = None  # free the old model before loading the next
            self._transcriber = Transcriber(wanted.model, adapter=wanted.adapter, device=wanted.device)
            if getattr(self._transcriber.backend, "device", None) == "cpu":
                self._transcriber.batch_size = CPU_BATCH
            log.info("loaded model %s: %s", self._transcriber.name, self._transcriber.device_text)
        self._loaded = wanted
        return self._transcriber

    def transcribe(self, source, progress=None, cancel=None, speakers: bool = False):
        """The transcript of `source`; raises engine.transcriber.Cancelled once `cancel()` is true,
        even when the engine has just finished: a cancelled job must leave nothing behind.
        `speakers`: label speakers as chosen (`self.speakers`), named by the saved voices."""
        from engine.transcriber import Cancelled

        cancel = cancel or (lambda: False)
        transcriber = self.get(progress)
        with self._lock:
            hints, beam, count = list(self.hints), self.beam_size, self.speakers if speakers else None
        transcript = transcriber.transcribe(source, hints=hints or None, beam_size=beam,
                                            progress=stoppable(progress, cancel, Cancelled), cancel=cancel,
                                            speakers=count, profiles=saved_voices() if count is not None else None)
        if cancel():
            raise Cancelled("transcription cancelled")
        return transcript


def saved_voices() -> list:
    """The saved voices; none (speakers get numbered names) when they cannot be read now."""
    from app.speaker_profiles import load_profiles

    try:
        return load_profiles()
    except StenoError as e:  # a locked library, a damaged file: the labels still come
        log.warning("saved voices not used: %s", e)
        return []


def stoppable(progress, cancel, error: type[Exception]):
    """`progress` that raises `error` once `cancel()` is true. Finding speech reports progress
    but does not ask for cancel, so this is how Cancel reaches it (within 1% of the file)."""

    def report(fraction: float, message: str) -> None:
        if cancel():
            raise error("transcription cancelled")
        if progress is not None:
            progress(fraction, message)

    return report
