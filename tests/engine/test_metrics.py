"""engine.text.metrics: normalization, WER/CER on hand-counted examples, term recall."""

from __future__ import annotations

import math

import pytest

from engine.text.metrics import ErrorRates, error_rates, normalize, term_recall


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello, World!", "hello world"),
        ("  many   spaces\tand\nlines ", "many spaces and lines"),
        ("Don’t stop", "don't stop"),  # curly apostrophe -> '
        ("'quoted' and the students' notes", "quoted and the students notes"),  # not inside a word
        ("follow-up — well–known", "follow up well known"),  # hyphens and dashes
        ("ＡＢＣ ﬁne", "abc fine"),  # NFKC: full-width letters, ligature
        ("2.5 mg/kg, 1,000 units at 10:30.", "two point five mg kg one thousand units at ten thirty"),
        ("five 5", "five five"),  # digits spelled as the training texts spell numbers
        ("50mg, 28% on the 3rd", "fifty mg twenty eight percent on the third"),
        ("in 1990, 150 of 2005", "in nineteen ninety one hundred and fifty of two thousand and five"),  # years
        ("at 9:05 or 10:00, v1.2.3", "at nine oh five or ten v one two three"),
        ("id 1234567890123456", "id one two three four five six seven eight nine zero one two three four five six"),
        ("Dr. O'Brien's (ECG) result: normal?", "dr o'brien's ecg result normal"),
        ("", ""),
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_wer_cer_hand_counted():
    # words: "box" for "fox" (1 substitution) + "jumps" inserted = 2 edits / 4 reference words
    # chars: f->b (1) + " jumps" (6 insertions) = 7 edits / 19 reference characters
    r = error_rates(["The quick brown fox."], ["the quick brown box jumps"])
    assert r == ErrorRates(wer=0.5, cer=pytest.approx(7 / 19), words=4, chars=19)


def test_rates_are_pooled_over_the_corpus():
    # pair 1: 1 deletion of 2 words ("a b" -> "a"); chars: " b" deleted = 2 of 3
    # pair 2: 0 errors on 4 words, 0 of 7 chars ("c d e f")
    r = error_rates(["a b", "c d e f"], ["a", "C, d e f"])
    assert (r.wer, r.words) == (pytest.approx(1 / 6), 6)  # not the mean of 1/2 and 0
    assert (r.cer, r.chars) == (pytest.approx(2 / 10), 10)


def test_normalization_means_style_is_not_an_error():
    r = error_rates(["Well — it’s a follow-up, isn't it?"], ["well it's a follow up isn't it"])
    assert r.wer == 0.0 and r.cer == 0.0


def test_empty_reference_is_handled():
    # an empty reference counts every hypothesis word as an insertion
    r = error_rates(["a b", ""], ["a b", "x y z"])
    assert r.wer == pytest.approx(3 / 2) and r.words == 2
    assert r.cer == pytest.approx(5 / 3)  # "x y z" is 5 characters against "a b"
    assert error_rates([""], [""]) == ErrorRates(0.0, 0.0, 0, 0)
    assert math.isinf(error_rates(["..."], ["words"]).wer)  # nothing to divide by
    r = error_rates(["a b"], [""])
    assert r.wer == 1.0 and r.cer == 1.0
    with pytest.raises(ValueError):
        error_rates(["a"], [])


def test_term_recall():
    terms = ["amlodipine", "chest pain", "Dr. O’Brien"]
    refs = [
        "Start amlodipine. Chest pain, then more chest-pain.",  # amlodipine x1, chest pain x2
        "Seen by Dr O'Brien today.",  # dr o'brien x1
        "Nothing relevant here.",
    ]
    hyps = [
        "start amlodipin chest pain then more chest pains",  # misses amlodipine, 1 of 2 chest pain
        "seen by doctor o'brien today",  # "doctor" != "dr": a miss
        "amlodipine chest pain",  # terms the reference does not have do not count
    ]
    assert term_recall(terms, refs, hyps) == pytest.approx(1 / 4)
    assert term_recall(terms, refs, refs) == 1.0
    assert term_recall(["pain"], ["painful knee"], ["painful knee"]) is None  # whole words only
    assert term_recall(["warfarin"], refs, hyps) is None
    assert term_recall([], refs, hyps) is None
