"""Live dictation: text for each stretch of speech as soon as the speaker pauses.

Recorded audio (resampled to 16 kHz) collects in a pending buffer. About twice a second
an engine job runs speech detection over it; speech followed by a pause of `pause_s`
is "closed": that audio is transcribed (Transcriber.transcribe on the new audio) and
dropped from the buffer, and its segments are shifted onto the recording's timeline.
Only one job is in flight at a time, so a slow model just takes bigger bites.
"""

from __future__ import annotations

import logging

import numpy as np
import soxr
from PySide6.QtCore import QObject, Signal

from app.gui.workers import Job, JobRunner

log = logging.getLogger(__name__)

SR = 16000


def closed_speech_end(audio: np.ndarray, pause_s: float, max_s: float) -> float | None:
    """Seconds into `audio` up to which speech is finished (followed by `pause_s` of quiet).

    None when nothing is finished yet. A buffer longer than `max_s` is closed whole, so a
    speaker who never pauses still sees text. Audio with no speech at all is closed too
    (its end), so silence does not pile up.
    """
    from engine.audio import split_on_speech

    duration = len(audio) / SR
    if duration < pause_s:
        return None
    chunks = split_on_speech(audio, max_seconds=30.0, min_silence_s=pause_s, max_gap_s=0.0, pad_s=0.2)
    if not chunks:
        return max(0.0, duration - pause_s)  # all quiet: keep only the tail that may start a word
    done = [c for c in chunks if c.end + pause_s - 0.2 <= duration]
    if done:
        return done[-1].end
    if duration >= max_s:
        return duration
    return None


class LiveDictation(QObject):
    """Feeds recorded audio to the model segment by segment; emits segments as they are ready."""

    segments = Signal(object)  # list[Segment] with times on the recording's timeline
    failed = Signal(str)
    idle = Signal()  # the last job finished and nothing is pending (after finish())

    def __init__(self, service, runner: JobRunner, pause_s: float = 0.6, max_s: float = 25.0,
                 check_every_s: float = 0.5, parent: QObject | None = None):
        super().__init__(parent)
        self.service = service
        self.runner = runner
        self.pause_s = pause_s
        self.max_s = max_s
        self.check_every_s = check_every_s
        self.reset()

    def reset(self) -> None:
        self.pending = np.zeros(0, np.float32)
        self.offset = 0.0  # recording time of pending[0]
        self._since_check = 0
        self._job: Job | None = None
        self._resampler = None
        self._rate = SR
        self._finishing = False
        self.active = False

    def start(self) -> None:
        self.reset()
        self.active = True

    def add(self, block: np.ndarray, rate: int) -> None:
        """Recorded audio in (GUI thread); starts a check when enough new audio came in."""
        if not self.active or self._finishing:
            return
        if rate != SR:
            if self._resampler is None or self._rate != rate:
                self._resampler, self._rate = soxr.ResampleStream(rate, SR, 1, dtype="float32"), rate
            block = self._resampler.resample_chunk(block)
        self.pending = np.concatenate([self.pending, np.asarray(block, np.float32)])
        self._since_check += len(block)
        if self._since_check >= self.check_every_s * SR:
            self._check(final=False)

    def finish(self) -> None:
        """The recording stopped: transcribe whatever is still pending, then emit idle."""
        if not self.active:
            self.idle.emit()
            return
        self._finishing = True
        self._check(final=True)

    def busy(self) -> bool:
        return self._job is not None

    def _check(self, final: bool) -> None:
        if self._job is not None:
            return  # the running job's end calls us again
        self._since_check = 0
        audio, offset = self.pending.copy(), self.offset
        if final and len(audio) < SR // 10:
            self._done_all()
            return
        service, pause_s, max_s = self.service, self.pause_s, self.max_s

        def work(progress, cancel):
            end = len(audio) / SR if final else closed_speech_end(audio, pause_s, max_s)
            if end is None:
                return 0, []
            cut = int(round(end * SR))
            transcript = service.transcribe(audio[:cut], cancel=cancel)
            for seg in transcript.segments:
                seg.start += offset
                seg.end += offset
                for w in seg.words:
                    w.start += offset
                    w.end += offset
            return cut, [s for s in transcript.segments if s.text.strip()]

        self._job = Job(work, name="live dictation")
        self._job.done.connect(self._on_done)
        self._job.failed.connect(self._on_failed)
        self._job.finished.connect(self._on_finished)
        self.runner.submit(self._job, priority=10)  # before queued files: the speaker is waiting

    def _on_done(self, result) -> None:
        cut, segments = result
        if cut:
            self.pending = self.pending[cut:]
            self.offset += cut / SR
        if segments:
            self.segments.emit(segments)

    def _on_failed(self, message: str) -> None:
        # Stop live text for this recording: the audio is safe in the file and can be
        # transcribed whole; retrying every half second would repeat the same error.
        self.pending = np.zeros(0, np.float32)
        self.active = self._finishing
        self.failed.emit(message)

    def _on_finished(self) -> None:
        self._job = None
        if self._finishing:
            if len(self.pending) >= SR // 10:
                self._check(final=True)
            else:
                self._done_all()
        elif self._since_check >= self.check_every_s * SR:
            self._check(final=False)

    def _done_all(self) -> None:
        self.active = False
        self._finishing = False
        self.idle.emit()
