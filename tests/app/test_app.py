"""The desktop app, offscreen: open and transcribe files with a tiny model, edit, undo, find and
replace, export, autosave and crash recovery, bad files, no audio device, projects, settings."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("PySide6.QtWidgets")

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent, QGuiApplication  # noqa: E402
from PySide6.QtWidgets import QMessageBox, QPushButton  # noqa: E402

from app import projects as P  # noqa: E402
from app.gui.player import FakeOutputStream  # noqa: E402
from app.projects import Project  # noqa: E402
from app.settings import AppSettings  # noqa: E402
from engine.text.exporters import FORMATS  # noqa: E402
from engine.text.transcript import Segment, Transcript, Word  # noqa: E402
from tests.conftest import espeak  # noqa: E402

TIMEOUT = 60_000


def wait_job(qtbot, job):
    qtbot.waitUntil(lambda: job.ended, timeout=TIMEOUT)
    return job


def errors_shown(window):
    return [b.text() for b in window.findChildren(QMessageBox, "errorDialog")]


def sample_transcript() -> Transcript:
    return Transcript(segments=[
        Segment(0.0, 2.0, "the patient takes amlodipine", words=[
            Word("the", 0.0, 0.3, 0.9), Word("patient", 0.3, 0.9, 0.95), Word("takes", 0.9, 1.2, 0.8),
            Word("amlodipine", 1.2, 2.0, 0.2)], confidence=0.6),
        Segment(2.2, 4.0, "five milligrams daily"),
        Segment(7.0, 9.0, "follow up next week with the patient"),  # after a 3 s pause: a new paragraph
    ], source="clinic.wav", duration=9.0)




def project_with(transcript: Transcript, audio_seconds: float = 9.0) -> Project:
    project = Project.create("Clinic letter")
    t = np.arange(int(16000 * audio_seconds)) / 16000
    P.write_audio_flac(project.folder / P.AUDIO_FILE, (0.1 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000)
    project.audio = P.AUDIO_FILE
    project.save_transcript(transcript, original=True)
    return project


def test_open_a_file_transcribe_edit_undo_export(make_window, qtbot, tmp_path):
    w = make_window()
    tab = w.transcribe_tab
    document = tab.document
    wav = espeak("hello world this is a test", tmp_path / "hello.wav")
    [job] = tab.files.open_files([Path(wav)])
    wait_job(qtbot, job)
    assert job.state == "done", job.error
    assert tab.project is not None and tab.project.status == "ready"
    segments = document.editor.transcript.segments
    assert segments and segments[0].end > segments[0].start
    assert (tab.project.folder / P.AUDIO_FILE).is_file()  # the project keeps its own copy of the audio
    assert "tiny-hubert-conv-gpt2" in w.model_loader.label.text() and "CPU" in w.model_loader.label.text()
    row = tab.files.queue.rows()[0]
    assert row.status.text().startswith("done") and row.bar.value() == 1000

    original = segments[0].text
    document.editor.edit_row(0, "hello world, this is a test")
    assert document.editor.transcript.segments[0].text == "hello world, this is a test"
    assert "edited" in document.editor.transcript.segments[0].flags
    document.editor.undo_stack.undo()
    assert document.editor.transcript.segments[0].text == original
    document.editor.undo_stack.redo()
    assert document.editor.transcript.segments[0].text == "hello world, this is a test"

    for fmt in FORMATS:
        out = document.export_to(tmp_path / f"out.{fmt}", fmt)
        assert out.is_file() and out.stat().st_size > 0
        if fmt in ("txt", "srt", "vtt", "json"):
            assert "hello world, this is a test" in out.read_text(encoding="utf-8")
    from docx import Document

    assert "hello world, this is a test" in "\n".join(p.text for p in Document(tmp_path / "out.docx").paragraphs)
    assert document.copy_to_clipboard().strip().startswith("hello world, this is a test")
    assert QGuiApplication.clipboard().text().strip().startswith("hello world, this is a test")

    # the edit reached the disk: reopening the project shows it
    saved = Project.load(tab.project.folder).load_transcript()
    assert saved.segments[0].text == "hello world, this is a test"
    assert Project.load(tab.project.folder).original_transcript().segments[0].text == original


def test_queue_cancel_removes_only_the_cancelled_file(make_window, qtbot, tmp_path):
    w = make_window()
    tab = w.transcribe_tab
    a = espeak("first file", tmp_path / "a.wav")
    b = espeak("second file", tmp_path / "b.wav")
    first, second = tab.files.open_files([Path(a), Path(b)])
    rows = tab.files.queue.rows()
    rows[1].button.click()  # cancel the second while it waits
    for job in (first, second):
        wait_job(qtbot, job)
    assert first.state == "done" and second.state == "cancelled"
    assert rows[1].status.text() == "cancelled" and rows[1].button.text() == "Remove"
    assert [p.name for p in P.list_projects()] == ["a"]
    assert Path(b).is_file()  # the user's file is never touched
    rows[1].button.click()  # remove the row
    assert len(tab.files.queue.rows()) == 1


def test_copy_button_and_menu_copy_the_text(make_window, qtbot):
    w = make_window()
    assert w.transcribe_tab.open_project(project_with(sample_transcript()))
    clipboard = QGuiApplication.clipboard()
    clipboard.setText("")
    w.transcribe_tab.document.copy_btn.click()
    assert clipboard.text().startswith("the patient takes amlodipine")
    clipboard.setText("")
    next(a for a in w.menus.file_menu.actions() if a.text() == "&Copy transcript").trigger()
    assert clipboard.text().startswith("the patient takes amlodipine")
    assert w.statusBar().currentMessage() == "transcript copied to the clipboard"


def test_find_replace_and_low_confidence_marks(make_window, qtbot):
    w = make_window()
    project = project_with(sample_transcript())
    assert w.transcribe_tab.open_project(project)
    ed = w.transcribe_tab.document.editor
    assert ed.model.paragraph_start(2) and not ed.model.paragraph_start(1)
    html = ed.model.rich_text(0)
    assert "underline" in html and "amlodipine" in html.split("underline")[1]  # the unsure word is marked

    assert ed.set_find_pattern("patient") == 2
    assert ed.find_next("patient") and ed.current_row() == 0
    assert ed.find_next("patient") and ed.current_row() == 2
    assert ed.find_next("PATIENT", backwards=True) and ed.current_row() == 0
    assert not ed.find_next("PATIENT", case=True)

    assert ed.replace_current("amlodipine", "Amlodipine", case=True)
    assert ed.transcript.segments[0].text == "the patient takes Amlodipine"
    assert "underline" not in ed.model.rich_text(0)  # checked by the user now
    assert ed.replace_all("patient", "client") == 2
    assert [s.text for s in ed.transcript.segments] == [
        "the client takes Amlodipine", "five milligrams daily", "follow up next week with the client"]
    ed.undo_stack.undo()  # replace-all is one step
    assert ed.transcript.segments[0].text == "the patient takes Amlodipine"
    assert ed.transcript.segments[2].text == "follow up next week with the patient"
    ed.undo_stack.redo()
    assert ed.transcript.segments[2].text == "follow up next week with the client"

    # the find bar drives the same functions
    ed.find_bar.open_bar(replace=True)
    ed.find_bar.find_edit.setText("daily")
    ed.find_bar.replace_edit.setText("every morning")
    assert ed.find_bar.count.text() == "1 found"
    [replace_all] = [b for b in ed.find_bar.findChildren(QPushButton) if b.text() == "Replace all"]
    qtbot.mouseClick(replace_all, Qt.MouseButton.LeftButton)
    assert ed.transcript.segments[1].text == "five milligrams every morning"


def test_playback_follows_segments_and_speed(make_window, qtbot):
    w = make_window()
    tab = w.transcribe_tab
    player, editor = tab.document.player, tab.document.editor
    project = project_with(sample_transcript())
    tab.open_project(project)
    qtbot.waitUntil(lambda: player.duration > 8.9, timeout=TIMEOUT)
    stream = []
    player.stream_factory = lambda rate, ch, cb: stream.append(FakeOutputStream(rate, ch, cb)) or stream[-1]
    editor._clicked(editor.model.index(2, 0))  # click the time of the third segment: play from there
    assert player.state == "playing" and abs(player.position - 7.0) < 0.01
    stream[-1].pull(8000)  # half a second of audio
    assert abs(player.position - 7.5) < 0.1
    player._tick()
    assert editor.model.playing_row == 2
    player.set_speed(2.0)
    before = player.position
    stream[-1].pull(4000)  # a quarter second at 2x covers half a second of the recording
    assert abs(player.position - before - 0.5) < 0.1
    player.toggle()
    assert player.state == "paused"
    player.seek(1.0)
    player._tick()
    assert editor.model.playing_row == 0


def test_autosave_and_recovery_after_a_crash(make_window, qtbot):
    w = make_window()
    tab = w.transcribe_tab
    project = project_with(sample_transcript())
    tab.open_project(project)
    tab.document.editor.edit_row(1, "five milligrams once daily")
    # the edit is on disk at once (journal), before the debounced save of transcript.json
    assert project.folder.joinpath(P.JOURNAL_FILE).is_file()
    saved = json.loads((project.folder / P.TRANSCRIPT_FILE).read_text())
    assert saved["segments"][1]["text"] == "five milligrams daily"
    tab.document._autosave_timer.stop()  # the app "crashes" here: the pending save never happens

    # next start: the crash is noticed and the edit offered back
    w2 = make_window()
    tab2 = w2.transcribe_tab
    w2.startup_checks()
    assert w2.banner.isVisible() and "did not close properly" in w2.banner.label.text()
    w2.recovery.recover_all()
    assert tab2.project is not None and tab2.project.folder == project.folder
    assert tab2.document.editor.transcript.segments[1].text == "five milligrams once daily"
    saved = json.loads((project.folder / P.TRANSCRIPT_FILE).read_text())
    assert saved["segments"][1]["text"] == "five milligrams once daily"
    assert not project.folder.joinpath(P.JOURNAL_FILE).exists()

    # and a normal debounced autosave writes transcript.json by itself
    tab2.document.editor.edit_row(0, "the patient takes amlodipine 5 mg")
    qtbot.waitUntil(lambda: "5 mg" in (project.folder / P.TRANSCRIPT_FILE).read_text(), timeout=5000)


def test_bad_files_dropped_in_show_errors_and_lose_nothing(make_window, qtbot, tmp_path):
    w = make_window()
    tab = w.transcribe_tab
    project = project_with(sample_transcript())
    tab.open_project(project)
    tab.document.editor.edit_row(0, "kept edit")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    text = tmp_path / "notes.mp3"
    text.write_text("this is not audio")
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.ogg"
    folder = tmp_path / "a folder"
    folder.mkdir()
    before = {p.folder for p in P.list_projects()}

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in (corrupt, text, empty, missing, folder)])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    w.dropEvent(event)
    rows = tab.files.queue.rows()
    assert len(rows) == 4  # the folder is refused at once
    for row in rows:
        wait_job(qtbot, row.job)
        assert row.job.state == "failed"
        assert row.status.text().startswith("failed:")
    shown = "\n".join(errors_shown(w))
    for name in ("corrupt.wav", "notes.mp3", "empty.flac", "missing.ogg", "a folder"):
        assert name in shown
    assert "cannot decode" in shown and "not found" in shown and "is a folder" in shown
    assert len(errors_shown(w)) == 2  # the folder at once, then one dialog for the failed batch
    assert {p.folder for p in P.list_projects()} == before  # no half-made projects left
    assert tab.project.folder == project.folder  # the open work is untouched
    assert tab.document.editor.transcript.segments[0].text == "kept edit"
    from app.gui.workers import log_path

    assert "corrupt.wav" in log_path().read_text()  # errors are logged too


def test_no_audio_device_disables_recording_with_the_reason(make_window, monkeypatch, qtbot, tmp_path):
    import app.gui.dictation

    monkeypatch.setattr(app.gui.dictation, "input_devices",
                        lambda: ([], "no microphone or other audio input device was found"))
    w = make_window()
    tab = w.transcribe_tab
    rp = tab.dictation.record_panel
    assert not rp.record.isEnabled() and not rp.ptt.isEnabled()
    assert rp.reason.isVisible() and "no microphone" in rp.reason.text() and "files still works" in rp.reason.text()
    assert not tab.dictation.start_recording()
    assert tab.project is None


def test_real_device_query_gives_a_reason_or_devices():
    from app.gui.recorder import input_devices, output_available

    devices, reason = input_devices()
    assert devices or reason  # never an exception, whatever the machine has
    assert output_available() is None or isinstance(output_available(), str)


def test_projects_list_search_training_data(make_window, qtbot):
    w = make_window()
    checked = sample_transcript()
    for seg in checked.segments:
        seg.flags.append("confirmed")  # the user read them: no question about unchecked text
    a = project_with(checked)
    b = Project.create("Interview with the mayor")
    b.save_transcript(Transcript(segments=[Segment(0, 1, "the harbour budget", flags=["confirmed"])]))
    w.projects_tab.refresh()
    assert w.projects_tab.table.rowCount() == 2
    w.projects_tab.search.setText("harbour")
    w.projects_tab.refresh()
    assert [p.name for p in w.projects_tab.projects] == ["Interview with the mayor"]
    w.projects_tab.search.setText("amlodipine")  # found in the transcript text
    w.projects_tab.refresh()
    assert [p.folder for p in w.projects_tab.projects] == [a.folder]

    job = w.make_training_data(a)
    wait_job(qtbot, job)
    assert job.state == "done", job.error
    pairs = sorted(p.name for p in (a.folder / P.TRAINING_DIR).iterdir())
    assert pairs == ["seg-0001.txt", "seg-0001.wav", "seg-0002.txt", "seg-0002.wav", "seg-0003.txt", "seg-0003.wav"]
    assert (a.folder / P.TRAINING_DIR / "seg-0002.txt").read_text().strip() == "five milligrams daily"
    assert sf.info(a.folder / P.TRAINING_DIR / "seg-0003.wav").duration == pytest.approx(2.0, abs=0.01)
    job = w.make_training_data(b)  # no audio: refused with the reason
    wait_job(qtbot, job)
    assert job.state == "failed" and "no audio" in job.error


def test_settings_switch_model_without_restart(make_window, qtbot, tiny_model_dir):
    w = make_window(settings=AppSettings())
    tab = w.settings_tab
    qtbot.waitUntil(lambda: "torch" in tab.device_info.text(), timeout=TIMEOUT)  # what was found, in words
    assert "ONNX Runtime" in tab.device_info.text()
    tab._select(tab.model, str(tiny_model_dir), label="tiny")
    tab.beam.setValue(2)
    tab.hints.setPlainText("amlodipine\nmetoprolol\n")
    tab._select(tab.device, "cpu")
    tab.apply()
    assert AppSettings.load().model == str(tiny_model_dir) and AppSettings.load().hints == ["amlodipine", "metoprolol"]
    qtbot.waitUntil(lambda: "tiny" in w.model_loader.label.text(), timeout=TIMEOUT)
    assert w.service.beam_size == 2 and w.service.hints == ["amlodipine", "metoprolol"]


def test_first_run_offers_to_assemble_the_default_model(make_window, qtbot, monkeypatch, tmp_path):
    import engine.models.whisper_install as wi

    made = tmp_path / "made"

    def fake_install(name, root=None, force=False, say=None):
        say(f"{name}: converting")
        made.mkdir()
        return made

    monkeypatch.setattr(wi, "install_whisper_model", fake_install)
    w = make_window(settings=AppSettings())
    w.startup_checks()
    assert w.banner.isVisible() and "No speech model" in w.banner.label.text()
    job = w.model_loader.install_default_model()
    wait_job(qtbot, job)
    assert job.state == "done" and made.is_dir()


GUI_SCRIPT = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])
# closing the last window ends the app, as when the user closes it
QTimer.singleShot(1500, lambda: [w.close() for w in app.topLevelWidgets() if w.isWindow()])
from app.cli import main
sys.exit(main(["gui"]))
"""


def test_steno_gui_command_starts_and_quits(tmp_path):
    """`steno gui` opens the window and exits cleanly (in its own process: a second QApplication
    event loop inside the test process would disturb the other tests)."""
    import os
    import subprocess

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    res = subprocess.run([sys.executable, "-c", GUI_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    home = Path(env["STENO_HOME"])
    assert (home / "logs" / "steno.log").is_file()
    assert not (home / P.LOCK_FILE).exists()  # a clean exit leaves no crash marker
