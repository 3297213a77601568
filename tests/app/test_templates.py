"""Templates: the file format and its errors, fields found in edited text, the spoken field
moves, the editor's Tab / Shift+Tab and dictation into fields, and a filled template saved,
recorded into and exported like any transcript."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("PySide6.QtWidgets")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from app import projects as P  # noqa: E402
from app.gui.editor import TranscriptEditor  # noqa: E402
from app.templates import (  # noqa: E402
    BUILTIN_DIR,
    MAX_BYTES,
    Field,
    TemplateError,
    fill,
    find_fields,
    list_templates,
    load_template,
    new_transcript,
    parse_template,
    render_line,
    template_rows,
    user_dir,
)
from engine.text.commands import FieldMove, split_fields  # noqa: E402
from engine.text.transcript import Segment, Transcript  # noqa: E402

SOAP = """# SOAP note
Patient: {{Patient}}, date: {{Date}}

Subjective:   {{Subjective}}
Objective: {{Objective}}
Plan: {{Plan}}
"""


def soap():
    return parse_template(SOAP, "soap.txt")


# ------------------------------------------------------------------ the format


def test_builtin_templates_load():
    templates, errors = list_templates([BUILTIN_DIR])
    assert not errors
    names = {t.name: t for t in templates}
    assert {"Clinic letter", "SOAP note", "Interview header"} <= set(names)
    assert names["SOAP note"].fields[:2] == ["Patient", "Date"] and "Assessment" in names["SOAP note"].fields
    assert all(t.fields and t.path.parent == BUILTIN_DIR for t in templates)


def test_parse_lines_fields_and_name():
    t = soap()
    assert t.name == "SOAP note"  # from the "# " line, which is not part of the body
    assert t.lines == ["Patient: {{Patient}}, date: {{Date}}", "Subjective: {{Subjective}}", "Objective: {{Objective}}",
                       "Plan: {{Plan}}"]  # blank lines dropped, spaces collapsed
    assert t.rows[0] == ["Patient: ", Field("Patient"), ", date: ", Field("Date")]
    assert t.fields == ["Patient", "Date", "Subjective", "Objective", "Plan"]
    assert parse_template("Name: {{ Full   name }}", "/x/referral_letter.md").name == "Referral letter"
    assert parse_template("Note: {{Note}}", "/x/referral_letter.md").fields == ["Note"]
    assert render_line(t.rows[0]) == "Patient: [Patient], date: [Date]"
    assert render_line(t.rows[0], ["Ann Lee", None]) == "Patient: Ann Lee, date: [Date]"


def test_a_template_without_fields_is_plain_boilerplate():
    t = parse_template("Yours sincerely,\nDr Okafor", "sig.txt")
    assert t.fields == [] and new_transcript(t).text == "Yours sincerely,\n\nDr Okafor"


BROKEN = [
    ("unclosed.txt", "Plan: {{Plan\n", "line 1: '{{' is not closed with '}}'"),
    ("stray.txt", "ok\nPlan: Plan}}\n", "line 2: '}}' with no '{{' before it"),
    ("empty.txt", "Plan: {{  }}", "line 1: empty field '{{}}'"),
    ("nested.txt", "Plan: {{a {{b}} }}", "line 1: '{{' inside a field"),
    ("duplicate.txt", "Plan: {{Plan}}\n\nLater: {{plan}}", "line 3: duplicate field {{plan}} (first on line 1)"),
    ("adjacent.txt", "Name: {{First}} {{Last}}", "fields {{First}} and {{Last}} need some text between them"),
    ("blank.txt", "# Only a title\n\n  \n", "template has no text"),
    ("nul.txt", "Plan: {{Plan}}\x00", "not a text file"),
]


@pytest.mark.parametrize("name,text,problem", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_template_is_a_clear_error_naming_the_file(tmp_path, name, text, problem):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TemplateError) as e:
        load_template(path)
    assert str(e.value).startswith(f"{path}: ") and problem in str(e.value)
    assert "\n" not in str(e.value)


def test_unreadable_template_files(tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Café: {{Order}}".encode("latin-1"))
    with pytest.raises(TemplateError, match=r"latin1.txt: not UTF-8 text \(byte 0xe9 at offset 3\); save it as UTF-8"):
        load_template(latin1)
    big = tmp_path / "big.txt"
    big.write_text("x: {{X}}\n" + "lorem ipsum\n" * (MAX_BYTES // 10))
    with pytest.raises(TemplateError, match=r"big.txt: too large \(\d+ KB; a template may be at most 64 KB\)"):
        load_template(big)
    with pytest.raises(TemplateError, match="missing.txt: file not found"):
        load_template(tmp_path / "missing.txt")
    with pytest.raises(TemplateError, match="is a folder"):
        load_template(tmp_path)
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeff# With BOM\nA: {{A}}".encode("utf-8"))
    assert load_template(bom).name == "With BOM"


def test_a_broken_file_does_not_hide_the_others(tmp_path):
    (tmp_path / "good.txt").write_text("Note: {{Note}}")
    (tmp_path / "bad.md").write_text("Note: {{Note")
    (tmp_path / "ignored.docx").write_bytes(b"PK\x03\x04")
    templates, errors = list_templates([tmp_path, tmp_path / "absent"])
    assert [t.name for t in templates] == ["Good"]
    assert [e.path.name for e in errors] == ["bad.md"] and "not closed" in str(errors[0])


# ------------------------------------------------------------------ fields in the text


def test_fields_are_found_again_in_edited_text():
    parts = soap().rows[0]
    text = "Patient: [Patient], date: [Date]"
    spots = find_fields(0, parts, text)
    assert [(s.name, text[s.start:s.end], s.filled) for s in spots] == [("Patient", "[Patient]", False),
                                                                         ("Date", "[Date]", False)]
    text = fill(parts, text, 1, "3 May")
    assert text == "Patient: [Patient], date: 3 May"
    text = fill(parts, text, 0, "Lee, Ann")  # the separator inside a value is fine
    assert text == "Patient: Lee, Ann, date: 3 May"
    assert fill(parts, text, 1, "2024") == "Patient: Lee, Ann, date: 3 May 2024"  # dictation goes on
    assert fill(parts, text, 1, "4 May", append=False) == "Patient: Lee, Ann, date: 4 May"
    spots = find_fields(0, parts, "Patient:, date:")  # both emptied by hand (spaces collapsed by the editor)
    assert [(s.start, s.end, s.filled) for s in spots] == [(8, 8, True), (15, 15, True)]
    assert fill(parts, "Patient:, date:", 0, "Ann") == "Patient: Ann, date:"
    assert find_fields(0, parts, "Name: Ann Lee, seen today") == []  # the label rewritten: plain text now
    assert fill(parts, "Name: Ann Lee", 0, "x") is None


def test_template_survives_a_save_and_reload():
    t = new_transcript(soap())
    again = Transcript.from_dict(json.loads(json.dumps(t.to_dict())))
    assert template_rows(again) == soap().rows
    assert template_rows(Transcript()) == []
    broken = Transcript(segments=[Segment(0, 1, "x")], meta={"template": {"lines": ["a {{b", 3]}})
    assert template_rows(broken) == [[], []]


# ------------------------------------------------------------------ spoken field moves


def test_spoken_field_moves_split_the_dictation():
    assert split_fields("cough for three days period next field no fever comma no rash Next field.") == \
        ["Cough for three days.", FieldMove(1), "No fever, no rash", FieldMove(1)]
    assert split_fields("previous field scratch that") == [FieldMove(-1)]
    assert split_fields("type literal next field here") == ["Type next field here"]
    assert split_fields("") == []


# ------------------------------------------------------------------ the editor


@pytest.fixture
def editor(qtbot):
    ed = TranscriptEditor()
    qtbot.addWidget(ed)
    ed.resize(800, 500)
    ed.show()
    ed.set_transcript(new_transcript(soap()))
    return ed


def texts(ed):
    return [s.text for s in ed.transcript.segments]


def cell_editor(ed):
    e = ed.delegate.open_editor
    assert e is not None
    return e


def test_tab_and_shift_tab_move_between_fields(editor, qtbot):
    ed = editor
    assert ed.model.data(ed.model.index(0, 0)) == "¶ "  # made-up times are not shown
    ed.table.setFocus()
    qtbot.keyClick(ed.table, Qt.Key.Key_Tab)  # into the first field, its placeholder selected
    assert ed.current_field().name == "Patient"
    assert cell_editor(ed).textCursor().selectedText() == "[Patient]"
    qtbot.keyClicks(cell_editor(ed), "Ann Lee")
    qtbot.keyClick(cell_editor(ed), Qt.Key.Key_Tab)  # saves the row, on to the next field on the same row
    assert texts(ed)[0] == "Patient: Ann Lee, date: [Date]"
    assert ed.current_field().name == "Date" and cell_editor(ed).textCursor().selectedText() == "[Date]"
    qtbot.keyClicks(cell_editor(ed), "today")
    qtbot.keyClick(cell_editor(ed), Qt.Key.Key_Tab)
    assert ed.current_field().name == "Subjective" and ed.current_row() == 1
    qtbot.keyClick(cell_editor(ed), Qt.Key.Key_Backtab)  # back, with what is there selected
    assert ed.current_field().name == "Date" and cell_editor(ed).textCursor().selectedText() == "today"
    qtbot.keyClick(cell_editor(ed), Qt.Key.Key_Escape)
    assert texts(ed)[0] == "Patient: Ann Lee, date: today"
    ed.undo_stack.undo()
    assert texts(ed)[0] == "Patient: Ann Lee, date: [Date]"  # each field typed is an undo step
    for _ in range(5):
        ed.next_field()
    assert ed.current_field().name == "Plan" and not ed.next_field()  # stays at the last


def test_dictation_fills_the_current_field_and_follows_spoken_moves(editor):
    ed = editor
    ed.append_segments([Segment(0, 2, "Ann Lee next field")])  # no field chosen yet: the first empty one
    assert texts(ed)[0] == "Patient: Ann Lee, date: [Date]" and ed.current_field().name == "Date"
    ed.append_segments([Segment(2, 4, "next field cough for three days period")])
    ed.append_segments([Segment(5, 6, "worse at night period")])  # a new pause: the same field goes on
    assert texts(ed)[1] == "Subjective: Cough for three days. Worse at night."
    ed.append_segments([Segment(6, 8, "next field chest clear next field"),
                        Segment(8, 9, "previous field previous field")])
    assert texts(ed)[2] == "Objective: Chest clear"
    assert ed.current_field().name == "Subjective"
    ed.append_segments([Segment(9, 10, "no fever")])
    assert texts(ed)[1] == "Subjective: Cough for three days. Worse at night. No fever"
    assert len(ed.transcript.segments) == 4  # nothing appended as new rows
    ed.undo_stack.undo()
    assert texts(ed)[1] == "Subjective: Cough for three days. Worse at night."


def test_dictation_does_not_lose_typing_in_an_open_field(editor, qtbot):
    ed = editor
    ed.next_field()
    qtbot.keyClicks(cell_editor(ed), "Ann")
    ed.append_segments([Segment(0, 1, "Lee")])  # live text arrives while the cell is open
    assert texts(ed)[0] == "Patient: Ann Lee, date: [Date]"


def test_a_rewritten_row_loses_its_fields_and_a_plain_transcript_has_none(editor, qtbot):
    ed = editor
    ed.edit_row(0, "Seen with her daughter")
    assert [f.name for f in ed.model.fields()] == ["Subjective", "Objective", "Plan"]
    ed.set_transcript(Transcript(segments=[Segment(0, 1, "plain text")]))
    ed.table.setFocus()
    qtbot.keyClick(ed.table, Qt.Key.Key_Tab)  # Tab keeps its usual meaning
    assert not ed.next_field()
    ed.append_segments([Segment(1, 2, "next field more")])  # plain dictation: rows appended as they come
    assert texts(ed) == ["plain text", "next field more"]


# ------------------------------------------------------------------ in the window


@pytest.fixture
def window(qtbot, tiny_model_dir):
    from app.gui.player import FakeOutputStream
    from app.gui.recorder import FakeInputStream
    from app.gui.window import MainWindow
    from app.settings import AppSettings

    streams = []

    def stream(rate, channels, device, callback):
        streams.append(FakeInputStream(rate, channels, device, callback))
        return streams[-1]

    w = MainWindow(AppSettings(model=str(tiny_model_dir)), input_stream=stream, output_stream=FakeOutputStream,
                   check_startup=False)
    w.streams = streams
    w.show()
    yield w
    w.close()


def test_new_from_template_fill_save_and_export(window, qtbot, tmp_path):
    w = window
    tab = w.transcribe_tab
    document = tab.document
    soap_builtin = next(t for t in list_templates()[0] if t.name == "SOAP note")
    project = tab.new_from_template(soap_builtin)
    assert tab.project is project and document.title.text() == "SOAP note"
    assert document.editor.current_field().name == "Patient" and document.editor.delegate.open_editor is not None
    document.append_dictated([Segment(0, 2, "Ann Lee next field 3 May next field cough for three days period")])
    document.flush_autosave()
    saved = P.Project.load(project.folder).load_transcript()
    assert saved.segments[0].text == "Patient: Ann Lee, date: 3 May"
    assert saved.segments[1].text == "Subjective: Cough for three days."
    assert saved.meta["template"]["name"] == "SOAP note"

    txt = document.export_to(tmp_path / "note.txt").read_text(encoding="utf-8")
    assert txt.startswith("Patient: Ann Lee, date: 3 May\n\nSubjective: Cough for three days.\n\nObjective: [Objective]")
    from docx import Document

    paragraphs = [p.text for p in Document(document.export_to(tmp_path / "note.docx")).paragraphs]
    assert any(p.endswith("Subjective: Cough for three days.") for p in paragraphs)
    data = json.loads(document.export_to(tmp_path / "note.json").read_text(encoding="utf-8"))
    assert data["segments"][1]["text"] == "Subjective: Cough for three days."

    tab.open_project(project)  # reopened: still a template, Tab and voice still work
    assert [f.name for f in document.editor.model.fields()][:2] == ["Patient", "Date"]
    document.append_dictated([Segment(0, 1, "no known allergies")])  # the first empty field
    assert document.editor.transcript.segments[2].text == "Objective: No known allergies"


def test_broken_user_template_is_listed_with_its_reason_and_the_app_goes_on(window, qtbot):
    w = window
    folder = user_dir()
    folder.mkdir(parents=True)
    (folder / "referral.txt").write_text("Dear {{Doctor}},\nRe: {{Patient")
    (folder / "mine.txt").write_text("# My note\nNote: {{Note}}")
    menu = w.menus.template_menu
    menu.aboutToShow.emit()
    labels = [a.text() for a in menu.actions()]
    assert "My note" in labels and "SOAP note" in labels and "referral.txt (cannot be used)" in labels
    next(a for a in menu.actions() if a.text() == "referral.txt (cannot be used)").trigger()
    boxes = [b.text() for b in w.findChildren(QMessageBox, "errorDialog")]
    assert any("referral.txt: line 2: '{{' is not closed with '}}'" in b for b in boxes)
    next(a for a in menu.actions() if a.text() == "My note").trigger()
    tab = w.transcribe_tab
    assert tab.project.name == "My note" and tab.document.editor.transcript.segments[0].text == "Note: [Note]"


def test_recording_into_a_template_fills_its_fields(window, qtbot, monkeypatch):
    """Live text goes into the fields (even with Live text off), in the template's own project."""
    w = window
    tab = w.transcribe_tab
    dictation = tab.dictation
    said = iter(["Ann Lee next field", "today next field", "cough period"])

    def transcribe(audio, progress=None, cancel=None):
        return Transcript(segments=[Segment(0.0, len(audio) / 16000, next(said, ""))])

    monkeypatch.setattr(w.service, "transcribe", transcribe)
    dictation.record_panel.live.setChecked(False)
    project = tab.new_from_template(soap())
    assert dictation.start_recording()
    assert tab.project is project and project.status == "recording" and project.audio == P.RECORDING_FILE
    t = np.arange(16000 * 3) / 16000
    voice = (0.3 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    for chunk in (voice, np.zeros(16000, np.float32)):
        for i in range(0, len(chunk), 1600):
            w.streams[-1].feed(chunk[i:i + 1600])
            dictation.recorder.drain()
    dictation.stop_recording()
    qtbot.waitUntil(lambda: project.status == "ready", timeout=60_000)
    rows = P.Project.load(project.folder).load_transcript().segments
    assert rows[0].text.startswith("Patient: Ann Lee")
    assert len(rows) == 4 and rows[3].text == "Plan: [Plan]"  # no rows appended
    assert (project.folder / P.RECORDING_FILE).is_file()

    assert dictation.start_recording()  # a second recording continues in a copy: the first audio is kept
    assert tab.project is not project and tab.project.name == "SOAP note"
    assert tab.document.editor.transcript.segments[0].text.startswith("Patient: Ann Lee")
    dictation.stop_recording()
    qtbot.waitUntil(lambda: tab.project.status == "ready", timeout=60_000)
