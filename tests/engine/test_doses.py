"""Doses come out as clinicians write them, and a sentence whose meaning hangs on an unsure
word is marked unsure."""

from __future__ import annotations

import pytest

from engine.text.doses import doses, same_dose, unsure_key_words, write_doses
from engine.text.transcript import Segment, Word
from tests.conftest import espeak


@pytest.mark.parametrize("said, written", [
    ("Start aspirin 75mg once daily.", "Start aspirin 75 mg once daily."),
    ("Give morphine two point five milligrams intravenously.", "Give morphine 2.5 mg intravenously."),
    ("Levothyroxine 100 micrograms every morning.", "Levothyroxine 100 mcg every morning."),
    ("Give one litre of saline over 8 hours.", "Give 1 L of saline over 8 hours."),
    ("Insulin glargine twenty units at night.", "Insulin glargine 20 units at night."),
    ("Paracetamol 1g four times a day", "Paracetamol 1 g four times a day"),
    ("Give 10 mls of lactulose", "Give 10 mL of lactulose"),
    ("one hundred and twenty milligrams", "120 mg"),
    ("Potassium chloride 40 millimoles over 4 hours.", "Potassium chloride 40 mmol over 4 hours."),
])
def test_doses_are_written_number_space_unit(said, written):
    assert write_doses(Segment(0.0, 1.0, said)).text == written


@pytest.mark.parametrize("text", ["Salbutamol two puffs as required.", "Stop warfarin five days before surgery.",
                                  "I saw one g string", "Take a glass of water"])
def test_words_that_are_not_doses_are_left_alone(text):
    assert write_doses(Segment(0.0, 1.0, text)).text == text


def test_rewritten_words_keep_their_times_and_confidences():
    seg = Segment(0.0, 3.0, "Give two point five milligrams.", words=[
        Word("Give", 0.0, 0.4, 0.9), Word("two", 0.4, 0.8, 0.95), Word("point", 0.8, 1.1, 0.7),
        Word("five", 1.1, 1.5, 0.9), Word("milligrams.", 1.5, 2.4, 0.85)])
    out = write_doses(seg)
    assert out.text == "Give 2.5 mg." and out.words_spell_text()
    number, unit = out.words[1:]
    assert (number.text, number.start, number.end, number.confidence) == ("2.5", 0.4, 1.5, 0.7)
    assert (unit.text, unit.start, unit.end, unit.confidence) == ("mg.", 1.5, 2.4, 0.85)


def test_the_same_dose_is_recognised_however_it_is_spelled():
    [a] = doses("seventy five milligrams")
    [b] = doses("75mg")
    [c] = doses("75 mm")
    assert same_dose(a, b) and not same_dose(a, c) and a.text == "75 mg"


def test_an_unsure_key_word_marks_its_segment_where_an_unsure_filler_does_not():
    """0.7 passes for an ordinary word (the editor marks below 0.5) but not for "Stop"."""
    sure = Segment(0.0, 2.0, "Stop the ibuprofen", words=[Word("Stop", 0.0, 0.5, 0.95), Word("the", 0.5, 0.7, 0.7),
                                                          Word("ibuprofen", 0.7, 2.0, 0.9)])
    assert unsure_key_words(sure) == []
    unsure = Segment(0.0, 2.0, "Start the ibuprofen", words=[Word("Start", 0.0, 0.5, 0.7), Word("the", 0.5, 0.7, 0.9),
                                                             Word("ibuprofen", 0.7, 2.0, 0.9)])
    assert [w.text for w in unsure_key_words(unsure)] == ["Start"]


def test_the_transcriber_writes_doses_and_words_agree(real_transcriber, tmp_path):
    wav = espeak("start aspirin seventy five milligrams once daily", tmp_path / "dose.wav", rate=150)
    transcript = real_transcriber.transcribe(wav)
    assert "75 mg" in transcript.text, transcript.text
    assert all(s.words_spell_text() for s in transcript.segments)
    flagged = [s for s in transcript.segments if "unsure-key-word" in s.flags]
    assert flagged == [s for s in transcript.segments if unsure_key_words(s)]
