"""The Settings tab: model, adapter, device, vocabulary hints, beam size, theme.

"Apply" saves the settings and asks the window to switch the model now (in the
background); no restart. The device line says what ONNX Runtime and torch actually
found, probed off the GUI thread because importing torch takes seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QPlainTextEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from app.settings import AppSettings
from app.workers import Job, JobRunner, show_error

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


class SettingsTab(QWidget):
    applied = Signal()  # the settings object was updated and saved

    def __init__(self, settings: AppSettings, runner: JobRunner, trainer_api=None, parent=None):
        super().__init__(parent)
        self.settings = settings
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
        buttons = QHBoxLayout()
        buttons.addWidget(apply)
        buttons.addWidget(self.loaded, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(box)
        lay.addWidget(look)
        lay.addLayout(buttons)
        lay.addStretch(1)
        self.load()
        job = Job(lambda progress, cancel: probe_devices(), name="probe devices")
        job.done.connect(self.device_info.setText)
        job.failed.connect(self.device_info.setText)
        runner.submit(job)

    # --------------------------------------------------------------------- values

    def load(self) -> None:
        """Fill the widgets from the settings (and what is installed)."""
        from engine.models import list_models

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

    def _load_word_list(self) -> None:
        from engine.errors import StenoError
        from engine.hints import read_word_list

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
