"""The main window: the Transcribe, Projects, Trainer and Settings tabs, the menus and the status bar.

The window builds the parts and connects them: the Transcribe tab (recorder -> live dictation ->
editor; file queue -> projects -> editor) to the projects list and the trainer, the settings
to the model, crash recovery and the first-run model offer at start. Each part keeps its own
behaviour and knows nothing of the others.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMainWindow, QTabWidget, QVBoxLayout, QWidget

from app import projects as P
from app.gui.banner import Banner
from app.gui.menus import Menus
from app.gui.model_loader import ModelLoader
from app.gui.prefs import remember
from app.gui.projects_tab import ProjectsTab
from app.gui.recovery import Recovery
from app.gui.settings_tab import SettingsTab, unlock_at_start
from app.gui.theme import apply_theme
from app.gui.trainer_tab import TrainerTab
from app.gui.training_data import training_data_job
from app.gui.transcribe_tab import TranscribeTab
from app.gui.workers import Job, JobRunner, setup_logging, show_error
from app.projects import Project
from app.service import TranscriptionService
from app.settings import AppSettings
from engine.errors import StenoError


class MainWindow(QMainWindow):
    """Builds the tabs, menus and status bar, and connects the parts; the behaviour lives in the parts."""

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
        previous_session = None if self.library_locked else P.claim_session()

        self.banner = Banner()
        self.model_loader = ModelLoader(self.settings, self.service, self.engine, self.banner, self)
        self.transcribe_tab = TranscribeTab(self.settings, self.service, self.engine, self.io,
                                            input_stream, output_stream)
        self.projects_tab = ProjectsTab()
        self.trainer_tab = TrainerTab(self.training, base_model=lambda: self.settings.model, api=trainer_api)
        self.settings_tab = SettingsTab(self.settings, self.io, trainer_api=self.trainer_tab.api,
                                        training_runner=self.training)
        if passphrase_prompt is not None:
            self.settings_tab.ask_passphrase = passphrase_prompt
        self.recovery = Recovery(previous_session, self.transcribe_tab, self.banner, self)
        self._build()
        self.menus = Menus(self, self.transcribe_tab, self.make_training_data)
        self._wire()
        self.projects_tab.refresh()
        if self.library_locked:
            QTimer.singleShot(0, self.close)
        else:
            QTimer.singleShot(0, self.reopen_last_project)
            if check_startup:
                QTimer.singleShot(0, self.startup_checks)

    def _build(self) -> None:
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
        self.statusBar().addPermanentWidget(self.model_loader.label)
        screen = QGuiApplication.primaryScreen()
        avail = screen.availableGeometry() if screen else None
        w, h = (min(1280, avail.width()), min(800, avail.height())) if avail else (1280, 800)
        self.resize(w, h)
        if self.settings.window_geometry:  # as the user left it
            self.restoreGeometry(QByteArray.fromBase64(self.settings.window_geometry.encode("ascii")))

    def _wire(self) -> None:
        tab = self.transcribe_tab
        tab.message.connect(self.statusBar().showMessage)
        tab.show_requested.connect(lambda: self.tabs.setCurrentWidget(tab))
        tab.projects_changed.connect(self.projects_tab.refresh)
        tab.transcribed.connect(lambda _: self.model_loader.show_loaded())
        self.projects_tab.open_project.connect(tab.open_project)
        self.projects_tab.make_training_data.connect(self.make_training_data)
        self.projects_tab.deleted.connect(tab.document.project_deleted)
        self.trainer_tab.adapter_activated.connect(self.activate_adapter)
        self.settings_tab.applied.connect(self.apply_settings)
        self.model_loader.installed.connect(self._model_installed)
        self.model_loader.settings_requested.connect(lambda: self.tabs.setCurrentWidget(self.settings_tab))
        self.recovery.recovered.connect(self.projects_tab.refresh)
        # a split, merge or insert moves rows, which the row-by-row edit journal cannot replay
        tab.document.editor.model.rows_replaced.connect(tab.document.autosave)
        tab.document.editor.vocabulary_word.connect(self._add_to_vocabulary)
        self.tabs.currentChanged.connect(self._tab_changed)

    def _add_to_vocabulary(self, word: str) -> None:
        if self.settings_tab.add_term(word):
            self.model_loader.configure()  # the next transcription uses it; nothing reloads
            self.statusBar().showMessage(f"“{word}” added to your vocabulary (Settings → Vocabulary hints)", 5000)
        else:
            self.statusBar().showMessage(f"“{word}” is in your vocabulary already", 5000)

    def _tab_changed(self, index: int) -> None:
        w = self.tabs.widget(index)
        if w is self.projects_tab:
            self.projects_tab.refresh()
        elif w is self.trainer_tab:
            self.trainer_tab.refresh()

    def reopen_last_project(self) -> bool:
        """Show the project that was open when the app was last closed, if it is still there."""
        folder = self.settings.last_project
        if not folder or self.transcribe_tab.project is not None or not (Path(folder) / P.PROJECT_FILE).is_file():
            return False
        try:
            project = Project.load(Path(folder))
        except StenoError:
            return False
        if project.status != "ready":  # a crash left it: recovery offers it
            return False
        return self.transcribe_tab.open_project(project)

    def startup_checks(self) -> None:
        """Offer back what a crash left, and a model if none is installed; load the model."""
        if not self.recovery.offer():
            self.model_loader.check_installed()
        self.model_loader.preload()

    def apply_settings(self) -> Job:
        """Use the new settings now: the model (or only the adapter) switches in the background."""
        apply_theme(QApplication.instance(), self.settings.theme)
        return self.model_loader.load()

    def activate_adapter(self, path: str) -> None:
        remember(self.settings, "adapter", path)
        self.settings_tab.reload_adapters()
        self.apply_settings()
        self.statusBar().showMessage(f"now using the adapter {Path(path).name}", 8000)

    def _model_installed(self, path) -> None:
        self.settings_tab.load()
        self.apply_settings()
        self.statusBar().showMessage(f"model installed in {path}", 10000)

    def make_training_data(self, project: Project) -> Job | None:
        """Save a project's corrected transcript as trainer pairs, in the background."""
        if self.transcribe_tab.project is not None and project.folder == self.transcribe_tab.project.folder:
            self.transcribe_tab.document.flush_autosave()

        job = training_data_job(self, project)
        if job is None:
            return None
        job.done.connect(lambda d: (self.statusBar().showMessage(f"saved as training data in {d}", 8000),
                                    self.trainer_tab.refresh()))
        job.failed.connect(lambda m: show_error(self, "Training data", m))
        return self.io.submit(job)

    def dragEnterEvent(self, event):
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.transcribe_tab.files.open_files(paths)

    def closeEvent(self, event):
        if not self.library_locked:
            project = self.transcribe_tab.project
            self.settings.window_geometry = bytes(self.saveGeometry().toBase64()).decode("ascii")
            remember(self.settings, "last_project", str(project.folder) if project else None)
        self.transcribe_tab.close_down()
        for runner in (self.engine, self.io, self.training):
            runner.shutdown()
        if not self.library_locked:  # a locked start never claimed the session: keep a crashed one's record
            P.release_session()
        super().closeEvent(event)
