"""Segment editing as interview users expect it: split a segment at the cursor, merge it with the
next, insert one, from the right-click menu and from the keys; times follow the words where they
have times, else the characters; every word is kept; each is one undo step and is saved."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6.QtWidgets")

from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtGui import QContextMenuEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QMenu, QStyleOptionViewItem  # noqa: E402

from app.gui.editor import TEXT_COL  # noqa: E402
from app.projects import Project  # noqa: E402
from tests.app.test_app import project_with, sample_transcript  # noqa: E402


def open_editor(make_window, qtbot):
    w = make_window()
    project = project_with(sample_transcript())
    assert w.transcribe_tab.open_project(project)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w)
    return w, w.transcribe_tab.document.editor, project


def saved(project):
    return Project.load(project.folder).load_transcript()


def point_at_char(ed, row: int, pos: int) -> QPoint:
    """Where character `pos` of segment `row` is drawn, in the table's viewport."""
    rect = ed.table.visualRect(ed.model.index(row, TEXT_COL))
    opt = QStyleOptionViewItem()
    opt.font = ed.table.font()
    doc = ed.delegate._doc(opt, row, rect.width())
    doc.size()  # lays the text out
    layout = doc.firstBlock().layout()
    assert layout.lineCount() >= 1
    line = layout.lineAt(0)
    x = line.cursorToX(pos)[0] + doc.documentMargin()
    top = 10 if row > 0 and ed.model.paragraph_start(row) else 0
    return QPoint(rect.left() + int(x) + 2, rect.top() + top + int(doc.documentMargin() + line.y() + line.height() / 2))


def right_click(qtbot, ed, point: QPoint) -> QMenu:
    vp = ed.table.viewport()
    QApplication.sendEvent(vp, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, point, vp.mapToGlobal(point)))
    menu = next(m for m in QApplication.topLevelWidgets() if isinstance(m, QMenu) and m.objectName() == "segmentMenu"
                and m.isVisible())
    return menu


def choose(menu: QMenu, text: str) -> None:
    action = next(a for a in menu.actions() if a.text().replace("&", "") == text)
    assert action.isEnabled()
    action.trigger()
    menu.close()


def words_of(transcript) -> list[str]:
    return " ".join(s.text for s in transcript.segments).split()


def test_split_at_the_text_cursor_with_alt_return_keeps_words_and_their_times(make_window, qtbot):
    w, ed, project = open_editor(make_window, qtbot)
    before = words_of(ed.transcript)
    ed.select_row(0)
    ed.table.edit(ed.model.index(0, TEXT_COL))
    box = ed.delegate.open_editor
    cursor = box.textCursor()
    cursor.setPosition(len("the patient t"))  # inside "takes": the cut goes to the nearest word boundary
    box.setTextCursor(cursor)
    qtbot.keyClick(box, Qt.Key.Key_Return, Qt.KeyboardModifier.AltModifier)

    a, b = ed.transcript.segments[:2]
    assert (a.text, b.text) == ("the patient", "takes amlodipine")
    assert [x.text for x in a.words] == ["the", "patient"] and [x.text for x in b.words] == ["takes", "amlodipine"]
    assert (a.start, a.end, b.start, b.end) == (0.0, 0.9, 0.9, 2.0)  # at the word times
    assert words_of(ed.transcript) == before and len(ed.transcript.segments) == 4
    assert ed.current_row() == 1
    assert [s.text for s in saved(project).segments][:2] == ["the patient", "takes amlodipine"]  # saved at once

    ed.undo_stack.undo()
    assert ed.transcript.segments[0].text == "the patient takes amlodipine" and len(ed.transcript.segments) == 3
    assert len(ed.transcript.segments[0].words) == 4


def test_split_from_the_right_click_menu_where_clicked_in_proportion_to_characters(make_window, qtbot):
    w, ed, project = open_editor(make_window, qtbot)
    text = ed.transcript.segments[1].text  # "five milligrams daily", no word times
    menu = right_click(qtbot, ed, point_at_char(ed, 1, text.index("daily") - 1))
    choose(menu, "Split segment here")
    a, b = ed.transcript.segments[1:3]
    assert (a.text, b.text) == ("five milligrams", "daily")
    assert a.start == 2.2 and b.end == 4.0
    assert a.end == b.start == pytest.approx(2.2 + 1.8 * len("five milligrams") / len("five milligramsdaily"))
    assert [s.text for s in saved(project).segments] == [s.text for s in ed.transcript.segments]


def test_merge_with_next_from_the_menu_and_alt_m(make_window, qtbot):
    w, ed, project = open_editor(make_window, qtbot)
    menu = right_click(qtbot, ed, point_at_char(ed, 0, 3))
    choose(menu, "Merge with next segment")
    seg = ed.transcript.segments[0]
    assert seg.text == "the patient takes amlodipine five milligrams daily"
    assert (seg.start, seg.end) == (0.0, 4.0) and [x.text for x in seg.words][:4] == ["the", "patient", "takes",
                                                                                      "amlodipine"]
    assert len(saved(project).segments) == 2

    ed.select_row(0)
    ed.table.setFocus()
    qtbot.keyClick(ed.table, Qt.Key.Key_M, Qt.KeyboardModifier.AltModifier)
    assert [s.text for s in ed.transcript.segments] == [
        "the patient takes amlodipine five milligrams daily follow up next week with the patient"]
    assert ed.transcript.segments[0].end == 9.0
    right_click(qtbot, ed, point_at_char(ed, 0, 3)).close()  # the last segment has no next one
    ed.undo_stack.undo()
    ed.undo_stack.undo()
    assert [s.text for s in ed.transcript.segments] == [s.text for s in sample_transcript().segments]


def test_insert_a_segment_with_alt_i_and_type_into_it(make_window, qtbot, tmp_path):
    w, ed, project = open_editor(make_window, qtbot)
    ed.select_row(1)
    ed.table.setFocus()
    qtbot.keyClick(ed.table, Qt.Key.Key_I, Qt.KeyboardModifier.AltModifier)
    assert len(ed.transcript.segments) == 4
    new = ed.transcript.segments[2]
    assert (new.start, new.end, new.text) == (4.0, 7.0, "")  # in the pause between its neighbours
    box = ed.delegate.open_editor
    assert box is not None  # open for typing
    qtbot.keyClicks(box, "patient was seen")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert ed.transcript.segments[2].text == "patient was seen"
    out = w.transcribe_tab.document.export_to(tmp_path / "t.txt").read_text()
    assert "five milligrams daily patient was seen" in out
    assert saved(project).segments[2].text == "patient was seen"


def test_segment_actions_are_in_the_edit_menu(make_window, qtbot):
    w, ed, project = open_editor(make_window, qtbot)
    edit = next(a.menu() for a in w.menuBar().actions() if a.text() == "&Edit")
    texts = {a.text().replace("&", ""): a.shortcut().toString() for a in edit.actions()}
    assert texts["Split segment here"] == "Alt+Return"
    assert texts["Merge with next segment"] == "Alt+M" and texts["Insert segment after"] == "Alt+I"


def test_split_and_merge_keep_times_words_and_what_the_user_checked():
    from app.gui.segment_ops import merge_segments, split_segment

    seg = sample_transcript().segments[0]
    seg.text, seg.flags = "the patient takes Amlodipine", ["edited"]  # corrected: the words no longer spell it
    a, b = split_segment(seg, len("the patient "))
    assert (a.text, a.end, b.text, b.start) == ("the patient", 0.9, "takes Amlodipine", 0.9)  # still at word times
    assert [w.text for w in b.words] == ["takes", "Amlodipine"] and a.checked and b.checked
    assert split_segment(seg, 0) is None and split_segment(seg, len(seg.text)) is None  # never an empty half

    plain = sample_transcript().segments[1]
    assert not merge_segments(a, plain).checked  # the model's unchecked text stays out of training data
    assert merge_segments(a, b).checked and merge_segments(a, b).text == seg.text


def test_text_a_guard_removed_is_shown_and_restored_from_the_menu(make_window, qtbot):
    """A loop's repeats cut by the decoder stay on the segment: its tooltip says what went,
    and "Restore removed text" puts it back as an undoable, saved edit."""
    from engine.text.transcript import Segment, Transcript

    w = make_window()
    segment = Segment(0.0, 3.0, "take one tablet", flags=["dropped-repetition"], removed="take one tablet take one")
    project = project_with(Transcript([segment, Segment(3.5, 5.0, "daily")], source="clinic.wav", duration=9.0))
    assert w.transcribe_tab.open_project(project)
    ed = w.transcribe_tab.document.editor
    tip = ed.model.data(ed.model.index(0, TEXT_COL), Qt.ItemDataRole.ToolTipRole)
    assert "take one tablet take one" in tip
    menu = right_click(qtbot, ed, point_at_char(ed, 1, 2))
    assert not next(a for a in menu.actions() if "Restore" in a.text()).isEnabled()  # nothing removed there
    menu.close()
    choose(right_click(qtbot, ed, point_at_char(ed, 0, 3)), "Restore removed text")
    assert ed.model.segments[0].text == "take one tablet take one tablet take one"
    qtbot.waitUntil(lambda: saved(project).segments[0].text == "take one tablet take one tablet take one")
    assert ed.removed_text(0) == ""  # put back once
    ed.undo_stack.undo()
    assert ed.model.segments[0].text == "take one tablet"


def test_a_key_word_the_model_was_unsure_of_is_underlined_where_a_filler_is_not(make_window):
    """"Stop" at 0.7 is underlined (meaning hangs on it); "the" at 0.7 is not (below 0.5 is)."""
    from engine.text.transcript import Segment, Transcript, Word

    w = make_window()
    seg = Segment(0.0, 2.0, "Stop the ibuprofen", words=[Word("Stop", 0.0, 0.5, 0.7), Word("the", 0.5, 0.7, 0.7),
                                                         Word("ibuprofen", 0.7, 2.0, 0.95)], flags=["unsure-key-word"])
    assert w.transcribe_tab.open_project(project_with(Transcript([seg], source="clinic.wav", duration=9.0)))
    ed = w.transcribe_tab.document.editor
    html = ed.model.rich_text(0)
    assert "underline;" in html.split("Stop")[0] and "underline" not in html.split("Stop")[1]
    assert "unsure of a word the meaning hangs on" in ed.model.data(ed.model.index(0, TEXT_COL), Qt.ItemDataRole.ToolTipRole)


def test_removed_text_stays_once_through_split_and_merge():
    """A guard's removed text was at the segment's end: a split gives it to the second half only,
    and a merge keeps what either half had."""
    from app.gui.segment_ops import merge_segments, split_segment
    from engine.text.transcript import Segment

    seg = Segment(0.0, 4.0, "take one tablet daily", removed="daily daily")
    first, second = split_segment(seg, len("take one"))
    assert (first.removed, second.removed) == ("", "daily daily")
    assert merge_segments(first, second).removed == "daily daily"
    assert merge_segments(Segment(0, 1, "a", removed="x"), Segment(1, 2, "b", removed="y")).removed == "x y"
