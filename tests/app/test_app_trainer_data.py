"""The Trainer tab's data check and progress: *Check data* refuses what *Train* refuses, in the
same words, naming projects and never the private decrypted copy; an empty choice says what to
add; encoding the audio shows how far it is and how long is left."""

import threading
import time

import numpy as np
import pytest

pytest.importorskip("PySide6.QtWidgets")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from app import projects as P  # noqa: E402
from app import vault  # noqa: E402
from app.gui.trainer_tab import load_trainer_api  # noqa: E402
from engine.text.transcript import Segment, Transcript  # noqa: E402

TIMEOUT = 60_000


@pytest.fixture
def api():
    api, why = load_trainer_api()
    if api is None:
        pytest.skip(f"trainer not available: {why}")
    return api


def click(qtbot, button):
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def errors_shown(window):
    return [b.text() for b in window.findChildren(QMessageBox, "errorDialog")]


def table_text(table) -> str:
    return "\n".join(table.item(r, c).text() for r in range(table.rowCount()) for c in range(table.columnCount()))


@pytest.fixture
def encrypted_project(monkeypatch):
    """A project saved as training data (2 clips), in an encrypted library: the trainer reads a
    decrypted copy in a private RAM folder."""
    monkeypatch.setattr(vault, "SCRYPT_N", 2 ** 14)
    project = P.Project.create("Clinic letter")
    t = np.arange(int(16000 * 3.0)) / 16000
    P.write_audio_flac(project.folder / P.AUDIO_FILE, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    project.audio = P.AUDIO_FILE
    transcript = Transcript(segments=[Segment(0.0, 1.5, "the patient takes amlodipine"),
                                      Segment(1.6, 3.0, "five milligrams daily")], duration=3.0)
    project.save_transcript(transcript, original=True)
    project.save_training_data(transcript)
    P.encrypt_library("correct horse battery staple")
    yield P.Project.load(project.folder)
    vault.lock(P.projects_root())


def test_check_data_refuses_what_train_refuses_and_names_the_project(make_window, qtbot, api, encrypted_project):
    w = make_window(trainer_api=api)
    tab = w.trainer_tab
    tab.refresh()
    assert "1 saved as training data" in tab.use_projects.text()
    private = str(vault.views_dir())

    click(qtbot, tab.check_btn)
    qtbot.waitUntil(lambda: tab.job is None and tab.report is not None, timeout=TIMEOUT)
    checked = tab.summary.toPlainText()
    assert checked.startswith("cannot train yet: only 2 usable audio+transcript pair(s)")
    assert "add 8 more recording(s) with transcripts" in checked
    assert "cannot train yet" in tab.status.text()
    assert private not in checked + table_text(tab.rejected)

    click(qtbot, tab.train_btn)
    qtbot.waitUntil(lambda: tab.job is None, timeout=TIMEOUT)
    [error] = errors_shown(w)
    problem = tab.report.problem()
    assert error == f"project “Clinic letter”: {problem}"  # the same words as the check
    assert checked.startswith(f"cannot train yet: {problem}")
    assert private not in error and "/dev/shm" not in error


def test_no_data_says_what_to_add_in_check_and_train(make_window, qtbot, api):
    w = make_window(trainer_api=api)
    tab = w.trainer_tab
    click(qtbot, tab.check_btn)
    qtbot.waitUntil(lambda: tab.job is None and tab.report is not None, timeout=TIMEOUT)
    checked = tab.summary.toPlainText().splitlines()[0]
    assert checked.startswith("cannot train yet: no usable training data: add at least 10 recordings")
    assert "Use as training data" in checked and "word list" in checked
    click(qtbot, tab.train_btn)
    qtbot.waitUntil(lambda: tab.job is None, timeout=TIMEOUT)
    assert errors_shown(w) == [checked.removeprefix("cannot train yet: ")]


class SlowEncoding:
    """The trainer API, with training standing in as its encoding stage: `encoding audio n/8`
    for the first four clips, then it waits for Cancel."""

    def __init__(self, api):
        self.api, self.reached = api, threading.Event()

    def __getattr__(self, name):
        return getattr(self.api, name)

    def train_adapter(self, model, report, out, settings, callback=None, cancel=None, resume=True):
        P_ = self.api.Progress
        callback(P_(0, 0, 0, None, None, None, "loading the base model"))
        for i in range(1, 5):
            callback(P_(0, 0, 0, None, None, None, f"encoding audio {i}/8"))
            time.sleep(0.2)
        self.reached.set()
        while not cancel():
            time.sleep(0.01)
        unmeasured = self.api.Scores.unmeasured()
        return self.api.AdapterResult(out, unmeasured, unmeasured, False, True)


def test_encoding_shows_its_progress_and_time_left(make_window, qtbot, api):
    fake = SlowEncoding(api)
    w = make_window(trainer_api=fake)
    tab = w.trainer_tab
    tab.use_projects.setChecked(False)
    click(qtbot, tab.train_btn)
    qtbot.waitUntil(fake.reached.is_set, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: tab.status.text().startswith("encoding audio 4/8"), timeout=TIMEOUT)
    assert tab.bar.value() == 375  # 3 of 8 clips done
    assert "step 0/0" not in tab.status.text()
    left = tab.status.text().split(" · ")[1]
    assert left.startswith("about ") and left.endswith(" s left")
    assert 0 < int(left.split()[1]) < 10  # 5 clips at 0.2 s each
    click(qtbot, tab.cancel_btn)
    qtbot.waitUntil(lambda: tab.job is None, timeout=TIMEOUT)
    assert tab.train_btn.text() == "Resume training"


def test_text_only_data_for_a_whisper_model_is_refused_by_check_as_by_train(make_window, api, real_tiny_en, tmp_path):
    """Documents alone can teach a bridge model, not a Whisper one: Check data says so up front,
    in the words Train refuses with, instead of "ready to train"."""
    from engine.errors import StenoError

    report = api.DataReport(pairs=[], texts=["Start apixaban 5 mg twice daily."], terms=["apixaban"], rejected=[],
                            eval_pairs=[])
    assert report.problem("bridge") is None
    w = make_window(trainer_api=api)
    tab = w.trainer_tab
    tab.base_model = lambda: real_tiny_en
    tab._show_report(report)
    verdict = tab.summary.toPlainText().splitlines()[0]
    assert verdict.startswith("cannot train yet: text-only adaptation needs a bridge model")
    with pytest.raises(StenoError) as refused:
        api.train_adapter(real_tiny_en, report, tmp_path / "adapter")
    assert str(refused.value).startswith(verdict.removeprefix("cannot train yet: "))
