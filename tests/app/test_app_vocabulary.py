"""The vocabulary list from the editor: right-click a corrected word, "Add to vocabulary";
it is saved, used by the next transcription, and never added twice."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6.QtWidgets")

from app.gui.editor import word_at  # noqa: E402
from app.settings import AppSettings  # noqa: E402
from tests.app.test_app_editing import choose, open_editor, point_at_char, right_click  # noqa: E402


def test_word_at_takes_the_word_without_its_punctuation():
    text = "Start apixaban, 5 mg; O'Neill's note."
    assert word_at(text, text.index("apixaban") + 3) == "apixaban"
    assert word_at(text, text.index(",")) == "apixaban"  # just after the word
    assert word_at(text, text.index("O'Neill")) == "O'Neill's"
    assert word_at("a  b", 2) == ""


def test_right_click_adds_a_corrected_word_to_the_vocabulary_once(make_window, qtbot):
    w, ed, project = open_editor(make_window, qtbot)
    ed.edit_row(0, "the patient takes Apixaban daily")  # the user's correction
    menu = right_click(qtbot, ed, point_at_char(ed, 0, len("the patient takes Apix")))
    choose(menu, "Add “Apixaban” to vocabulary")
    assert w.settings_tab.hints.toPlainText().splitlines()[-1] == "Apixaban"
    assert "Apixaban" in AppSettings.load().hints  # saved
    assert w.model_loader.service.hints[-1] == "Apixaban"  # the next transcription uses it
    menu = right_click(qtbot, ed, point_at_char(ed, 0, len("the patient takes Apix")))
    choose(menu, "Add “Apixaban” to vocabulary")
    assert w.settings_tab.hints.toPlainText().lower().count("apixaban") == 1
    assert "already" in w.statusBar().currentMessage()
