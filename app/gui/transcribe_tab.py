"""The Transcribe tab: dictation and files on the left, the open document on the right.

The tab decides which project the document shows: a file that finished, one opened from a
list, a new one from a template, or one a crash left unfinished (finished first). A recording
in progress keeps the document: nothing else opens until it stops.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from app import projects as P
from app.gui.dictation import DictationPane
from app.gui.document import DocumentPane
from app.gui.files_pane import FilesPane
from app.gui.workers import JobRunner, show_error
from app.projects import Project
from app.service import TranscriptionService
from app.settings import AppSettings
from app.templates import Template, new_transcript
from engine.errors import StenoError


class TranscribeTab(QSplitter):
    """Holds `dictation`, `files` and `document`, and moves projects between them."""

    message = Signal(str, int)  # for the status bar: text, milliseconds
    show_requested = Signal()  # the user should see this tab now
    projects_changed = Signal()  # a project was made, finished or changed status
    transcribed = Signal(object)  # Project: the model just transcribed it

    def __init__(self, settings: AppSettings, service: TranscriptionService, engine: JobRunner, io: JobRunner,
                 input_stream=None, output_stream=None, parent=None):
        super().__init__(parent)
        self.document = DocumentPane(settings, io, output_stream)
        self.dictation = DictationPane(settings, service, engine, self.document, input_stream)
        self.files = FilesPane(settings, service, engine)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.dictation)
        ll.addWidget(self.files, 1)
        self.addWidget(left)
        self.addWidget(self.document)
        self.setStretchFactor(1, 1)
        self.setSizes([330, 900])
        self.setChildrenCollapsible(False)

        for pane in (self.document, self.dictation):
            pane.message.connect(self.message)
        self.document.show_requested.connect(self.show_requested)
        self.files.show_requested.connect(self.show_requested)
        self.dictation.transcribe_requested.connect(self.files.transcribe_project)
        self.dictation.recorded.connect(lambda _: self.projects_changed.emit())
        self.files.transcribed.connect(self.transcribed)
        self.files.transcribed.connect(self._file_done)
        self.files.queue.open_project.connect(self.open_project)

    @property
    def project(self) -> Project | None:
        """The project the document shows."""
        return self.document.project

    def open_project(self, project: Project) -> bool:
        """Show a project in the editor (saving the current one first)."""
        if self.dictation.recording and project is not self.project:
            self.message.emit("stop the recording before opening another project", 8000)
            return False
        if project.status in ("recording", "transcribing") and not self.busy_with(project):
            self.recover_project(project)
            return True
        return self.document.open(project)

    def busy_with(self, project: Project) -> bool:
        """Whether `project` is being recorded or transcribed right now."""
        if self.project is not None and self.project.folder == project.folder and self.dictation.recording:
            return True
        return self.files.busy_with(project)

    def new_from_template(self, template: Template) -> Project | None:
        """A new project holding the template, with the cursor in its first field."""
        if self.dictation.recording:
            self.message.emit("stop the recording before starting a new document", 8000)
            return None
        project = Project.create(template.name)
        project.save_transcript(new_transcript(template), original=True)
        if not self.open_project(project):
            return None
        self.projects_changed.emit()
        self.document.editor.next_field()
        return self.project

    def _file_done(self, project: Project) -> None:
        """Show a finished transcription unless the user is busy with another document."""
        self.projects_changed.emit()
        if self.project is None or (self.document.is_empty() and not self.dictation.recording):
            self.open_project(project)
        elif self.project.folder == project.folder:
            self.open_project(project)
        else:
            self.message.emit(f"{project.name} is transcribed: double-click it in the list to open", 10000)

    def recover_project(self, project: Project) -> None:
        """Finish what a crash interrupted: repair and transcribe a recording, redo a transcription,
        fold journaled edits into the transcript."""
        if project.status == "recording":
            try:
                project.duration = P.repair_wav_header(project.audio_path)
            except (OSError, StenoError) as e:
                show_error(self.window(), "Recover recording", f"{project.audio_path}: cannot repair ({e})")
                return
            transcript = project.load_transcript()
            if transcript is not None and transcript.segments:
                # live text was saved as it came: keep it (and any edits); transcribe only the rest
                project.set_status("transcribing")
                self.files.transcribe_rest(project, transcript)
                return
            project.set_status("transcribing")
        if project.status == "transcribing":
            if project.audio_path is not None and project.audio_path.is_file():
                self.files.transcribe_project(project)
            elif project.source and Path(project.source).is_file():
                project.delete()
                self.files.open_files([Path(project.source)])
            else:
                project.set_status("ready")
            return
        if project.has_unsaved_edits():
            self.open_project(project)

    def close_down(self) -> None:
        """The window closes: stop recording and playback, save pending edits."""
        self.dictation.close_down()
        self.document.close_down()
