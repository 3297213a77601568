"""Settings → Vocabulary → “Teach these words”: the list trained into an adapter from spoken
sentences, with progress and cancel, measured on the user's own corrected segments."""

import shutil

import numpy as np
import pytest

pytest.importorskip("PySide6.QtWidgets")

from PySide6.QtCore import Qt  # noqa: E402

from app import projects as P  # noqa: E402
from app.gui.teach_words import ADAPTER_NAME, recall_change  # noqa: E402
from app.gui.trainer_tab import load_trainer_api  # noqa: E402
from app.settings import AppSettings  # noqa: E402
from engine.audio import load_audio  # noqa: E402
from engine.models.registry import steno_home  # noqa: E402
from engine.text.transcript import Segment, Transcript  # noqa: E402
from tests.conftest import espeak  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (setup.sh)")
TIMEOUT = 120_000


@pytest.fixture
def teach(make_window, monkeypatch):
    api, why = load_trainer_api()
    if api is None:
        pytest.skip(f"trainer not available: {why}")
    import trainer.spoken_terms

    monkeypatch.setattr(trainer.spoken_terms, "DEFAULT_COUNT", 10)  # the fewest a run takes
    w = make_window(trainer_api=api)
    w.settings_tab.hints.setPlainText("amlodipine\nrivaroxaban\nAmlodipine\n")
    w.settings_tab.teach.settings = api.TrainSettings(epochs=1, rehearsal=0, device="cpu")
    return w, w.settings_tab.teach


def corrected_project(tmp_path):
    """A project saved as training data: two spoken segments, one with a listed term."""
    said = ["the patient takes amlodipine", "she walked home after lunch"]
    clips = [load_audio(espeak(s, tmp_path / f"{i}.wav")) for i, s in enumerate(said)]
    project = P.Project.create("Clinic letter")
    P.write_audio_flac(project.folder / P.AUDIO_FILE, np.concatenate(clips).astype(np.float32), 16000)
    project.audio = P.AUDIO_FILE
    first = len(clips[0]) / 16000
    transcript = Transcript(segments=[Segment(0.0, first, said[0]),
                                      Segment(first, first + len(clips[1]) / 16000, said[1])],
                            duration=first + len(clips[1]) / 16000)
    project.save_transcript(transcript, original=True)
    project.save_training_data(transcript)
    return project


def test_teach_these_words_trains_and_measures_on_the_users_corrected_segments(teach, qtbot, tmp_path):
    w, widget = teach
    corrected_project(tmp_path)
    seen = []
    widget.bar.valueChanged.connect(seen.append)
    qtbot.mouseClick(widget.button, Qt.MouseButton.LeftButton)
    assert not widget.button.isEnabled() and widget.cancel_btn.isEnabled() and not widget.bar.isHidden()
    qtbot.waitUntil(lambda: widget.job is None, timeout=TIMEOUT)
    text = widget.status.text()
    assert "term recall" in text and "on 1 of your corrected segments" in text, text
    assert (steno_home() / "adapters" / ADAPTER_NAME / "steno_adapter.json").is_file()
    assert seen and widget.button.isEnabled() and not widget.cancel_btn.isEnabled()
    result = widget.result
    used = result.after.term_recall > result.before.term_recall
    assert (AppSettings.load().adapter == str(result.path)) == used
    assert ("now used" in text) == used and ("not put to use" in text) == (not used)


def test_cancel_stops_and_leaves_no_adapter(teach, qtbot):
    w, widget = teach
    qtbot.mouseClick(widget.button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(widget.cancel_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.job is None, timeout=TIMEOUT)
    assert widget.status.text().startswith("stopped")
    assert not (steno_home() / "adapters" / ADAPTER_NAME).exists() and widget.button.isEnabled()


def test_an_empty_list_says_what_to_do(teach, qtbot):
    w, widget = teach
    w.settings_tab.hints.setPlainText("  \n")
    qtbot.mouseClick(widget.button, Qt.MouseButton.LeftButton)
    assert widget.job is None and "add some words" in widget.status.text()


def test_the_adapter_is_put_to_use_only_when_it_finds_more_terms(teach):
    from trainer.api import AdapterResult, Scores

    w, widget = teach
    worse = AdapterResult(steno_home() / "x", Scores(0.1, 0.1, 0.5), Scores(0.1, 0.1, 0.25), False, False)
    assert recall_change(worse, "held-out sentences") == ("term recall 50% → 25% on held-out sentences", False)
    widget._finished((worse, "held-out sentences"))
    assert AppSettings.load().adapter is None
    better = AdapterResult(steno_home() / "y", Scores(0.1, 0.1, 0.25), Scores(0.1, 0.1, 0.75), False, False)
    widget._finished((better, "3 of your corrected segments"))
    assert AppSettings.load().adapter == str(steno_home() / "y") and "now used" in widget.status.text()
    unknown = AdapterResult(steno_home() / "z", Scores(0.1, 0.1, None), Scores(0.1, 0.1, None), False, False)
    assert recall_change(unknown, "x")[1] is False
