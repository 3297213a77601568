"""Long work off the GUI thread: a `Job` runs a function in a thread pool with progress and cancel.

The function gets `progress(fraction, message)` and `cancel() -> bool`, the same callbacks
the engine and trainer APIs take, so a job is usually a one-line wrapper. Results and
errors come back as Qt signals, delivered on the GUI thread. Every failure is logged to
steno_home()/logs/steno.log; a `StenoError` is reported in its own words, anything else
as an unexpected error pointing at that log.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from engine.errors import StenoError
from engine.models.registry import steno_home

log = logging.getLogger("steno.app")


class JobCancelled(Exception):
    """Raised inside a job function to stop it; the job ends with `cancelled`."""


def log_path() -> Path:
    return steno_home() / "logs" / "steno.log"


def setup_logging() -> Path:
    """Log to steno_home()/logs/steno.log (rotated). Safe to call again when STENO_HOME changes."""
    path = log_path()
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_steno", False):
            if Path(h.baseFilename) == path:
                return path
            root.removeHandler(h)
            h.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(path, maxBytes=2 << 20, backupCount=3, encoding="utf-8")
    handler._steno = True
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    for noisy in ("transformers", "torch", "peft", "urllib3", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


def describe_error(exc: BaseException) -> str:
    """One line for the user: our own errors as they are, anything else with a pointer to the log."""
    if isinstance(exc, StenoError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory"
    text = str(exc) or type(exc).__name__
    return f"unexpected error: {text} (details in {log_path()})"


def show_error(parent: QWidget | None, title: str, message: str) -> QMessageBox:
    """A non-blocking error dialog: the app keeps running and nothing waits on the user."""
    log.error("%s: %s", title, message)
    box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("errorDialog")
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def _is_cancel(exc: BaseException) -> bool:
    if isinstance(exc, JobCancelled):
        return True
    return type(exc).__name__ == "Cancelled"  # engine.transcriber.Cancelled, without importing torch here


class Job(QObject):
    """A function run in a pool; emits progress, then exactly one of done/failed/cancelled, then finished."""

    progress = Signal(float, str)
    update = Signal(object)  # anything else the job reports as it goes (e.g. training Progress)
    done = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, fn: Callable[[Callable[[float, str], None], Callable[[], bool]], Any], name: str = "job"):
        super().__init__()
        self.fn = fn
        self.name = name
        self.started_at: float | None = None
        self.fraction = 0.0
        self.error: str | None = None
        self.result: Any = None
        self.state = "waiting"  # waiting | running | done | failed | cancelled
        self.ended = False  # set on the GUI thread once every signal of the job has been delivered
        self._cancel = threading.Event()

    def _mark_ended(self) -> None:
        self.ended = True

    def cancel(self) -> None:
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def eta_seconds(self) -> float | None:
        """Seconds left, from the pace so far; None until there is a pace to go by."""
        if self.started_at is None or self.fraction <= 0.02:
            return None
        elapsed = time.monotonic() - self.started_at
        return elapsed * (1 - self.fraction) / self.fraction

    def post(self, value: Any) -> None:
        """Send `value` to the GUI thread through `update` (call from the job function)."""
        self.update.emit(value)

    def _report(self, fraction: float, message: str) -> None:
        self.fraction = max(0.0, min(1.0, float(fraction)))
        self.progress.emit(self.fraction, message)

    def run(self) -> None:
        """Runs in the pool's thread."""
        self.finished.connect(self._mark_ended)  # connected last, so it runs after every other slot
        self.started_at = time.monotonic()
        self.state = "running"
        try:
            if self.is_cancelled():
                raise JobCancelled()
            self.result = self.fn(self._report, self.is_cancelled)
        except BaseException as e:  # noqa: BLE001 - a job must never take the app down
            if _is_cancel(e):
                self.state = "cancelled"
                self.cancelled.emit()
            else:
                if not isinstance(e, StenoError):
                    log.error("%s failed:\n%s", self.name, traceback.format_exc())
                self.error = describe_error(e)
                self.state = "failed"
                self.failed.emit(self.error)
        else:
            self.state = "done"
            self.done.emit(self.result)
        finally:
            self.finished.emit()


class _Runnable(QRunnable):
    def __init__(self, job: Job):
        super().__init__()
        self.job = job
        self.setAutoDelete(True)

    def run(self) -> None:
        self.job.run()


class JobRunner(QObject):
    """A pool with its own threads that keeps its jobs alive until they finish.

    The engine runner has one thread: the model is not thread-safe, and one transcription
    at a time is also what gives the fastest result on a laptop's few cores.
    """

    def __init__(self, threads: int = 1, parent: QObject | None = None):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)
        self.jobs: set[Job] = set()

    def submit(self, job: Job, priority: int = 0) -> Job:
        self.jobs.add(job)
        job.finished.connect(lambda j=job: self.jobs.discard(j))
        self.pool.start(_Runnable(job), priority)
        return job

    def busy(self) -> bool:
        return bool(self.jobs)

    def shutdown(self, wait_ms: int = 10000) -> bool:
        """Cancel everything and wait for the threads (jobs check cancel between steps)."""
        for job in list(self.jobs):
            job.cancel()
        self.pool.clear()
        return self.pool.waitForDone(wait_ms)
