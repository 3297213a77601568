"""The Settings tab: model, adapter, device, vocabulary hints, beam size, theme, privacy.

"Apply" saves the settings and asks the window to switch the model now (in the
background); no restart. The device line says what ONNX Runtime and torch actually
found, probed off the GUI thread because importing torch takes seconds.

Privacy: encrypt the project library with a passphrase, turn it off, change the
passphrase (each takes effect at once, converting files in the background), and the
statement of what is stored where. `unlock_at_start` asks for the passphrase when the
window opens on an encrypted library. Passphrases are asked through `ask_passphrase`
(a password QInputDialog) so tests can put their own answers in.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QTextOption
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app import projects as P
from app import vault
from app.gui.teach_words import TeachWords
from app.gui.workers import Job, JobCancelled, JobRunner, show_error
from app.settings import AppSettings, privacy_statement
from engine.errors import StenoError

log = logging.getLogger(__name__)


def probe_devices() -> str:
    """What ONNX Runtime and torch can use here, in one or two plain lines."""
    lines = []
    try:
        import onnxruntime as ort

        providers = [p.replace("ExecutionProvider", "") for p in ort.get_available_providers()]
        lines.append(f"ONNX Runtime {ort.__version__}: providers {', '.join(providers)}"
                     + (" (CUDA is listed by the GPU build even without a GPU; the running device is "
                        "shown in the status bar)" if "CUDA" in providers else ""))
    except Exception as e:  # noqa: BLE001
        lines.append(f"ONNX Runtime unavailable: {e}")
    try:
        import torch

        if torch.cuda.is_available():
            lines.append(f"torch {torch.__version__}: CUDA GPU {torch.cuda.get_device_name(0)}")
        else:
            lines.append(f"torch {torch.__version__}: no CUDA GPU, CPU only ({torch.get_num_threads()} threads)")
    except Exception as e:  # noqa: BLE001
        lines.append(f"torch unavailable: {e}")
    return "\n".join(lines)


PassphrasePrompt = Callable[[QWidget | None, str, str], "str | None"]  # (parent, title, label) -> text or None


def ask_passphrase(parent: QWidget | None, title: str, label: str) -> str | None:
    """A password field in a dialog; None when cancelled."""
    text, ok = QInputDialog.getText(parent, title, label, QLineEdit.EchoMode.Password)
    return text if ok else None


def unlock_at_start(parent: QWidget | None = None, ask: PassphrasePrompt | None = None) -> bool:
    """Ask for the passphrase of an encrypted library until it fits or the user cancels.

    A wrong one is said so in the next prompt; the library is not touched until the key is
    verified. After unlocking, a conversion a crash interrupted is finished. False: cancelled
    (or the key file is damaged), and the library stays locked.
    """
    ask = ask or ask_passphrase
    try:
        if not P.library_needs_passphrase():
            return True
        state = P.library_status()
    except vault.VaultError as e:
        show_error(parent, "Encrypted library", str(e))
        return False
    label = "Steno's project library is encrypted. Passphrase:"
    if state == "decrypting":
        label = "Steno was turning encryption off when it stopped; the passphrase finishes it. Passphrase:"
    while True:
        passphrase = ask(parent, "Unlock Steno", label)
        if passphrase is None:
            return False
        try:
            P.unlock_library(passphrase)
            break
        except vault.WrongPassphrase as e:
            label = f"{str(e)[0].upper()}{str(e)[1:]}. Try again. Passphrase:"
    try:
        n = P.finish_library_conversion()
        if n:
            log.info("finished an interrupted library conversion: %d files", n)
    except (OSError, StenoError) as e:
        show_error(parent, "Encrypted library", f"cannot finish converting the library ({e}); it is unlocked and "
                                                "every file can still be read")
    return True


class SettingsTab(QWidget):
    applied = Signal()  # the settings object was updated and saved

    def __init__(self, settings: AppSettings, runner: JobRunner, trainer_api=None, parent=None,
                 training_runner: JobRunner | None = None):
        super().__init__(parent)
        self.settings = settings
        self._runner = runner
        self.trainer_api = trainer_api
        self.model = QComboBox()
        self.model.setToolTip("The speech model that transcribes")
        browse = QPushButton("Folder…")
        browse.setToolTip("Use a model folder that is not installed")
        browse.clicked.connect(self._browse_model)
        self.adapter = QComboBox()
        self.adapter.setToolTip("A vocabulary adapter trained in the Trainer tab")
        self.device = QComboBox()
        for label, value in (("Automatic (GPU if it works, else CPU)", "auto"), ("CPU", "cpu"), ("CUDA GPU", "cuda")):
            self.device.addItem(label, value)
        self.device_info = QLabel("finding devices…")
        self.device_info.setWordWrap(True)
        self.device_info.setObjectName("deviceInfo")
        self.beam = QSpinBox(minimum=1, maximum=8)
        self.beam.setToolTip("1 is fastest; 3-5 can be a little more accurate and is slower")
        self.hints = QPlainTextEdit()
        self.hints.setPlaceholderText("Words that may occur, one per line: names, drugs, places…")
        self.hints.setMaximumHeight(120)
        load_hints = QPushButton("Load word list…")
        load_hints.clicked.connect(self._load_word_list)
        self.teach = TeachWords(training_runner or runner, trainer_api, terms=self.terms,
                                base_model=lambda: self.settings.model, on_adapter=self.use_adapter)
        self.theme = QComboBox()
        for label, value in (("Follow the system", "system"), ("Light", "light"), ("Dark", "dark")):
            self.theme.addItem(label, value)
        apply = QPushButton("Apply")
        apply.setObjectName("applySettings")
        apply.setDefault(True)
        apply.clicked.connect(self.apply)
        self.loaded = QLabel("")
        self.loaded.setWordWrap(True)

        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(browse)
        hints_row = QVBoxLayout()
        hints_row.addWidget(self.hints)
        hints_row.addWidget(load_hints)
        hints_row.addWidget(self.teach)

        box = QGroupBox("Transcription")
        form = QFormLayout(box)
        form.addRow("Model", model_row)
        form.addRow("Adapter", self.adapter)
        device_box = QVBoxLayout()
        device_box.addWidget(self.device)
        device_box.addWidget(self.device_info)
        form.addRow("Device", device_box)
        form.addRow("Beam size", self.beam)
        form.addRow("Vocabulary hints", hints_row)
        look = QGroupBox("Appearance")
        QFormLayout(look).addRow("Theme", self.theme)
        privacy = self._build_privacy()
        buttons = QHBoxLayout()
        buttons.addWidget(apply)
        buttons.addWidget(self.loaded, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(box)
        lay.addWidget(look)
        lay.addWidget(privacy)
        lay.addLayout(buttons)
        lay.addStretch(1)
        self.load()
        job = Job(lambda progress, cancel: probe_devices(), name="probe devices")
        job.done.connect(self.device_info.setText)
        job.failed.connect(self.device_info.setText)
        runner.submit(job)

    # --------------------------------------------------------------------- privacy

    def _build_privacy(self) -> QGroupBox:
        self.runner = self._runner
        self.ask_passphrase: PassphrasePrompt = ask_passphrase
        self.privacy_state = QLabel()
        self.privacy_state.setObjectName("privacyState")
        self.privacy_state.setWordWrap(True)
        self.privacy_result = QLabel()
        self.privacy_result.setObjectName("privacyResult")
        self.privacy_result.hide()
        self.encrypt_btn = QPushButton("Encrypt the project library…")
        self.encrypt_btn.setToolTip("Keep every project file encrypted on disk, unlocked by a passphrase at start")
        self.encrypt_btn.clicked.connect(self.encrypt_library)
        self.decrypt_btn = QPushButton("Turn encryption off…")
        self.decrypt_btn.clicked.connect(self.decrypt_library)
        self.passphrase_btn = QPushButton("Change passphrase…")
        self.passphrase_btn.clicked.connect(self.change_passphrase)
        self.finish_btn = QPushButton("Finish converting")
        self.finish_btn.setToolTip("A conversion was interrupted: every file is readable; this converts the rest")
        self.finish_btn.clicked.connect(self.finish_conversion)
        self.privacy_btn = QPushButton("What is stored where…")
        self.privacy_btn.setObjectName("privacyStatement")
        self.privacy_btn.clicked.connect(self.show_privacy)
        note = QLabel("Nothing leaves this computer: Steno uses no network while it runs.")
        note.setWordWrap(True)
        row = QHBoxLayout()
        for b in (self.encrypt_btn, self.finish_btn, self.decrypt_btn, self.passphrase_btn, self.privacy_btn):
            row.addWidget(b)
        row.addStretch(1)
        box = QGroupBox("Privacy")
        lay = QVBoxLayout(box)
        lay.addWidget(note)
        lay.addWidget(self.privacy_state)
        lay.addWidget(self.privacy_result)
        lay.addLayout(row)
        self._privacy_job: Job | None = None
        self.refresh_privacy()
        return box

    def refresh_privacy(self) -> None:
        """Show the library's state and only the buttons that apply to it."""
        try:
            state = P.library_status()
        except vault.VaultError as e:
            state, text = "damaged", str(e)
        else:
            text = {"plain": "Project library: not encrypted.",
                    "encrypted": "Project library: encrypted (AES-256-GCM, unlocked with your passphrase).",
                    "encrypting": "Project library: encryption was turned on but not every file is encrypted yet.",
                    "decrypting": "Project library: encryption is being turned off; some files are still "
                                  "encrypted."}[state]
        busy = self._privacy_job is not None and self._privacy_job.state in ("waiting", "running")
        self.privacy_state.setText(text)
        self.finish_btn.setVisible(state in ("encrypting", "decrypting") and vault.is_unlocked(P.projects_root()))
        self.encrypt_btn.setVisible(state == "plain")
        self.decrypt_btn.setVisible(state in ("encrypted", "encrypting"))
        self.passphrase_btn.setVisible(state in ("encrypted", "encrypting"))
        for b in (self.encrypt_btn, self.finish_btn, self.decrypt_btn, self.passphrase_btn):
            b.setEnabled(not busy and state != "damaged")

    def _ask(self, title: str, label: str) -> str | None:
        return self.ask_passphrase(self, title, label)

    def _new_passphrase(self, title: str, first: str) -> str | None:
        """A new passphrase typed twice; None (after saying why) when cancelled, short or different."""
        p1 = self._ask(title, first)
        if p1 is None:
            return None
        try:
            vault.check_new_passphrase(p1)
        except vault.VaultError as e:
            show_error(self, title, f"{e}; nothing was changed")
            return None
        p2 = self._ask(title, "Type the same passphrase again:")
        if p2 is None:
            return None
        if p1 != p2:
            show_error(self, title, "the two passphrases differ; nothing was changed")
            return None
        return p1

    def _run_privacy_job(self, title: str, fn, done_text: str) -> Job:
        """Convert in the background; closing the app stops it between two files, and the
        next start finishes it (every file is converted atomically)."""

        def work(progress, cancel):
            def each(i, n, path):
                if cancel():
                    raise JobCancelled()
                progress(i / max(n, 1), f"{title}: {i}/{n} files")

            return fn(each)

        job = Job(work, name=title)
        job.progress.connect(lambda f, m: self.privacy_state.setText(m))
        job.done.connect(lambda n: (self.privacy_result.setText(done_text[0].upper() + done_text[1:] + "."),
                                    self.privacy_result.show()))
        job.failed.connect(lambda m: (self.privacy_result.hide(), show_error(self, title, m)))
        job.finished.connect(self.refresh_privacy)
        self._privacy_job = job
        self.refresh_privacy()
        return self.runner.submit(job)

    def encrypt_library(self) -> Job | None:
        title = "Encrypt the project library"
        passphrase = self._new_passphrase(title, "Choose a passphrase (at least 8 characters). Without it the "
                                                 "projects cannot be opened: it cannot be recovered.")
        if passphrase is None:
            return None
        return self._run_privacy_job(title, lambda progress: P.encrypt_library(passphrase, progress),
                                     "the project library is now encrypted")

    def decrypt_library(self) -> Job | None:
        title = "Turn encryption off"
        passphrase = self._ask(title, "The passphrase, to store every project file unencrypted again:")
        if passphrase is None:
            return None
        return self._run_privacy_job(title, lambda progress: P.decrypt_library(passphrase, progress),
                                     "the project library is no longer encrypted")

    def change_passphrase(self) -> Job | None:
        title = "Change passphrase"
        old = self._ask(title, "The current passphrase:")
        if old is None:
            return None
        new = self._new_passphrase(title, "The new passphrase (at least 8 characters):")
        if new is None:
            return None
        return self._run_privacy_job(title, lambda progress: P.change_library_passphrase(old, new),
                                     "the passphrase is changed")

    def finish_conversion(self) -> Job:
        return self._run_privacy_job("Finish converting",
                                     lambda progress: P.finish_library_conversion(progress, at_start=False),
                                     "the conversion is finished")

    def show_privacy(self) -> QMessageBox:
        """The statement in a wrapping text view, not the box's label: its long folder paths
        cannot wrap in a label and ran off the right edge of the dialog (and of small screens)."""
        text = privacy_statement()
        box = QMessageBox(QMessageBox.Icon.Information, "Privacy: what is stored where", text,
                          QMessageBox.StandardButton.Ok, self)
        box.setObjectName("privacyDialog")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        view = QTextBrowser()
        view.setObjectName("privacyText")
        view.setPlainText(text)
        view.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        screen = (self.screen() or QGuiApplication.primaryScreen()).availableGeometry()
        view.setFixedSize(min(680, screen.width() - 120), min(420, screen.height() - 160))
        label = box.findChild(QLabel, "qt_msgbox_label")
        grid = box.layout()
        if label is not None and isinstance(grid, QGridLayout) and grid.indexOf(label) >= 0:
            r, c, rs, cs = grid.getItemPosition(grid.indexOf(label))
            label.hide()
            grid.addWidget(view, r, c, rs, cs)
        else:  # a Qt whose message box is built differently: the view below the text
            grid.addWidget(view)
        box.open()
        return box

    # --------------------------------------------------------------------- values

    def load(self) -> None:
        """Fill the widgets from the settings (and what is installed)."""
        from engine.models.registry import list_models

        s = self.settings
        self.model.clear()
        self.model.addItem("Best installed model", None)
        for m in list_models():
            wer = f" — dev WER {100 * m.dev_wer:.0f}%" if m.dev_wer is not None else ""
            self.model.addItem(f"{m.name} ({m.family}){wer}", str(m.path))
        self._select(self.model, s.model, label=s.model)
        self.reload_adapters()
        self._select(self.device, s.device)
        self.beam.setValue(s.beam_size)
        self.hints.setPlainText("\n".join(s.hints))
        self._select(self.theme, s.theme)

    def reload_adapters(self) -> None:
        self.adapter.clear()
        self.adapter.addItem("None (the base model)", None)
        if self.trainer_api is not None:
            try:
                for a in self.trainer_api.list_adapters():
                    self.adapter.addItem(a.name, str(a.path))
            except Exception as e:  # noqa: BLE001
                log.warning("listing adapters: %s", e)
        self._select(self.adapter, self.settings.adapter, label=self.settings.adapter and Path(self.settings.adapter).name)

    @staticmethod
    def _select(combo: QComboBox, value, label=None) -> None:
        i = combo.findData(value)
        if i < 0 and value is not None:
            combo.addItem(str(label or value), value)
            i = combo.count() - 1
        combo.setCurrentIndex(max(i, 0))

    def apply(self) -> None:
        s = self.settings
        s.model = self.model.currentData()
        s.adapter = self.adapter.currentData()
        s.device = self.device.currentData()
        s.beam_size = self.beam.value()
        s.hints = [h.strip() for h in self.hints.toPlainText().splitlines() if h.strip()]
        s.theme = self.theme.currentData()
        try:
            s.save()
        except OSError as e:
            show_error(self, "Settings", f"cannot save settings ({e})")
        self.applied.emit()

    def _browse_model(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Choose a Steno model folder")
        if d:
            self._select(self.model, d, label=Path(d).name)

    def terms(self) -> list[str]:
        """The vocabulary list as shown (saved or not), each term once."""
        seen, out = set(), []
        for h in self.hints.toPlainText().splitlines():
            term = " ".join(h.split())
            if term and term.lower() not in seen:
                seen.add(term.lower())
                out.append(term)
        return out

    def use_adapter(self, path: str) -> None:
        """Transcribe with this adapter from now on (saved), as if chosen and applied."""
        self.settings.adapter = path
        self.reload_adapters()
        try:
            self.settings.save()
        except OSError as e:
            show_error(self, "Settings", f"cannot save settings ({e})")
        self.applied.emit()

    def add_term(self, term: str) -> bool:
        """Put `term` into the vocabulary list and save it (the editor's right-click "Add to
        vocabulary"); False when it is there already, in any case."""
        term = " ".join(term.split())
        current = [h for h in self.hints.toPlainText().splitlines() if h.strip()]
        if not term or term.lower() in {h.strip().lower() for h in current}:
            return False
        self.hints.setPlainText("\n".join(current + [term]))
        self.settings.hints = [h.strip() for h in current] + [term]  # only the list: other unsaved choices wait
        try:
            self.settings.save()
        except OSError as e:
            show_error(self, "Settings", f"cannot save settings ({e})")
        return True

    def _load_word_list(self) -> None:
        from engine.decoding.hints import read_word_list
        from engine.errors import StenoError

        path, _ = QFileDialog.getOpenFileName(self, "Word list", "", "Text (*.txt);;All files (*)")
        if not path:
            return
        try:
            terms = read_word_list(path)
        except StenoError as e:
            show_error(self, "Word list", str(e))
            return
        current = [h for h in self.hints.toPlainText().splitlines() if h.strip()]
        seen = {h.lower() for h in current}
        self.hints.setPlainText("\n".join(current + [t for t in terms if t.lower() not in seen]))
