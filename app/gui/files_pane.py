"""The Files box: open or drop audio and video files; each becomes a project, transcribed in turn.

Stopped recordings and recovered ones go through the same queue, so everything the model
does is listed in one place with its progress and a cancel button.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QVBoxLayout,
)

from app.gui.filequeue import (
    FILE_FILTER,
    NO_SPEECH,
    FileQueue,
    transcribe_file_job,
    transcribe_project_job,
    transcribe_tail_job,
)
from app.gui.prefs import remember
from app.gui.workers import Job, JobRunner, show_error
from app.projects import Project, list_projects
from app.service import TranscriptionService
from app.settings import AppSettings
from engine.text.transcript import Transcript

log = logging.getLogger(__name__)
SPEAKER_CHOICES = [("Not labelled", "off"), ("Find how many", "auto")] + [(f"{n} speakers", str(n)) for n in range(2, 11)]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or a.samefile(b)
    except OSError:
        return False


class FilesPane(QGroupBox):
    """The open button, the queue of transcriptions, and what to do when one ends."""

    transcribed = Signal(object)  # Project: its transcript is saved
    show_requested = Signal()  # the user should see this pane now

    def __init__(self, settings: AppSettings, service: TranscriptionService, engine: JobRunner, parent=None):
        super().__init__("Files", parent)
        self.settings = settings
        self.service = service
        self.engine = engine  # the model: one job at a time
        self.queue = FileQueue()
        self.open_btn = QPushButton("Open files…")
        self.open_btn.setToolTip("Transcribe audio or video files (Ctrl+O); you can also drop files on the window")
        self.open_btn.clicked.connect(self.choose_files)
        self.speakers_box = QComboBox()
        self.speakers_box.setObjectName("speakersBox")
        for text, value in SPEAKER_CHOICES:
            self.speakers_box.addItem(text, value)
        self.speakers_box.setToolTip("Label who speaks in the files transcribed from now on: find how many "
                                     "people speak, or say how many (an interview: 2)")
        found = self.speakers_box.findData(str(settings.speakers))
        self.speakers_box.setCurrentIndex(max(found, 0))
        self.speakers_box.currentIndexChanged.connect(self._speakers_chosen)
        self._speakers_chosen()
        row = QHBoxLayout()
        label = QLabel("&Speakers:")
        label.setBuddy(self.speakers_box)
        row.addWidget(label)
        row.addWidget(self.speakers_box, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.open_btn)
        lay.addLayout(row)
        lay.addWidget(self.queue, 1)
        drop = QLabel("or drop audio/video files here")
        drop.setObjectName("reason")
        lay.addWidget(drop)
        self._failure_box = None

    def _speakers_chosen(self, *_) -> None:
        value = self.speakers_box.currentData()
        if value != self.settings.speakers:
            remember(self.settings, "speakers", value)
        self.service.speakers = None if value == "off" else ("auto" if value == "auto" else int(value))

    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self.window(), "Open audio or video", self.settings.last_folder or "",
                                                FILE_FILTER)
        if files:
            remember(self.settings, "last_folder", str(Path(files[0]).parent))
            self.open_files([Path(f) for f in files])

    def open_files(self, paths: list[Path]) -> list[Job]:
        """Queue files for transcription; each becomes a project."""
        jobs = []
        for path in paths:
            path = Path(path)
            if path.is_dir():
                show_error(self.window(), "Open", f"{path}: is a folder; choose audio or video files")
                continue
            if self._already_open(path):
                continue
            project = Project.create(path.stem, status="transcribing", source=str(path))
            job = transcribe_file_job(self.service, project, path)
            self.queue.add(path.name, job, project)
            job.done.connect(lambda t, p=project: self.transcribed.emit(p))
            job.done.connect(lambda t, name=path.name: t.text.strip() or self._say(f"{name}: {NO_SPEECH}"))
            job.failed.connect(lambda m, p=project: self._file_failed(p, m))
            job.cancelled.connect(lambda p=project: p.delete())
            jobs.append(self.engine.submit(job))
        self.show_requested.emit()
        return jobs

    def _already_open(self, path: Path) -> bool:
        """A file already queued or transcribed is not made into a second project: the one it
        has is shown (delete that project to transcribe the file again)."""
        same = lambda source: bool(source) and _same_file(Path(source), path)  # noqa: E731
        if any(same(row.project.source) and row.job.state in ("waiting", "running") for row in self.queue.rows()):
            self._say(f"{path.name} is already being transcribed")
            return True
        existing = next((p for p in list_projects() if p.status == "ready" and same(p.source)), None)
        if existing is None:
            return False
        self._say(f"{path.name} was transcribed already: showing “{existing.name}” "
                  "(delete that project to transcribe the file again)")
        self.queue.open_project.emit(existing)
        return True

    def _say(self, text: str) -> None:
        window = self.window()
        if isinstance(window, QMainWindow):
            window.statusBar().showMessage(text, 10000)

    def transcribe_project(self, project: Project) -> Job:
        """Transcribe a project's own audio (a stopped or recovered recording, a file redone)."""
        return self._queue(project, transcribe_project_job(self.service, project))

    def transcribe_rest(self, project: Project, transcript: Transcript) -> Job:
        """Transcribe what a recording holds after the live text already in `transcript`."""
        return self._queue(project, transcribe_tail_job(self.service, project, transcript))

    def _queue(self, project: Project, job: Job) -> Job:
        self.queue.add(project.name, job, project)
        job.done.connect(lambda t, p=project: self.transcribed.emit(p))
        job.failed.connect(self.report_failure)
        return self.engine.submit(job)

    def busy_with(self, project: Project) -> bool:
        """Whether `project` is waiting or being transcribed."""
        return any(row.project.folder == project.folder and row.job.state in ("waiting", "running")
                   for row in self.queue.rows())

    def _file_failed(self, project: Project, message: str) -> None:
        project.delete()  # only our copy: the user's file is untouched
        self.report_failure(message)

    def report_failure(self, message: str) -> None:
        """One dialog for a batch of failed files, not one per file."""
        box = self._failure_box
        try:
            open_box = box is not None and box.isVisible()
        except RuntimeError:  # closed and deleted already
            open_box = False
        if open_box:
            box.setText(box.text() + "\n\n" + message)
            log.error("Transcription failed: %s", message)
            return
        self._failure_box = show_error(self.window(), "Transcription failed", message)
