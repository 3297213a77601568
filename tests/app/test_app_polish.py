"""Issue 27 item 21: the smaller things a user hits in the app, each as the user meets it.

Privacy statement fits its dialog; rename keeps the selection and Enter does not delete; theme
colours are readable where they are drawn; failed queue rows show their whole error; noise is
"no speech found"; the playing row shows under the selection; File → Record says why it is off;
replace-all says how many; the window comes back as it was left; a file opened twice is one
project; dictations are named by date, time and first words."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("PySide6.QtWidgets")

from PySide6.QtCore import QPoint, Qt, QTimer  # noqa: E402
from PySide6.QtGui import QColor, QPalette  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QApplication,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QTextBrowser,
)

from app import projects as P  # noqa: E402
from app.gui import theme  # noqa: E402
from app.gui.editor import TEXT_COL  # noqa: E402
from app.gui.workers import Job  # noqa: E402
from app.settings import AppSettings, privacy_statement  # noqa: E402
from engine.text.transcript import Segment, Transcript  # noqa: E402
from tests.app.test_app import project_with, sample_transcript, wait_job  # noqa: E402
from tests.app.test_app_record import Streams  # noqa: E402
from tests.conftest import espeak  # noqa: E402


@pytest.fixture
def themed():
    """Switch the app's theme for a test and put the old look back after it."""
    app = QApplication.instance()
    palette, sheet, style = QApplication.palette(), app.styleSheet(), app.style().name()
    yield lambda name: theme.apply_theme(app, name)
    app.setStyle(style)
    app.setPalette(palette)
    app.setStyleSheet(sheet)


def css_color(html: str, word: str) -> QColor:
    m = re.search(r'<span style="([^"]*)">' + re.escape(word), html)
    assert m, html
    return QColor(re.search(r"color: (#[0-9a-fA-F]{6})", m.group(1)).group(1))


# ------------------------------------------------------------------------------ settings


def test_privacy_statement_fits_its_dialog(make_window, qtbot, monkeypatch, tmp_path):
    home = tmp_path / ("a_long_folder_name_without_any_spaces_in_it_" * 3) / "steno"
    monkeypatch.setenv("STENO_HOME", str(home))
    w = make_window()
    tab = w.settings_tab
    w.tabs.setCurrentWidget(tab)
    tab.privacy_btn.click()
    box = tab.findChild(QMessageBox, "privacyDialog")
    qtbot.waitUntil(box.isVisible)
    screen = box.screen().availableGeometry()
    assert box.frameGeometry().width() <= screen.width()
    shown = [c for c in box.findChildren(QLabel) + box.findChildren(QTextBrowser) if c.isVisible()]
    for child in shown:  # nothing runs off the right edge
        right = child.mapTo(box, QPoint(child.width(), 0)).x()
        assert right <= box.width(), (child.objectName(), right, box.width())
    view = box.findChild(QTextBrowser, "privacyText")
    assert view.isVisible() and view.toPlainText() == privacy_statement() and str(home) in view.toPlainText()
    assert view.document().idealWidth() <= view.viewport().width()  # long paths wrap
    box.close()


# ------------------------------------------------------------------------------ projects


def test_rename_keeps_the_selection_and_enter_does_not_delete(make_window, qtbot, monkeypatch):
    for name in ("Oldest", "Middle", "Newest"):
        P.Project.create(name)
        time.sleep(0.01)
    w = make_window()
    tab = w.projects_tab
    w.tabs.setCurrentWidget(tab)
    tab.refresh()
    assert [p.name for p in tab.projects] == ["Newest", "Middle", "Oldest"]
    tab.table.selectRow(2)
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("Renamed", True)))
    next(b for b in tab.findChildren(QPushButton) if b.text() == "Rename…").click()
    assert tab.selected().name == "Renamed"  # it moved to the top; the selection went with it

    seen = {}

    def press_enter():
        box = QApplication.activeModalWidget()
        seen["default"] = box.defaultButton().text().replace("&", "")
        qtbot.keyClick(box, Qt.Key.Key_Return)

    QTimer.singleShot(200, press_enter)
    next(b for b in tab.findChildren(QPushButton) if b.text() == "Delete…").click()
    assert seen["default"] == "No"
    assert sorted(p.name for p in P.list_projects()) == ["Middle", "Newest", "Renamed"]  # nothing deleted


# ------------------------------------------------------------------------------ colours


@pytest.mark.parametrize("name", ["dark", "light"])
def test_unsure_words_readable_on_every_row_and_the_playing_row(make_window, qtbot, themed, name):
    themed(name)
    w = make_window()
    assert w.transcribe_tab.open_project(project_with(sample_transcript()))
    model = w.transcribe_tab.document.editor.model
    pal = QApplication.palette()
    unsure = css_color(model.rich_text(0), "amlodipine")
    for role in (QPalette.ColorRole.Base, QPalette.ColorRole.AlternateBase):
        assert theme.contrast(unsure, pal.color(role)) >= 4.5
    model.set_playing(0)
    playing = model.data(model.index(0, TEXT_COL), Qt.ItemDataRole.BackgroundRole)
    assert playing.alpha() == 255  # what is drawn, not blended with an unknown row colour
    assert theme.contrast(css_color(model.rich_text(0), "amlodipine"), playing) >= 4.5
    assert theme.contrast(pal.color(QPalette.ColorRole.Text), playing) >= 4.5


@pytest.mark.parametrize("name", ["dark", "light"])
def test_done_state_readable_on_a_selected_queue_row(make_window, qtbot, themed, name, tmp_path):
    themed(name)
    w = make_window()
    queue = w.transcribe_tab.files.queue
    job = Job(lambda progress, cancel: None, name="x")
    row = queue.add("x.wav", job, P.Project.create("x"))
    job.done.emit(Transcript([Segment(0.0, 1.0, "hello")]))
    assert row.status.text().startswith("done")
    pal = queue.list.palette()

    def shown():
        row.status.ensurePolished()
        return row.status.palette().color(QPalette.ColorRole.WindowText)

    assert theme.contrast(shown(), pal.color(QPalette.ColorRole.Base)) >= 4.5
    qtbot.mouseClick(row.status, Qt.MouseButton.LeftButton)
    assert queue.list.item(0).isSelected()
    assert theme.contrast(shown(), pal.color(QPalette.ColorRole.Highlight)) >= 4.5


def test_the_playing_row_shows_under_the_selection(make_window, qtbot, themed):
    themed("light")
    w = make_window()
    assert w.transcribe_tab.open_project(project_with(sample_transcript()))
    ed = w.transcribe_tab.document.editor
    ed.select_row(1)
    ed.model.set_playing(1)
    ed.table.viewport().repaint()
    image = ed.table.viewport().grab().toImage()
    rect = ed.table.visualRect(ed.model.index(1, TEXT_COL))
    inside = image.pixelColor(rect.right() - 12, rect.center().y())
    edge = image.pixelColor(rect.right() - 12, rect.top() + 1)
    assert inside == theme.colors()["playing"]  # the playing colour, not hidden by the selection
    assert edge == QApplication.palette().color(QPalette.ColorRole.Highlight)  # and the selection round it


# ------------------------------------------------------------------------------ queue


def test_failed_rows_show_the_whole_error(make_window, qtbot, tmp_path):
    folder = tmp_path / ("a_folder_with_a_long_name_" * 4)
    folder.mkdir()
    bad = folder / "broken recording from the clinic.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + b"\x01" * 500)
    w = make_window()
    w.resize(900, 700)
    files = w.transcribe_tab.files
    [job] = files.open_files([bad])
    wait_job(qtbot, job)
    assert job.state == "failed"
    row = files.queue.rows()[0]
    qtbot.waitUntil(lambda: row.status.height() >= row.status.heightForWidth(row.status.width()))
    assert row.status.text() == f"failed: {job.error}" and str(bad) in row.status.text()
    assert row.status.toolTip() == row.status.text()
    lines = row.status.heightForWidth(row.status.width()) // row.status.fontMetrics().lineSpacing()
    assert lines >= 2  # it needed wrapping, and got the room for it


def test_noise_is_no_speech_found_not_an_empty_done(make_window, qtbot, tmp_path, monkeypatch):
    noise = tmp_path / "noise.wav"
    sf.write(noise, np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32), 16000)
    w = make_window()
    monkeypatch.setattr(w.service, "transcribe", lambda *a, **k: Transcript([Segment(0.0, 2.0, " ")]))
    [job] = w.transcribe_tab.files.open_files([noise])
    wait_job(qtbot, job)
    row = w.transcribe_tab.files.queue.rows()[0]
    assert row.status.text().startswith("no speech found") and not row.status.text().startswith("done")
    assert "noise.wav: no speech found" in w.statusBar().currentMessage()
    assert noise.is_file()


def test_opening_the_same_file_twice_shows_its_project(make_window, qtbot, tmp_path):
    wav = Path(espeak("hello world this is a test", tmp_path / "hello.wav"))
    w = make_window()
    files = w.transcribe_tab.files
    [job] = files.open_files([wav])
    wait_job(qtbot, job)
    assert job.state == "done", job.error
    [project] = P.list_projects()
    w.transcribe_tab.document.project_deleted(project)  # the user looks at something else
    assert files.open_files([tmp_path / "." / "hello.wav"]) == []
    assert [p.folder for p in P.list_projects()] == [project.folder]
    assert w.transcribe_tab.project.folder == project.folder
    assert "transcribed already" in w.statusBar().currentMessage()


# ------------------------------------------------------------------------------ menus, find


def test_file_record_is_off_without_a_microphone_and_says_why(make_window, monkeypatch):
    import app.gui.dictation

    monkeypatch.setattr(app.gui.dictation, "input_devices",
                        lambda: ([], "no microphone or other audio input device was found"))
    w = make_window()
    action = w.menus.record_action
    assert not action.isEnabled() and "no microphone" in action.toolTip()
    assert w.menus.file_menu.toolTipsVisible()
    action.trigger()
    assert not w.transcribe_tab.dictation.recording
    w.transcribe_tab.dictation.record_panel.set_devices([(0, "USB mic")], 0, None)  # plugged in
    assert action.isEnabled()


def test_replace_all_says_how_many(make_window, qtbot):
    w = make_window()
    assert w.transcribe_tab.open_project(project_with(sample_transcript()))
    document = w.transcribe_tab.document
    document.find(replace=True)
    bar = document.editor.find_bar
    qtbot.keyClicks(bar.find_edit, "patient")
    qtbot.keyClicks(bar.replace_edit, "client")
    next(b for b in bar.findChildren(QPushButton) if b.text().replace("&", "") == "Replace all").click()
    assert bar.count.text() == "2 replaced"
    assert "client" in document.editor.transcript.segments[2].text


# ------------------------------------------------------------------------------ window, dictation


def test_window_reopens_at_its_size_with_the_last_project(make_window, qtbot, tiny_model_dir):
    w = make_window(settings=AppSettings(model=str(tiny_model_dir)))
    project = project_with(sample_transcript())
    assert w.transcribe_tab.open_project(project)
    w.resize(720, 700)
    size = (w.width(), w.height())
    assert size != (800, 800)  # not the size a new window gets
    w.close()
    w2 = make_window(settings=AppSettings.load())
    qtbot.waitUntil(lambda: w2.transcribe_tab.project is not None)
    assert w2.transcribe_tab.project.folder == project.folder
    assert (w2.width(), w2.height()) == size


def test_dictations_are_named_by_date_time_and_first_words(make_window, qtbot, monkeypatch):
    w = make_window(input_stream=Streams())
    monkeypatch.setattr(w.service, "transcribe", lambda *a, **k: Transcript(
        [Segment(0.0, 1.0, "The patient is well today, thank you doctor.")]))
    tab = w.transcribe_tab
    dictation = tab.dictation
    dictation.record_panel.live.setChecked(False)
    assert dictation.start_recording()
    project = tab.project
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(project.created))
    assert project.name == f"Dictation {stamp}"
    dictation.stop_recording()
    job = tab.files.queue.rows()[-1].job
    wait_job(qtbot, job)
    assert job.state == "done", job.error
    assert P.Project.load(project.folder).name == f"{stamp} The patient is well today, thank…"
