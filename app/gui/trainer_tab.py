"""The Trainer tab: teach the model the user's vocabulary from their own material.

Choose data (corrected projects, folders of audio + transcripts, documents, a word list),
check it (what was taken, what was rejected and why), train with a few settings that
matter (the rest folded under "Advanced"), watch the loss and time left, cancel and
resume, compare error rates before/after, and switch to the new adapter. All through
trainer.api, imported lazily: while it is missing the tab says so and the rest of the
app works.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.workers import Job, JobRunner, show_error
from app.projects import list_projects
from engine.models.registry import steno_home

log = logging.getLogger(__name__)


def load_trainer_api():
    """trainer.api, or the reason it cannot be used."""
    try:
        import trainer.api as api
    except Exception as e:  # noqa: BLE001 - an unfinished or broken trainer must not stop the app
        return None, f"{type(e).__name__}: {e}"
    return api, None


def eta_text(seconds: float | None) -> str:
    if not seconds:
        return ""
    return f"about {seconds / 60:.0f} min left" if seconds >= 90 else f"about {seconds:.0f} s left"


class StageClock:
    """Time left in a counted stage (encoding audio 19/96) from its own pace: the trainer
    estimates only its steps, and encoding alone can take minutes."""

    def __init__(self):
        self.name, self.started, self.first = None, 0.0, 0

    def eta(self, message: str, n: int, of: int, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        name = message.rsplit(" ", 1)[0]
        if name != self.name or n < self.first:
            self.name, self.started, self.first = name, now, n
        if n <= self.first:
            return None
        return (now - self.started) / (n - self.first) * (of - n + 1)


def _pct(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{100 * x:.1f}%"


class LossCurve(QWidget):
    """Training loss (and held-out loss, dashed) against steps, scaled to fit."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.train: list[tuple[int, float]] = []
        self.eval: list[tuple[int, float]] = []
        self.total = 1
        self.setMinimumHeight(140)

    def clear(self) -> None:
        self.train, self.eval, self.total = [], [], 1
        self.update()

    def add(self, step: int, total: int, loss: float | None, eval_loss: float | None) -> None:
        self.total = max(total, step, 1)
        if loss is not None and math.isfinite(loss):
            self.train.append((step, loss))
        if eval_loss is not None and math.isfinite(eval_loss) and (not self.eval or self.eval[-1] != (step, eval_loss)):
            self.eval.append((step, eval_loss))
        self.update()

    def paintEvent(self, event):
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        p.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
        m = 34
        w, h = self.width() - m - 8, self.height() - 24
        p.setPen(pal.color(QPalette.ColorRole.Mid))
        p.drawRect(m, 8, w, h)
        values = [v for _, v in self.train + self.eval]
        p.setPen(pal.color(QPalette.ColorRole.Text))
        if not values:
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "the loss curve appears here while training")
            return
        lo, hi = min(values), max(values)
        if hi - lo < 1e-6:
            lo, hi = lo - 0.5, hi + 0.5
        p.drawText(2, 18, f"{hi:.2f}")
        p.drawText(2, 8 + h, f"{lo:.2f}")
        p.drawText(m, self.height() - 4, "loss")
        p.drawText(m + w - 80, self.height() - 4, f"step {self.train[-1][0] if self.train else 0}/{self.total}")

        def pt(step, v):
            return QPointF(m + w * step / self.total, 8 + h * (hi - v) / (hi - lo))

        for series, color, style in ((self.train, QColor("#2f6fdb"), Qt.PenStyle.SolidLine),
                                     (self.eval, QColor("#d0742a"), Qt.PenStyle.DashLine)):
            pen = QPen(color, 2, style)
            p.setPen(pen)
            for a, b in zip(series, series[1:]):
                p.drawLine(pt(*a), pt(*b))
            if len(series) == 1:
                p.drawEllipse(pt(*series[0]), 2, 2)


class PathList(QWidget):
    """A list of paths with Add/Remove buttons."""

    def __init__(self, add_folder: bool, add_file: bool, file_filter: str = "All files (*)"):
        super().__init__()
        self.list = QListWidget()
        self.list.setMaximumHeight(70)
        self.file_filter = file_filter
        buttons = QVBoxLayout()
        if add_folder:
            b = QPushButton("Add folder…")
            b.clicked.connect(self._add_folder)
            buttons.addWidget(b)
        if add_file:
            b = QPushButton("Add file…")
            b.clicked.connect(self._add_file)
            buttons.addWidget(b)
        rm = QPushButton("Remove")
        rm.clicked.connect(lambda: [self.list.takeItem(self.list.row(i)) for i in self.list.selectedItems()])
        buttons.addWidget(rm)
        buttons.addStretch(1)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.list, 1)
        lay.addLayout(buttons)

    def paths(self) -> list[Path]:
        return [Path(self.list.item(i).text()) for i in range(self.list.count())]

    def add(self, path: str | Path) -> None:
        if str(path) not in [str(p) for p in self.paths()]:
            self.list.addItem(str(path))

    def _add_folder(self):
        d = QFileDialog.getExistingDirectory(self, "Choose a folder")
        if d:
            self.add(d)

    def _add_file(self):
        files, _ = QFileDialog.getOpenFileNames(self, "Choose files", "", self.file_filter)
        for f in files:
            self.add(f)


class PathField(QWidget):
    def __init__(self, placeholder: str, file_filter: str = "All files (*)", folder: bool = False):
        super().__init__()
        self.edit = QLineEdit(placeholderText=placeholder)
        self.edit.setClearButtonEnabled(True)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.file_filter, self.folder = file_filter, folder
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.edit, 1)
        lay.addWidget(browse)

    def path(self) -> Path | None:
        t = self.edit.text().strip()
        return Path(t) if t else None

    def _browse(self):
        if self.folder:
            p = QFileDialog.getExistingDirectory(self, "Choose a folder")
        else:
            p, _ = QFileDialog.getOpenFileName(self, "Choose a file", "", self.file_filter)
        if p:
            self.edit.setText(p)


class TrainerTab(QWidget):
    adapter_activated = Signal(str)  # adapter folder

    def __init__(self, runner: JobRunner, base_model=lambda: None, api=None, parent=None):
        super().__init__(parent)
        self.runner = runner
        self.base_model = base_model  # callable: the active model (folder/name), or None for the default
        self.api, self.unavailable = (api, None) if api is not None else load_trainer_api()
        self.report = None
        self.result = None
        self.job: Job | None = None
        self.resumable: set[str] = set()
        self.stage_clock = StageClock()
        if self.api is None:
            msg = QLabel(f"The trainer is not available: {self.unavailable}.\n"
                         "Transcribing, editing and exporting still work.")
            msg.setObjectName("trainerUnavailable")
            msg.setAlignment(Qt.AlignmentFlag.AlignCenter)
            msg.setWordWrap(True)
            QVBoxLayout(self).addWidget(msg)
            return
        self._build()
        self.refresh()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        # Data
        data = QGroupBox("1. Data")
        self.use_projects = QCheckBox()
        self.use_projects.setChecked(True)
        self.pairs = PathList(add_folder=True, add_file=True,
                              file_filter="Manifests (*.tsv *.csv *.jsonl);;All files (*)")
        self.pairs.setToolTip("Folders of audio files with same-named .txt transcripts, or TSV/CSV/JSONL manifests")
        self.docs = PathList(add_folder=True, add_file=True, file_filter="Documents (*.txt *.md *.docx)")
        self.docs.setToolTip("Letters, notes, articles: text in your vocabulary (.txt, .md, .docx)")
        self.word_list = PathField("one term per line (optional)", "Text (*.txt);;All files (*)")
        # -1 ("auto"): trainer.spoken_terms.default_count, as `steno train --words` without --spoken
        self.spoken = QSpinBox(minimum=-1, maximum=5000, value=-1)
        self.spoken.setSpecialValueText("auto")
        self.spoken.setToolTip("Sentences holding your terms (word list, documents), spoken by TTS voices and "
                               "trained on, so the model learns the words without your recordings "
                               "(auto: 4 per term, 48 to 400; 0 = none)")
        self.eval_data = PathField("held-out set (optional; else 15% is split off)")
        self.check_btn = QPushButton("Check data")
        self.check_btn.clicked.connect(self.check_data)
        form = QFormLayout(data)
        form.addRow(self.use_projects)
        form.addRow("Audio + transcripts", self.pairs)
        form.addRow("Documents", self.docs)
        form.addRow("Word list", self.word_list)
        form.addRow("Spoken term sentences", self.spoken)
        form.addRow("Test on", self.eval_data)
        form.addRow(self.check_btn)

        # Settings
        settings = QGroupBox("2. Settings")
        self.name = QLineEdit(time.strftime("my-words-%Y%m%d"))
        self.name.setToolTip("The adapter's name; training again with the same name resumes or replaces it")
        self.epochs = QSpinBox(minimum=1, maximum=100, value=3)
        self.lr = QDoubleSpinBox(decimals=5, minimum=1e-5, maximum=1e-1, singleStep=1e-4, value=5e-4)
        self.fresh = QCheckBox("Start over (ignore a stopped run)")
        form2 = QFormLayout(settings)
        form2.addRow("Adapter name", self.name)
        form2.addRow("Epochs", self.epochs)
        form2.addRow("Learning rate", self.lr)
        form2.addRow(self.fresh)
        self.adv_toggle = QToolButton(text="▸ Advanced", checkable=True)
        self.adv_toggle.setStyleSheet("QToolButton { border: none; }")
        self.advanced = QWidget()
        adv = QFormLayout(self.advanced)
        adv.setContentsMargins(0, 0, 0, 0)
        self.rank = QSpinBox(minimum=1, maximum=256, value=8)
        self.alpha = QSpinBox(minimum=1, maximum=512, value=16)
        self.dropout = QDoubleSpinBox(decimals=2, minimum=0, maximum=0.5, singleStep=0.05, value=0.05)
        self.train_mlp = QCheckBox("Also adapt the MLP layers")
        self.bridge = QComboBox()
        self.bridge.addItems(["frozen", "lora", "full"])
        self.batch = QSpinBox(minimum=1, maximum=256, value=4)
        self.accum = QSpinBox(minimum=1, maximum=64, value=1)
        self.warmup = QSpinBox(minimum=0, maximum=10000, value=10)
        self.patience = QSpinBox(minimum=0, maximum=50, value=2)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.text_weight = QDoubleSpinBox(decimals=2, minimum=0, maximum=5, singleStep=0.1, value=0.5)
        self.rehearsal = QSpinBox(minimum=0, maximum=1000, value=96)
        self.rehearsal.setToolTip("Everyday sentences spoken by espeak-ng and trained on beside your data, "
                                  "so the model keeps writing general speech as before (0 = off)")
        self.hint_share = QDoubleSpinBox(decimals=2, minimum=0, maximum=1, singleStep=0.05, value=0.25)
        self.hint_share.setToolTip("Share of clips trained with some of your terms in the prompt, "
                                   "so vocabulary hints help the adapted model")
        for label, w in (("LoRA rank", self.rank), ("LoRA alpha", self.alpha), ("Dropout", self.dropout),
                         ("", self.train_mlp), ("Bridge", self.bridge), ("Batch size", self.batch),
                         ("Gradient accumulation", self.accum), ("Warm-up steps", self.warmup),
                         ("Patience (epochs)", self.patience), ("Seed", self.seed), ("Device", self.device),
                         ("Text weight", self.text_weight), ("Rehearsal sentences", self.rehearsal),
                         ("Hint prompt share", self.hint_share)):
            adv.addRow(label, w)
        self.advanced.hide()
        self.adv_toggle.toggled.connect(self._toggle_advanced)
        form2.addRow(self.adv_toggle)
        form2.addRow(self.advanced)

        left = QWidget()
        llay = QVBoxLayout(left)
        llay.setContentsMargins(0, 0, 0, 0)
        llay.addWidget(data)
        llay.addWidget(settings)
        llay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        # Right: report, progress, results, adapters
        self.summary = QPlainTextEdit(readOnly=True, placeholderText="Check the data to see what will be used.")
        self.summary.setObjectName("dataSummary")
        self.summary.setMaximumHeight(130)
        self.rejected = QTableWidget(0, 2)
        self.rejected.setHorizontalHeaderLabels(["Rejected item", "Why"])
        self.rejected.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.rejected.verticalHeader().hide()
        self.rejected.setMaximumHeight(110)
        self.train_btn = QPushButton("Train")
        self.train_btn.setObjectName("trainButton")
        self.train_btn.clicked.connect(self.start)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel)
        self.cancel_btn.setEnabled(False)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.curve = LossCurve()
        self.results = QTableWidget(3, 3)
        self.results.setHorizontalHeaderLabels(["Before", "After", "Change"])
        self.results.setVerticalHeaderLabels(["Word error rate", "Character error rate", "Term recall"])
        self.results.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        row_h = self.results.fontMetrics().height() + 8
        self.results.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.results.verticalHeader().setDefaultSectionSize(row_h)
        self.results.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.results.setFixedHeight(self.results.horizontalHeader().sizeHint().height() + 3 * row_h
                                    + 2 * self.results.frameWidth())
        self.activate_btn = QPushButton("Use this adapter")
        self.activate_btn.setEnabled(False)
        self.activate_btn.clicked.connect(lambda: self.result and self.activate(str(self.result.path)))
        self.adapters = QTableWidget(0, 3)
        self.adapters.setHorizontalHeaderLabels(["Adapter", "Created", "WER before → after"])
        self.adapters.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in (1, 2):
            self.adapters.horizontalHeader().setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.adapters.verticalHeader().hide()
        self.adapters.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.adapters.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        use = QPushButton("Use selected")
        use.clicked.connect(self._use_selected)
        delete = QPushButton("Delete selected")
        delete.clicked.connect(self._delete_selected)

        right = QWidget()
        grid = QGridLayout(right)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.summary, 0, 0, 1, 3)
        grid.addWidget(self.rejected, 1, 0, 1, 3)
        grid.addWidget(self.train_btn, 2, 0)
        grid.addWidget(self.cancel_btn, 2, 1)
        grid.addWidget(self.bar, 2, 2)
        grid.addWidget(self.status, 3, 0, 1, 3)
        grid.addWidget(self.curve, 4, 0, 1, 3)
        grid.addWidget(self.results, 5, 0, 1, 3)
        grid.addWidget(self.activate_btn, 6, 0)
        grid.addWidget(QLabel("Your adapters"), 7, 0, 1, 3)
        grid.addWidget(self.adapters, 8, 0, 1, 3)
        grid.addWidget(use, 9, 0)
        grid.addWidget(delete, 9, 1)
        grid.setColumnStretch(2, 1)
        grid.setRowStretch(4, 2)
        grid.setRowStretch(8, 1)

        split = QSplitter()
        split.addWidget(scroll)
        split.addWidget(right)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setChildrenCollapsible(False)
        QVBoxLayout(self).addWidget(split)

    def _toggle_advanced(self, on: bool) -> None:
        self.advanced.setVisible(on)
        self.adv_toggle.setText(("▾" if on else "▸") + " Advanced")

    # -------------------------------------------------------------------- data

    def corrected_projects(self) -> dict[str, str]:
        """{training folder the trainer reads: the project's name}; the folder can be a private
        decrypted copy, which the user never needs to see."""
        out = {}
        for p in list_projects():
            d = p.training_dir()
            if d is not None:
                out[str(d)] = f"project “{p.name}”"
        return out

    def refresh(self) -> None:
        if self.api is None:
            return
        n = len(self.corrected_projects())
        self.use_projects.setText(f"My corrected projects ({n} saved as training data)")
        self.refresh_adapters()

    def refresh_adapters(self) -> None:
        try:
            adapters = self.api.list_adapters()
        except Exception as e:  # noqa: BLE001
            log.warning("listing adapters: %s", e)
            adapters = []
        self.adapters.setRowCount(len(adapters))
        for r, a in enumerate(adapters):
            before = a.before.wer if a.before else None
            after = a.after.wer if a.after else None
            for c, text in enumerate((a.name, str(a.created)[:16], f"{_pct(before)} → {_pct(after)}")):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, str(a.path))
                self.adapters.setItem(r, c, item)

    def _collect_args(self) -> dict:
        data, labels = list(self.pairs.paths()), {}
        if self.use_projects.isChecked():
            labels = self.corrected_projects()
            data = [Path(d) for d in labels] + data
        return dict(data=data, text=self.docs.paths(), word_list=self.word_list.path(),
                    eval_data=self.eval_data.path(), seed=self.seed.value(), labels=labels)

    def check_data(self) -> Job | None:
        """Read and check the chosen data in the background; show what was taken and rejected."""
        if self.job is not None:
            return None
        args, api = self._collect_args(), self.api
        job = Job(lambda progress, cancel: api.collect_data(**args), name="check training data")
        job.done.connect(self._show_report)
        job.failed.connect(lambda msg: show_error(self, "Training data", msg))
        job.finished.connect(lambda: self._set_busy(None))
        self.summary.setPlainText("Checking the data…")
        self._set_busy(job)
        return self.runner.submit(job)

    def model_family(self) -> str | None:
        """The family of the model Train would adapt ("whisper", "bridge"); None if unknown yet."""
        from engine.errors import StenoError
        from engine.models.config import ModelConfig
        from engine.models.registry import resolve_model

        try:
            return ModelConfig.load(resolve_model(self.base_model())).family
        except (StenoError, OSError, ValueError):
            return None

    def _show_report(self, report) -> None:
        """What was taken and rejected, and whether Train will take it (the same check training makes)."""
        self.report = report
        problem = report.problem(self.model_family())
        verdict = f"cannot train yet: {problem}" if problem else "ready to train"
        self.summary.setPlainText(f"{verdict}\n\n{report.summary()}")
        if self.job is None or self.job.name == "check training data":
            self.status.setText(verdict)
        self.rejected.setRowCount(len(report.rejected))
        for r, (item, reason) in enumerate(report.rejected):
            self.rejected.setItem(r, 0, QTableWidgetItem(str(item)))
            self.rejected.setItem(r, 1, QTableWidgetItem(str(reason)))

    # ---------------------------------------------------------------- training

    def train_settings(self):
        return self.api.TrainSettings(
            rank=self.rank.value(), alpha=self.alpha.value(), dropout=self.dropout.value(),
            train_mlp=self.train_mlp.isChecked(), bridge=self.bridge.currentText(), epochs=self.epochs.value(),
            learning_rate=self.lr.value(), batch_size=self.batch.value(), grad_accum=self.accum.value(),
            warmup_steps=self.warmup.value(), patience=self.patience.value(), seed=self.seed.value(),
            device=self.device.currentText(), text_weight=self.text_weight.value(),
            rehearsal=self.rehearsal.value(), hint_share=self.hint_share.value())

    def out_dir(self) -> Path:
        name = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.name.text().strip()) or "adapter"
        return steno_home() / "adapters" / name

    def start(self) -> Job | None:
        """Collect the data (again, so it is current) and train; resumes a stopped run of the same name."""
        if self.job is not None:
            return None
        args, api = self._collect_args(), self.api
        settings, out = self.train_settings(), self.out_dir()
        base = self.base_model()
        resume = not self.fresh.isChecked()
        spoken = self.spoken.value()

        def work(progress, cancel):
            progress(0.0, "checking the data")
            report = api.collect_data(**args)
            job.post(report)

            def callback(p):
                job.post(p)
                progress(p.fraction, p.message)

            if report.texts and spoken != 0:  # as `steno train --words/--text` does
                report = api.speak_terms(report, None if spoken < 0 else spoken, args["seed"], callback, cancel=cancel)
                job.post(report)
                if cancel():
                    return None

            if base is None:
                from engine.models.registry import resolve_model

                model = resolve_model(None)
            else:
                model = base
            return api.train_adapter(model, report, out, settings, callback=callback, cancel=cancel, resume=resume)

        job = Job(work, name=f"train {out.name}")
        job.update.connect(self._update)
        job.progress.connect(self._progress)
        job.done.connect(self._finished)
        job.failed.connect(self._failed)
        job.cancelled.connect(lambda: self._stopped(out.name))
        job.finished.connect(lambda: self._set_busy(None))
        self.curve.clear()
        self.stage_clock = StageClock()
        self.result = None
        self.activate_btn.setEnabled(False)
        self.status.setText("starting…")
        self._set_busy(job)
        return self.runner.submit(job)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status.setText("stopping at the next step (progress is saved)…")

    def _set_busy(self, job: Job | None) -> None:
        self.job = job
        self.train_btn.setEnabled(job is None)
        self.check_btn.setEnabled(job is None)
        self.cancel_btn.setEnabled(job is not None)

    def _update(self, value) -> None:
        if hasattr(value, "summary") and hasattr(value, "pairs"):
            self._show_report(value)
            return
        p = value
        self.curve.add(p.step, p.total_steps, p.loss, p.eval_loss)
        count = p.count()
        if count is not None or not p.total_steps:  # a stage before or after the steps: its own count and pace
            eta = eta_text(self.stage_clock.eta(p.message, *count)) if count else ""
            self.status.setText(p.message + (f" · {eta}" if eta else ""))
            return
        parts = [f"step {p.step}/{p.total_steps}", f"epoch {p.epoch}"]
        if p.loss is not None:
            parts.append(f"loss {p.loss:.3f}")
        if p.eval_loss is not None:
            parts.append(f"held-out loss {p.eval_loss:.3f}")
        if p.eta_seconds:
            parts.append(eta_text(p.eta_seconds))
        self.status.setText(" · ".join(parts) + (f" — {p.message}" if p.message else ""))

    def _progress(self, fraction: float, message: str) -> None:
        self.bar.setValue(int(fraction * 1000))

    def _finished(self, result) -> None:
        self.result = result
        name = Path(result.path).name
        if result.cancelled:
            self._stopped(name)
            return
        self.resumable.discard(name)
        self.train_btn.setText("Train")
        self.bar.setValue(1000)
        self.status.setText(f"adapter saved: {result.path}" + (" (stopped early: no longer improving)"
                                                                 if result.stopped_early else ""))
        rows = [(result.before.wer, result.after.wer, True), (result.before.cer, result.after.cer, True),
                (result.before.term_recall, result.after.term_recall, False)]
        for r, (b, a, lower_better) in enumerate(rows):
            change = "–"
            if all(x is not None and math.isfinite(x) for x in (a, b)):
                d = a - b
                better = d < 0 if lower_better else d > 0
                change = f"{'+' if d > 0 else ''}{100 * d:.1f} pts" + (" ✓" if better else "")
            for c, text in enumerate((_pct(b), _pct(a), change)):
                self.results.setItem(r, c, QTableWidgetItem(text))
        self.activate_btn.setEnabled(True)
        self.refresh_adapters()

    def _stopped(self, name: str) -> None:
        self.resumable.add(name)
        self.train_btn.setText("Resume training")
        self.status.setText("stopped; progress is saved — “Resume training” goes on from here")

    def _failed(self, message: str) -> None:
        self.status.setText(f"failed: {message}")
        show_error(self, "Training", message)

    def activate(self, path: str) -> None:
        self.adapter_activated.emit(path)

    def _selected_adapter(self) -> str | None:
        items = self.adapters.selectedItems()
        return items[0].data(Qt.ItemDataRole.UserRole) if items else None

    def _use_selected(self) -> None:
        path = self._selected_adapter()
        if path:
            self.activate(path)

    def _delete_selected(self) -> None:
        path = self._selected_adapter()
        if not path:
            return
        from PySide6.QtWidgets import QMessageBox

        if QMessageBox.question(self, "Delete adapter", f"Delete the adapter {Path(path).name}?") \
                != QMessageBox.StandardButton.Yes:
            return
        try:
            self.api.delete_adapter(Path(path))
        except Exception as e:  # noqa: BLE001
            show_error(self, "Delete adapter", str(e))
        self.refresh_adapters()
