"""“Use as training data” takes the segments the user corrected or confirmed, and asks before
taking the model's own unchecked text, whose mistakes would otherwise become training text
and terms."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6.QtWidgets")

from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton  # noqa: E402

from app import projects as P  # noqa: E402
from app.gui.training_data import training_data_job  # noqa: E402
from engine.text.transcript import Segment, Transcript  # noqa: E402

TIMEOUT = 60_000


def project_with(segments: list[Segment]) -> P.Project:
    project = P.Project.create("Ward round")
    t = np.arange(int(16000 * 9.0)) / 16000
    P.write_audio_flac(project.folder / P.AUDIO_FILE, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    project.audio = P.AUDIO_FILE
    project.save_transcript(Transcript(segments=segments, duration=9.0), original=True)
    return project


def ward_round() -> list[Segment]:
    """The model wrote "Start ibuprofin"; the user corrected it, confirmed the second, never read the third."""
    return [Segment(0.0, 2.0, "Stop ibuprofen tonight", flags=["edited"]),
            Segment(3.0, 5.0, "continue amlodipine", flags=["confirmed"]),
            Segment(6.0, 8.0, "recheck the ibuprofin level")]


@pytest.fixture
def answer(qtbot):
    """answer(button_text, seen): click that button in the question once it is up (None: expect
    no question). The watch ends with the test, so it can never click another test's dialog."""
    state = {"on": True}

    def start(button_text: str | None, seen: list) -> None:
        def click():
            if not state["on"]:
                return
            box = QApplication.activeModalWidget()
            if not (isinstance(box, QMessageBox) and box.objectName() == "trainingChoice"):
                QTimer.singleShot(20, click)
                return
            seen.append(box.text())
            [button] = [b for b in box.findChildren(QPushButton) if b.text() == button_text]
            qtbot.mouseClick(button, Qt.MouseButton.LeftButton)

        if button_text is not None:
            QTimer.singleShot(0, click)

    yield start
    state["on"] = False


def saved_texts(project: P.Project) -> list[str]:
    d = project.training_dir()
    return [] if d is None else [p.read_text().strip() for p in sorted(Path(d).glob("*.txt"))]


def run(make_window, answer, qtbot, project, button_text):
    w = make_window()
    seen: list[str] = []
    answer(button_text, seen)
    job = training_data_job(w, project)
    if job is not None:
        w.io.submit(job)
        qtbot.waitUntil(lambda: job.ended, timeout=TIMEOUT)
        assert job.state == "done", job.error
    return job, seen


def test_only_the_checked_segments_become_training_data(make_window, answer, qtbot):
    project = project_with(ward_round())
    job, seen = run(make_window, answer, qtbot, project, "Only the 2 checked")
    assert "You corrected or confirmed 2 of the 3 segments" in seen[0] and "own mistakes" in seen[0]
    assert saved_texts(project) == ["Stop ibuprofen tonight", "continue amlodipine"]

    from trainer.api import collect_data

    terms = collect_data([project.training_dir()]).terms
    assert "ibuprofen" in terms and "ibuprofin" not in terms  # the model's mistake is no term


def test_the_user_may_take_every_segment(make_window, answer, qtbot):
    project = project_with(ward_round())
    run(make_window, answer, qtbot, project, "Use all 3")
    assert len(saved_texts(project)) == 3


def test_nothing_checked_asks_and_cancel_saves_nothing(make_window, answer, qtbot):
    project = project_with([Segment(0.0, 2.0, "recheck the ibuprofin level"), Segment(3.0, 5.0, "see you soon")])
    job, seen = run(make_window, answer, qtbot, project, "Cancel")
    assert job is None and "None of the 2 segments" in seen[0]
    assert saved_texts(project) == [] and not (project.folder / P.TRAINING_DIR).exists()


def test_a_fully_checked_transcript_is_taken_without_a_question(make_window, answer, qtbot):
    segments = ward_round()[:2]
    project = project_with(segments)
    job, seen = run(make_window, answer, qtbot, project, None)
    assert seen == [] and saved_texts(project) == ["Stop ibuprofen tonight", "continue amlodipine"]


def test_the_projects_tab_button_asks_and_takes_the_checked_segments(make_window, answer, qtbot):
    project = project_with(ward_round())
    w = make_window()
    tab = w.projects_tab
    tab.refresh()
    tab.table.selectRow(0)
    seen: list[str] = []
    answer("Only the 2 checked", seen)
    [button] = [b for b in tab.findChildren(QPushButton) if b.text() == "Use as training data"]
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.io.busy() and bool(saved_texts(project)), timeout=TIMEOUT)
    assert saved_texts(project) == ["Stop ibuprofen tonight", "continue amlodipine"]
