"""The queue of files being transcribed: one row per file with progress, time left and cancel.

Each file becomes a project first (so its transcript has a home), then a job on the
engine runner: decode (ffmpeg for video), keep a 16 kHz FLAC copy in the project, run
the model, save the transcript. A file that fails or is cancelled leaves nothing behind
but its row, which says why; the files and projects the user already has are untouched.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.workers import Job, JobCancelled
from app.projects import AUDIO_FILE, Project, name_dictation, write_audio_flac

log = logging.getLogger(__name__)

NO_SPEECH = "no speech found: only silence or noise was heard"

MEDIA_SUFFIXES = ("wav", "flac", "ogg", "oga", "opus", "mp3", "m4a", "aac", "wma", "aif", "aiff",
                  "mp4", "m4v", "mkv", "mov", "webm", "avi")
FILE_FILTER = ("Audio and video (" + " ".join(f"*.{s}" for s in MEDIA_SUFFIXES) + ");;All files (*)")


def transcribe_file_job(service, project: Project, path: Path) -> Job:
    """Decode `path` into the project, transcribe it, save the transcript; returns the transcript."""

    def work(progress, cancel):
        from engine.audio import SAMPLE_RATE, load_audio

        progress(0.0, "reading audio")
        audio = load_audio(path)
        if cancel():
            raise JobCancelled()
        write_audio_flac(project.folder / AUDIO_FILE, audio, SAMPLE_RATE)
        project.audio = AUDIO_FILE
        project.duration = len(audio) / SAMPLE_RATE
        project.save_meta()
        transcript = service.transcribe(audio, progress=lambda f, m: progress(0.02 + 0.98 * f, m), cancel=cancel,
                                        speakers=True)
        transcript.source = str(path)
        project.save_transcript(transcript, original=True)
        project.set_status("ready")
        return transcript

    return Job(work, name=f"transcribe {path.name}")


def transcribe_project_job(service, project: Project) -> Job:
    """Transcribe a project's own audio (a finished or recovered recording)."""

    def work(progress, cancel):
        audio_path = project.audio_path
        transcript = service.transcribe(audio_path, progress=progress, cancel=cancel, speakers=True)
        transcript.source = str(project.stored_audio_path)  # not the decrypted RAM copy
        name_dictation(project, transcript)
        project.save_transcript(transcript, original=True)
        project.set_status("ready")
        return transcript

    return Job(work, name=f"transcribe {project.name}")


def transcribe_tail_job(service, project: Project, transcript) -> Job:
    """Finish a recovered dictation: keep its live text (and edits), transcribe what came after."""

    def work(progress, cancel):
        from engine.audio import SAMPLE_RATE, load_audio

        audio = load_audio(project.audio_path)
        start = max((s.end for s in transcript.segments), default=0.0)
        tail = audio[int(start * SAMPLE_RATE):]
        if len(tail) > SAMPLE_RATE // 2:
            for seg in service.transcribe(tail, progress=progress, cancel=cancel).segments:
                seg.start, seg.end = seg.start + start, seg.end + start
                for w in seg.words:
                    w.start, w.end = w.start + start, w.end + start
                if seg.text.strip():
                    transcript.segments.append(seg)
        transcript.duration = len(audio) / SAMPLE_RATE
        name_dictation(project, transcript)
        project.save_transcript(transcript, original=True)
        project.set_status("ready")
        return transcript

    return Job(work, name=f"finish {project.name}")


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s left"
    return f"about {round(seconds / 60)} min left"


class QueueRow(QWidget):
    """One file: its name, a progress bar, what it is doing (or why it failed), cancel/remove."""

    remove_requested = Signal(object)
    resized = Signal(object)  # its text changed length: the list must give it room

    def __init__(self, name: str, job: Job, project: Project):
        super().__init__()
        self.job, self.project = job, project
        self.name = QLabel(name)
        self.name.setToolTip(name)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(10)
        self.status = QLabel("waiting")
        self.status.setWordWrap(True)
        self.status.setObjectName("queueStatus")
        self.button = QToolButton(text="Cancel")
        self.button.setToolTip("Stop transcribing this file")
        self.button.clicked.connect(self._button)
        top = QHBoxLayout()
        top.addWidget(self.name, 1)
        top.addWidget(self.button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.setSpacing(2)
        lay.addLayout(top)
        lay.addWidget(self.bar)
        lay.addWidget(self.status)
        self.message = "waiting"
        job.progress.connect(self._progress)
        job.done.connect(self._done)
        job.failed.connect(lambda msg: self._end("failed", f"failed: {msg}"))
        job.cancelled.connect(lambda: self._end("cancelled", "cancelled"))

    def _done(self, transcript) -> None:
        """Noise or silence is "no speech found", not "done" over an empty transcript."""
        if getattr(transcript, "text", "x").strip():
            self._end("done", "done: double-click to open")
        else:
            self._end("empty", NO_SPEECH)

    def _progress(self, fraction: float, message: str) -> None:
        self.bar.setValue(int(fraction * 1000))
        self.message = message
        self.refresh()

    def refresh(self) -> None:
        if self.job.state == "running":
            eta = _eta(self.job.eta_seconds())
            self.status.setText(f"{self.message}{' · ' + eta if eta else ''}")

    def _end(self, state: str, text: str) -> None:
        self.status.setText(text)
        self.status.setToolTip(text)
        self.status.setProperty("state", state)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
        if state == "done":
            self.bar.setValue(1000)
        self.button.setText("Remove")
        self.button.setToolTip("Remove this row from the list")
        self.resized.emit(self)

    def set_selected(self, selected: bool) -> None:
        """On the selection colour the state colours cannot be read: the text takes the
        selection's text colour (theme.STYLE)."""
        if self.status.property("selected") != selected:
            self.status.setProperty("selected", selected)
            self.status.style().unpolish(self.status)
            self.status.style().polish(self.status)

    def _button(self) -> None:
        if self.job.state in ("waiting", "running"):
            self.job.cancel()
            self.status.setText("cancelling…")
        else:
            self.remove_requested.emit(self)


class FileQueue(QWidget):
    """The list of queued files; double-click a finished one to open its project."""

    open_project = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setObjectName("queue")
        self.list.itemDoubleClicked.connect(self._double_clicked)
        self.list.itemSelectionChanged.connect(self._selection_changed)
        self.list.viewport().installEventFilter(self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.list)
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def rows(self) -> list[QueueRow]:
        return [self.list.itemWidget(self.list.item(i)) for i in range(self.list.count())]

    def add(self, name: str, job: Job, project: Project) -> QueueRow:
        row = QueueRow(name, job, project)
        item = QListWidgetItem()
        item.setSizeHint(row.sizeHint())
        item.setData(Qt.ItemDataRole.UserRole, row)
        self.list.addItem(item)
        self.list.setItemWidget(item, row)
        row.remove_requested.connect(self._remove)
        row.resized.connect(lambda r: self._fit(self._item(r)))
        self._fit(item)
        return row

    def _item(self, row: QueueRow) -> QListWidgetItem | None:
        return next((self.list.item(i) for i in range(self.list.count())
                     if self.list.itemWidget(self.list.item(i)) is row), None)

    def _fit(self, item: QListWidgetItem | None) -> None:
        """The row as tall as its wrapped text needs at the list's width: an error is read whole."""
        row = self.list.itemWidget(item) if item is not None else None
        if row is None:
            return
        width = self.list.viewport().width()
        lay = row.layout()
        height = lay.totalHeightForWidth(width) if lay.hasHeightForWidth() else row.sizeHint().height()
        item.setSizeHint(QSize(row.sizeHint().width(), max(height, row.minimumSizeHint().height())))

    def eventFilter(self, obj, event):
        if obj is self.list.viewport() and event.type() == QEvent.Type.Resize:
            for i in range(self.list.count()):
                self._fit(self.list.item(i))
        return super().eventFilter(obj, event)

    def _selection_changed(self) -> None:
        for i in range(self.list.count()):
            row = self.list.itemWidget(self.list.item(i))
            if row is not None:
                row.set_selected(self.list.item(i).isSelected())

    def _remove(self, row: QueueRow) -> None:
        item = self._item(row)
        if item is not None:
            self.list.takeItem(self.list.row(item))
            row.deleteLater()

    def _double_clicked(self, item: QListWidgetItem) -> None:
        row = self.list.itemWidget(item)
        if row is not None and row.job.state == "done":
            self.open_project.emit(row.project)

    def _tick(self) -> None:
        for row in self.rows():
            row.refresh()
