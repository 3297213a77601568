"""An edited segment never publishes the model's old words: every export agrees with the text."""

import json

import pytest

from engine.text.exporters import FORMATS, export
from engine.text.transcript import Segment, Transcript, Word


def edited_transcript() -> Transcript:
    """The model heard "Start ibuprofen"; the user corrected it to "Stop ibuprofen" (as the editor does)."""
    seg = Segment(0.0, 1.6, "Start ibuprofen", words=[Word("Start", 0.1, 0.5, 0.3), Word("ibuprofen", 0.6, 1.5, 0.9)],
                  confidence=0.6)
    seg.text = "Stop ibuprofen"
    seg.flags.append("edited")
    untouched = Segment(2.0, 3.0, "twice daily", words=[Word("twice", 2.0, 2.4, 0.8), Word("daily", 2.5, 3.0, 0.4)])
    return Transcript(segments=[seg, untouched], source="clinic.wav", duration=3.0)


def exported_text(path, fmt: str) -> str:
    if fmt == "docx":
        from docx import Document

        return "\n".join(p.text for p in Document(path).paragraphs)
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_export_keeps_the_replaced_word(tmp_path, fmt):
    out = export(edited_transcript(), tmp_path / f"out.{fmt}", fmt)
    text = exported_text(out, fmt)
    assert "Stop ibuprofen" in text or fmt == "json"
    assert "Start" not in text


def test_json_words_follow_the_edited_text(tmp_path):
    data = json.loads(export(edited_transcript(), tmp_path / "out.json").read_text())
    edited, untouched = data["segments"]
    assert [w["text"] for w in edited["words"]] == ["Stop", "ibuprofen"]
    stop, ibuprofen = edited["words"]
    assert (stop["start"], stop["end"]) == (0.1, 0.5)  # the changed word takes the time of the one it replaced
    assert (ibuprofen["start"], ibuprofen["end"]) == (0.6, 1.5)  # a kept word keeps its time
    assert stop["confidence"] is None and ibuprofen["confidence"] is None  # checked by the user
    assert [(w["text"], w["confidence"]) for w in untouched["words"]] == [("twice", 0.8), ("daily", 0.4)]


def test_inserted_and_deleted_words_and_a_reload(tmp_path):
    t = edited_transcript()
    t.segments[1].text = "twice a day"
    t.segments[1].flags.append("edited")
    back = Transcript.from_dict(t.to_dict())
    words = back.segments[1].words
    assert [w.text for w in words] == ["twice", "a", "day"]
    assert words[0].start == 2.0 and words[1].start >= words[0].end and words[-1].end <= 3.0
    assert all(w.start <= w.end for w in words)
    assert back.segments[1].words_spell_text() and back.segments[0].words_spell_text()
    t.segments[0].text = ""  # everything deleted: no words left
    assert Transcript.from_dict(t.to_dict()).segments[0].words == []


def test_undoing_an_edit_brings_the_model_words_back():
    t = edited_transcript()
    t.segments[0].text = "Start ibuprofen"  # undo: the text reads as the model wrote it again
    assert [(w["text"], w["confidence"]) for w in t.to_dict()["segments"][0]["words"]] == [("Start", 0.3),
                                                                                          ("ibuprofen", 0.9)]
