"""Hint prompts in training: the user's terms that a sentence holds, among others."""

import random

from engine.decoding.hints import said_terms
from trainer.prompts import sample_hints

TERMS = ["amlodipine", "metoprolol", "Kowalczyk", "ramipril", "New York", "warfarin", "apixaban"]


def test_said_terms_are_whole_words_after_normalisation():
    assert said_terms("Start Amlodipine, then see Dr. Kowalczyk in new york.", TERMS) == \
        ["amlodipine", "Kowalczyk", "New York"]
    assert said_terms("The pril is not a drug; metoprololx is a typo.", TERMS) == []


def test_sampled_hints_hold_said_terms_among_others():
    rng = random.Random(0)
    text = "Continue metoprolol and warfarin at the same doses."
    seen_said = set()
    for _ in range(200):
        h = sample_hints(text, TERMS, rng, share=1.0)
        said = [t for t in h if t in ("metoprolol", "warfarin")]
        assert 1 <= len(said) <= 2 and len(h) - len(said) <= 4 and len(set(h)) == len(h)
        seen_said.update(said)
    assert seen_said == {"metoprolol", "warfarin"}


def test_a_sentence_with_no_term_gets_only_unsaid_ones():
    rng = random.Random(1)
    for _ in range(100):
        h = sample_hints("The meeting moved to Thursday.", TERMS, rng, share=1.0)
        assert 1 <= len(h) <= 4 and set(h) <= set(TERMS)


def test_share_and_empty_lists():
    rng = random.Random(2)
    assert all(sample_hints("metoprolol", TERMS, rng, share=0.0) is None for _ in range(50))
    assert sample_hints("metoprolol", [], rng, share=1.0) is None
    got = [sample_hints("metoprolol daily", TERMS, rng, share=0.25) for _ in range(2000)]
    assert 0.2 < sum(g is not None for g in got) / len(got) < 0.3
