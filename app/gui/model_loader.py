"""The speech model: the service follows the settings, loads in the background, and the status bar
says what is loaded.

With no model installed at all, the banner offers to assemble the default one from packages
already on the computer (nothing is downloaded), or points to Settings when that cannot work.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QLabel, QProgressDialog, QWidget

from app.gui.banner import Banner
from app.gui.workers import Job, JobRunner, show_error
from app.service import TranscriptionService
from app.settings import AppSettings

log = logging.getLogger(__name__)

DEFAULT_MODEL = "whisper-base"


class ModelLoader(QObject):
    """Keeps the service on the model, adapter and decoding the settings name; `label` shows the result."""

    installed = Signal(object)  # the folder of the model just assembled
    settings_requested = Signal()  # the user wants to choose a model in Settings
    ready = Signal()  # a model is loaded: dictation starts without waiting for one

    def __init__(self, settings: AppSettings, service: TranscriptionService, engine: JobRunner, banner: Banner,
                 parent: QWidget):
        super().__init__(parent)
        self.settings = settings
        self.service = service
        self.engine = engine  # the model: one job at a time
        self.banner = banner
        self.dialog_parent = parent
        self.label = QLabel("")
        self.install_dialog: QProgressDialog | None = None
        self.configure()

    def configure(self) -> None:
        """Tell the service what the settings name; it loads on the next job that needs the model."""
        s = self.settings
        self.service.configure(s.model, s.adapter, s.device, s.beam_size, s.hints)

    def show_loaded(self) -> None:
        self.label.setText(self.service.loaded_text)

    def load(self, status: str = "switching model…") -> Job:
        """Switch to the configured model now, in the background (only the adapter, when that is all
        that changed)."""
        self.configure()
        self.label.setText(status)
        job = Job(lambda progress, cancel: self.service.get(progress), name="load model")
        job.done.connect(lambda _: self.show_loaded())
        job.done.connect(lambda _: self.ready.emit())
        job.failed.connect(self._failed)
        return self.engine.submit(job)

    def preload(self) -> Job | None:
        """At start, load the configured (or best installed) model in the background while the
        window is already up, so the first dictation does not wait seconds for it. None when
        no model is installed (check_installed offers one)."""
        from engine.models.registry import list_models

        if not (self.settings.model or list_models()):
            return None
        return self.load("loading model…")

    def _failed(self, message: str) -> None:
        self.label.setText("no model loaded")
        show_error(self.dialog_parent, "Model", message)

    def check_installed(self) -> None:
        """Offer a model in the banner when none is chosen or installed."""
        from engine.models.registry import list_models

        if self.settings.model or list_models():
            return
        try:
            import engine.models.whisper_install  # noqa: F401
        except Exception as e:  # noqa: BLE001
            log.info("model installer not available: %s", e)
            self.banner.show_message("No speech model is installed. Choose a model folder in Settings, or run "
                                     "`steno setup` in a terminal.",
                                     [("Settings", lambda: self.settings_requested.emit())])
            return
        self.banner.show_message("No speech model is installed yet. Steno can assemble the default model "
                                 f"({DEFAULT_MODEL}) from the packages already on this computer; nothing is "
                                 "downloaded.", [("Assemble it now", self.install_default_model)])

    def install_default_model(self) -> Job:
        self.banner.hide()
        dialog = QProgressDialog("Assembling the default model…", None, 0, 0, self.dialog_parent)
        dialog.setWindowTitle("Steno setup")
        dialog.setMinimumDuration(0)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)

        def work(progress, cancel):
            from engine.models.whisper_install import install_whisper_model

            return install_whisper_model(DEFAULT_MODEL, say=lambda m: progress(0.0, m))

        job = Job(work, name="install model")
        job.progress.connect(lambda f, m: dialog.setLabelText(m))
        job.done.connect(self.installed)
        job.failed.connect(lambda m: show_error(self.dialog_parent, "Model setup", m))
        job.finished.connect(dialog.close)
        dialog.show()
        self.install_dialog = dialog
        return self.engine.submit(job)
