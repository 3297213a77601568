"""“Teach these words”: the vocabulary list turned into an adapter without the user's recordings.

The list's terms are put into sentences spoken by TTS voices (trainer.api.speak_terms) and a
LoRA adapter is trained on them with the trainer's rehearsal. The effect is measured on the
user's own corrected segments that hold a listed term, when their projects have any (what the
user cares about), else on term sentences spoken by held-out voices; the adapter is put to use
only when it found more of the terms there than the model without it.
"""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from app.gui.workers import Job, JobCancelled, JobRunner, show_error

ADAPTER_NAME = "vocabulary"
MAX_OWN_SEGMENTS = 40  # the user's segments measured on: enough to see a change, quick to transcribe


def corrected_folders() -> dict[str, str]:
    """{training folder of each project saved as training data: the project's name}."""
    from app.projects import list_projects

    return {str(d): f"project “{p.name}”" for p in list_projects() if (d := p.training_dir()) is not None}


def own_segments(api, terms: list[str], folders: dict[str, str]) -> list:
    """The user's corrected segments whose text holds a listed term (at most MAX_OWN_SEGMENTS)."""
    from engine.decoding.hints import said_terms

    if not folders:
        return []
    report = api.collect_data(data=[Path(f) for f in folders], eval_fraction=0, labels=folders)
    return [p for p in report.pairs if said_terms(p.text, terms)][:MAX_OWN_SEGMENTS]


def write_terms(terms: list[str], path: Path) -> Path:
    """The list as a word-list file (written whole, then renamed), for the trainer to read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    part.write_text("\n".join(terms) + "\n", encoding="utf-8")
    part.replace(path)
    return path


def teach(api, terms: list[str], base, out: Path, settings, folders: dict[str, str], post, progress, cancel):
    """Speak the terms, train, measure: (the AdapterResult, what it was measured on). Raises
    JobCancelled on a cancel."""
    from engine.models.registry import resolve_model, steno_home

    progress(0.0, "reading your corrected projects")
    report = api.collect_data(word_list=write_terms(terms, steno_home() / "cache" / "vocabulary-terms.txt"))
    mine = own_segments(api, terms, folders)
    if mine:
        report.eval_pairs, report.eval_source = mine, f"{len(mine)} of your corrected segments"

    def callback(p):
        post(p)
        progress(p.fraction, p.message)

    report = api.speak_terms(report, callback=callback, cancel=cancel)
    if cancel():
        raise JobCancelled()
    result = api.train_adapter(resolve_model(base), report, out, settings, callback=callback, cancel=cancel)
    if result.cancelled:
        raise JobCancelled()
    return result, report.eval_source or "held-out sentences"


def recall_change(result, where: str) -> tuple[str, bool]:
    """“term recall 20% → 80% on …” and whether the adapter found more of the terms."""
    before, after = result.before.term_recall, result.after.term_recall
    if not all(x is not None and math.isfinite(x) for x in (before, after)):
        return "no listed term in the measured sentences: the effect is not known", False
    return f"term recall {100 * before:.0f}% → {100 * after:.0f}% on {where}", after > before


class TeachWords(QWidget):
    """The button, its progress and cancel, and the before/after figure."""

    def __init__(self, runner: JobRunner, api, terms, base_model, on_adapter, parent=None):
        super().__init__(parent)
        self.runner, self.api = runner, api
        self.terms, self.base_model, self.on_adapter = terms, base_model, on_adapter
        self.settings = api.TrainSettings() if api is not None else None  # tests make it small
        self.job: Job | None = None
        self.result = None
        self.button = QPushButton("Teach these words")
        self.button.setToolTip("Train an adapter on sentences with these words, spoken by several synthetic "
                               "voices: no recordings needed. Runs on this computer; can take a while.")
        self.button.clicked.connect(self.start)
        self.button.setEnabled(api is not None)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setVisible(False)
        self.status = QLabel("" if api is not None else "the trainer is not available")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.button)
        row.addWidget(self.cancel_btn)
        row.addWidget(self.bar, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addWidget(self.status)

    def start(self) -> Job | None:
        if self.job is not None:
            return None
        terms = self.terms()
        if not terms:
            self.status.setText("add some words to the list first")
            return None
        from engine.models.registry import steno_home

        api, settings, base, folders = self.api, self.settings, self.base_model(), corrected_folders()
        out = steno_home() / "adapters" / ADAPTER_NAME
        job = Job(lambda progress, cancel: teach(api, terms, base, out, settings, folders, job.post, progress, cancel),
                  name="teach words")
        job.progress.connect(self._progress)
        job.done.connect(self._finished)
        job.failed.connect(self._failed)
        job.cancelled.connect(lambda: self.status.setText("stopped; “Teach these words” goes on from here"))
        job.finished.connect(self._idle)
        self.job = job
        self.button.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.bar.setVisible(True)
        self.bar.setValue(0)
        self.status.setText(f"teaching {len(terms)} word(s)…")
        return self.runner.submit(job)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status.setText("stopping at the next step (progress is saved)…")

    def _progress(self, fraction: float, message: str) -> None:
        self.bar.setValue(int(fraction * 1000))
        if message and not (self.job and self.job.is_cancelled()):
            self.status.setText(message)

    def _finished(self, outcome) -> None:
        result, where = outcome
        self.result = result
        text, better = recall_change(result, where)
        if better:
            self.on_adapter(str(result.path))
            text += f"; the adapter “{ADAPTER_NAME}” is now used (Adapter: None to stop)"
        else:
            text += f"; the adapter “{ADAPTER_NAME}” was saved but not put to use"
        self.status.setText(text)

    def _failed(self, message: str) -> None:
        self.status.setText(f"failed: {message}")
        show_error(self, "Teach these words", message)

    def _idle(self) -> None:
        self.job = None
        self.button.setEnabled(True)
        self.cancel_btn.setEnabled(False)
        self.bar.setVisible(False)
