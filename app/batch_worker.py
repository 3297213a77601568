"""One `steno batch` worker: loads the model once, then transcribes file after file.

The same class runs inside the command's own process or as a Ray actor on any node. It
never raises for a file: whatever goes wrong with one comes back as its one-line error, so a
corrupt recording costs that recording only. A model that will not load on this node is
reported by `ready()` instead of killing the actor, so the driver can say which node lacks it.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field

from engine.errors import StenoError, first_line


@dataclass
class WorkerSettings:
    """What every worker needs to build the same Transcriber; `options` go to each transcribe call
    (hints today; whatever Transcriber.transcribe grows, such as speakers, passes through here)."""

    model: str | None = None
    model_id: str | None = None  # the driver's model: a node with another version is refused
    adapter: str | None = None
    device: str = "auto"
    beam: int | None = None
    precision: str | None = None
    threads: int | None = None
    options: dict = field(default_factory=dict)


@dataclass
class FileResult:
    """A worker's answer for one file: a transcript, or the error that stopped it."""

    transcript: object | None  # engine.text.transcript.Transcript
    error: str | None
    seconds: float
    worker: str


class BatchWorker:
    def __init__(self, settings: WorkerSettings):
        self.settings = settings
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.problem: str | None = None
        self.transcriber = None
        if settings.threads:
            os.environ["OMP_NUM_THREADS"] = str(settings.threads)
        try:
            from engine.transcriber import Transcriber

            if settings.threads:
                import torch

                torch.set_num_threads(settings.threads)
            self.transcriber = Transcriber(settings.model, adapter=settings.adapter, device=settings.device,
                                           beam_size=settings.beam, precision=settings.precision)
            if settings.model_id and self.transcriber.model_id != settings.model_id:
                self.problem = (f"model {self.transcriber.name!r} in {self.transcriber.folder} differs from the "
                                "driver's; install the same version on every node (`steno setup`)")
        except StenoError as e:
            self.problem = str(e)
        except MemoryError:
            self.problem = "out of memory while loading the model"

    def ready(self) -> dict:
        """Where this worker runs and what it runs on, or the reason it cannot work."""
        if self.problem is not None:
            return {"worker": self.name, "error": self.problem}
        return {"worker": self.name, "device": self.transcriber.device_text}

    def pid(self) -> int:
        return os.getpid()

    def transcribe(self, path: str) -> FileResult:
        start = time.perf_counter()
        if self.problem is not None:
            return FileResult(None, f"{self.name}: {self.problem}", 0.0, self.name)
        try:
            transcript = self.transcriber.transcribe(path, **self.settings.options)
            error = None
        except StenoError as e:
            transcript, error = None, str(e)
        except MemoryError:
            transcript, error = None, f"{path}: out of memory"
        except Exception as e:  # a decoder bug on one file must not end the archive's run
            transcript, error = None, f"{path}: unexpected error ({type(e).__name__}: {first_line(e)})"
        return FileResult(transcript, error, time.perf_counter() - start, self.name)
