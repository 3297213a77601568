"""The long-form benchmark's scoring: a sentence the transcript lacks is counted as missing."""

from bench.longform import score

REFS = ["The nurse checked the chart at noon.", "Stop the ibuprofen tomorrow.", "We walked home along the river."]


def test_every_sentence_present():
    got = score(REFS, "the nurse checked the chart at noon stop the ibuprofen tomorrow we walked home along a river")
    assert got["missing"] == []
    assert got["deletions"] == 0 and 0 < got["wer"] < 0.1


def test_a_lost_sentence_is_named():
    got = score(REFS, "The nurse checked the chart at noon. We walked home along the river.")
    assert got["missing"] == [1]
    assert got["deletions"] == 4
