"""The Trainer tab on tiny data with the real trainer: check data, train, cancel, resume,
before/after table, and switching to the new adapter without a restart."""

import pytest

pytest.importorskip("PySide6.QtWidgets")

from app.gui.player import FakeOutputStream  # noqa: E402
from app.gui.trainer_tab import TrainerTab, load_trainer_api  # noqa: E402
from app.gui.window import MainWindow  # noqa: E402
from app.settings import AppSettings  # noqa: E402
from tests.conftest import espeak  # noqa: E402
from tests.helpers import CORPUS  # noqa: E402

TIMEOUT = 120_000


class CancelAt:
    """The real trainer API, with the running job cancelled (as the Cancel button does) once
    training reaches `step` on the first run."""

    def __init__(self, api, step: int):
        self.api, self.step, self.tab, self.runs = api, step, None, 0

    def __getattr__(self, name):
        return getattr(self.api, name)

    def train_adapter(self, *args, callback=None, cancel=None, **kw):
        self.runs += 1
        job = self.tab.job

        def cb(p):
            callback(p)
            if self.runs == 1 and p.step >= self.step and p.loss is not None:
                job.cancel()

        return self.api.train_adapter(*args, callback=cb, cancel=cancel, **kw)


@pytest.fixture
def pairs(tmp_path):
    d = tmp_path / "pairs"
    d.mkdir()
    for i in range(12):
        s = CORPUS[i % len(CORPUS)]
        espeak(s, d / f"c{i}.wav", voice=["en-us", "en-gb"][i % 2], rate=150 + 5 * i)
        (d / f"c{i}.txt").write_text(s)
    (d / "orphan.txt").write_text("a transcript whose audio is missing")
    return d


def test_trainer_tab_checks_trains_cancels_resumes_and_activates(qtbot, tiny_model_dir, pairs):
    api, why = load_trainer_api()
    if api is None:
        pytest.skip(f"trainer not available: {why}")
    wrapped = CancelAt(api, step=3)
    w = MainWindow(AppSettings(model=str(tiny_model_dir)), output_stream=FakeOutputStream, trainer_api=wrapped,
                   check_startup=False)
    w.show()
    tab = w.trainer_tab
    wrapped.tab = tab
    try:
        tab.use_projects.setChecked(False)
        tab.pairs.add(pairs)
        job = tab.check_data()
        qtbot.waitUntil(lambda: job.ended, timeout=TIMEOUT)
        assert job.state == "done", job.error
        assert "training pairs" in tab.summary.toPlainText()
        assert tab.rejected.rowCount() == 1 and "orphan" in tab.rejected.item(0, 0).text()

        tab.name.setText("tiny-words")
        tab.epochs.setValue(2)
        tab.batch.setValue(2)
        tab.device.setCurrentText("cpu")
        job = tab.start()
        assert not tab.train_btn.isEnabled() and tab.cancel_btn.isEnabled()
        qtbot.waitUntil(lambda: job.ended, timeout=TIMEOUT)
        assert job.state == "done", job.error
        assert tab.result.cancelled
        assert tab.train_btn.text() == "Resume training" and tab.train_btn.isEnabled()
        stopped_at = max(s for s, _ in tab.curve.train)
        assert stopped_at >= 3

        job = tab.start()  # resumes from the checkpoint
        qtbot.waitUntil(lambda: job.ended, timeout=TIMEOUT)
        assert job.state == "done", job.error
        result = tab.result
        assert not result.cancelled and result.path.is_dir()
        assert min(s for s, _ in tab.curve.train) > 1  # went on from where it stopped, not from step 1
        assert tab.results.item(0, 0).text().endswith("%") and tab.results.item(0, 1).text().endswith("%")
        assert tab.adapters.rowCount() == 1 and tab.adapters.item(0, 0).text() == "tiny-words"

        assert tab.activate_btn.isEnabled()
        tab.activate_btn.click()
        assert w.settings.adapter == str(result.path) and AppSettings.load().adapter == str(result.path)
        qtbot.waitUntil(lambda: "tiny-words" in w.model_loader.label.text(), timeout=TIMEOUT)
        assert w.settings_tab.adapter.currentData() == str(result.path)
    finally:
        w.close()


def test_trainer_tab_without_the_trainer_says_so(qtbot, monkeypatch):
    import app.gui.trainer_tab as tt

    monkeypatch.setattr(tt, "load_trainer_api", lambda: (None, "ModuleNotFoundError: No module named 'trainer.api'"))
    tab = TrainerTab(runner=None)
    qtbot.addWidget(tab)
    assert tab.api is None and "not available" in tab.findChild(tt.QLabel, "trainerUnavailable").text()


class SpokenThenStop:
    """The real trainer API, whose train_adapter records the data it was given and stops
    there (as Cancel does), so only the speaking of term sentences runs for real."""

    def __init__(self, api):
        self.api, self.spoken, self.trained = api, [], []

    def __getattr__(self, name):
        return getattr(self.api, name)

    def speak_terms(self, report, count=None, *args, **kw):
        self.spoken.append(count)
        return self.api.speak_terms(report, count, *args, **kw)

    def train_adapter(self, model, report, *args, **kw):
        from app.gui.workers import JobCancelled

        self.trained.append(report)
        raise JobCancelled()


def test_train_with_a_word_list_speaks_term_sentences_as_steno_train_words_does(qtbot, tiny_model_dir, tmp_path):
    import shutil

    from PySide6.QtCore import Qt

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (setup.sh)")
    api, why = load_trainer_api()
    if api is None:
        pytest.skip(f"trainer not available: {why}")
    spy = SpokenThenStop(api)
    w = MainWindow(AppSettings(model=str(tiny_model_dir)), output_stream=FakeOutputStream, trainer_api=spy,
                   check_startup=False)
    w.show()
    tab = w.trainer_tab
    tab.use_projects.setChecked(False)
    words = tmp_path / "terms.txt"
    words.write_text("amlodipine\nrivaroxaban\n")
    tab.word_list.edit.setText(str(words))
    assert tab.spoken.text() == "auto"  # as `steno train --words` without --spoken
    tab.spoken.setValue(10)
    qtbot.mouseClick(tab.train_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.job is None, timeout=TIMEOUT)
    assert spy.spoken == [10] and len(spy.trained) == 1
    spoken = [p for p in spy.trained[0].pairs if p.source.startswith("spoken:")]
    assert len(spoken) >= 10 and all(any(t in p.text.lower() for t in ("amlodipine", "rivaroxaban")) for p in spoken)
    tab.spoken.setValue(0)  # none: the word list alone, as --spoken 0
    qtbot.mouseClick(tab.train_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.job is None, timeout=TIMEOUT)
    assert spy.spoken == [10] and not [p for p in spy.trained[1].pairs if p.source.startswith("spoken:")]
    w.close()
