"""Speakers in the app: names beside the rows, a row given to another speaker, a speaker renamed
everywhere at once, the number of speakers chosen before transcribing, and saved voices
(encrypted with the library) naming a speaker in a later transcript."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6.QtWidgets")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QInputDialog  # noqa: E402

from app import projects as P  # noqa: E402
from app import vault  # noqa: E402
from app.gui.editor import TIME_COL  # noqa: E402
from app.projects import Project, projects_root  # noqa: E402
from app.settings import AppSettings  # noqa: E402
from app.speaker_profiles import FILE, add_profile, load_profiles  # noqa: E402
from engine.errors import StenoError  # noqa: E402
from engine.speakers.profiles import Profile  # noqa: E402
from engine.text.exporters import render  # noqa: E402
from engine.text.transcript import Segment, Transcript  # noqa: E402
from tests.app.test_app import project_with, wait_job  # noqa: E402
from tests.app.test_app_editing import right_click, saved  # noqa: E402
from tests.engine.test_speakers import interview  # noqa: E402, F401


def labelled() -> Transcript:
    return Transcript([Segment(0.0, 2.0, "where were you last night", speaker="Speaker 1"),
                       Segment(2.3, 4.0, "at home with my sister", speaker="Speaker 2"),
                       Segment(4.2, 6.0, "and after that", speaker="Speaker 2")], source="talk.wav", duration=6.0)


def menu_action(menu, text):
    for a in menu.actions():
        if a.text().replace("&", "") == text:
            return a
        if a.menu() is not None:
            found = menu_action(a.menu(), text)
            if found is not None:
                return found
    return None


def test_reassign_a_row_and_rename_a_speaker_everywhere(make_window, qtbot, monkeypatch):
    w = make_window()
    project = project_with(labelled(), audio_seconds=6.0)
    assert w.transcribe_tab.open_project(project)
    ed = w.transcribe_tab.document.editor
    assert ed.model.index(0, TIME_COL).data(Qt.ItemDataRole.DisplayRole).endswith("\nSpeaker 1")
    assert ed.model.paragraph_start(1) and not ed.model.paragraph_start(2)  # a new speaker's turn

    menu = right_click(qtbot, ed, ed.table.visualRect(ed.model.index(2, 1)).center())
    menu_action(menu, "Speaker 1").trigger()
    menu.close()
    assert [s.speaker for s in saved(project).segments] == ["Speaker 1", "Speaker 2", "Speaker 1"]
    ed.undo_stack.undo()
    assert [s.speaker for s in saved(project).segments] == ["Speaker 1", "Speaker 2", "Speaker 2"]

    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("  Mr   Okafor ", True))
    menu = right_click(qtbot, ed, ed.table.visualRect(ed.model.index(1, 1)).center())
    menu_action(menu, "Rename “Speaker 2” everywhere…").trigger()
    menu.close()
    t = saved(project)
    assert [s.speaker for s in t.segments] == ["Speaker 1", "Mr Okafor", "Mr Okafor"]
    assert render(t, "txt").decode().startswith("Speaker 1: where were you last night\n\nMr Okafor: at home")
    ed.undo_stack.undo()  # one step for every row
    assert [s.speaker for s in saved(project).segments] == ["Speaker 1", "Speaker 2", "Speaker 2"]


def test_no_speaker_items_on_a_transcript_without_speakers(make_window, qtbot):
    w = make_window()
    project = project_with(Transcript([Segment(0.0, 2.0, "hello there")]), audio_seconds=2.0)
    assert w.transcribe_tab.open_project(project)
    ed = w.transcribe_tab.document.editor
    menu = right_click(qtbot, ed, ed.table.visualRect(ed.model.index(0, 1)).center())
    assert menu_action(menu, "Speaker of this segment") is None
    menu.close()


def test_chosen_speaker_count_labels_a_file_and_a_saved_voice_names_it_later(make_window, qtbot, real_tiny_en,
                                                                              interview, monkeypatch):  # noqa: F811
    path, audio, _ = interview
    w = make_window(settings=AppSettings(model=str(real_tiny_en)))
    files = w.transcribe_tab.files
    files.speakers_box.setCurrentIndex(files.speakers_box.findData("2"))
    assert files.service.speakers == 2 and AppSettings.load().speakers == "2"  # kept for the next start
    [job] = files.open_files([Path(path)])
    wait_job(qtbot, job)
    ed = w.transcribe_tab.document.editor
    qtbot.waitUntil(lambda: ed.model.rowCount() > 0)
    assert set(ed.model.transcript.speakers) == {"Speaker 1", "Speaker 2"}
    river = next(r for r, s in enumerate(ed.model.segments) if "river" in s.text.lower())
    first = ed.model.segments[river].speaker

    document = w.transcribe_tab.document
    qtbot.waitUntil(lambda: len(document.player.audio) > 0)
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Ana Ruiz", True))
    menu = right_click(qtbot, ed, ed.table.visualRect(ed.model.index(river, 1)).center())
    menu_action(menu, f"Save “{first}”'s voice…").trigger()
    menu.close()
    qtbot.waitUntil(lambda: "Ana Ruiz" in ed.model.transcript.speakers, timeout=60_000)
    assert [p.name for p in load_profiles()] == ["Ana Ruiz"]
    again = files.service.transcribe(audio, speakers=True)  # a later transcript of the same voices
    named = [s.speaker for s in again.segments if "river" in s.text.lower()]
    assert named == ["Ana Ruiz"]
    assert "Ana Ruiz" not in {s.speaker for s in again.segments if "evacuated" in s.text.lower()}

    menu = right_click(qtbot, ed, ed.table.visualRect(ed.model.index(river, 1)).center())
    menu_action(menu, "Forget “Ana Ruiz”'s saved voice").trigger()
    menu.close()
    assert load_profiles() == [] and ed.model.segments[river].speaker == "Ana Ruiz"  # this transcript keeps it
    assert "Ana Ruiz" not in {s.speaker for s in files.service.transcribe(audio, speakers=True).segments}


def test_saved_voices_are_encrypted_with_the_library(monkeypatch):
    monkeypatch.setattr(vault, "SCRYPT_N", 2 ** 14)
    root = projects_root()
    root.mkdir(parents=True, exist_ok=True)
    vault.enable(root, "correct horse battery staple")
    try:
        add_profile(Profile("Dr Amlodipine", np.ones(256, np.float32) / 16, 12.0))
        raw = (root / FILE).read_bytes()
        assert vault.is_encrypted_file(root / FILE) and b"Amlodipine" not in raw
        assert load_profiles()[0].name == "Dr Amlodipine"
        vault.lock(root)
        with pytest.raises(StenoError, match="locked"):
            load_profiles()
        vault.unlock(root, "correct horse battery staple")
        vault.disable(root, "correct horse battery staple")  # turned off: the file is plain again
        assert not vault.is_encrypted_file(root / FILE)
        assert load_profiles()[0].name == "Dr Amlodipine"
    finally:
        vault.lock(root)


def test_a_wrong_count_is_fixed_without_transcribing_again(make_window, qtbot, interview):  # noqa: F811
    """Label speakers (again) with a count chosen from the right-click menu, from the project's
    audio, the text untouched; then join two speakers into one; each one undo step."""
    path, audio, ref = interview
    from tests.engine.test_speakers import LINES

    project = Project.create("Flood interview")
    P.write_audio_flac(project.folder / P.AUDIO_FILE, audio, 16000)
    project.audio = P.AUDIO_FILE
    rows = [Segment(s, e, text) for (s, e, _), (_, text) in zip(ref, LINES)]
    project.save_transcript(Transcript(rows, source="interview.wav", duration=len(audio) / 16000), original=True)
    w = make_window()
    assert w.transcribe_tab.open_project(project)
    document = w.transcribe_tab.document
    ed = document.editor
    qtbot.waitUntil(lambda: len(document.player.audio) > 0)

    menu = right_click(qtbot, ed, ed.table.visualRect(ed.model.index(0, 1)).center())
    assert menu_action(menu, "Speaker of this segment") is None  # not labelled yet
    with qtbot.waitSignal(ed.model.rows_replaced, timeout=60_000):
        menu_action(menu, "2 speakers").trigger()
    menu.close()
    t = saved(project)
    assert [s.text for s in t.segments] == [text for _, text in LINES]  # not transcribed again
    names = [s.speaker for s in t.segments]
    voices = [v for v, _ in LINES]
    assert len(set(names)) == 2 and all((names[i] == names[j]) == (voices[i] == voices[j])
                                        for i in range(4) for j in range(4))

    menu = right_click(qtbot, ed, ed.table.visualRect(ed.model.index(1, 1)).center())
    menu_action(menu, f"Join “{names[1]}” with").menu().actions()[0].trigger()
    menu.close()
    assert {s.speaker for s in saved(project).segments} == {names[0]}
    ed.undo_stack.undo()
    assert [s.speaker for s in saved(project).segments] == names
    ed.undo_stack.undo()
    assert all(s.speaker is None for s in saved(project).segments)
