"""Long vocabulary lists: each clip's prompt gets the terms most like a first transcript."""

import random
import string
from unittest.mock import patch

import numpy as np
import pytest

from engine.decoding.hints import MAX_PROMPT_TERMS, select_hints


def _fillers(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(6, 11))) for _ in range(n)]


def test_misheard_terms_are_selected_from_a_thousand():
    terms = _fillers(998)
    terms.insert(100, "amlodipine")
    terms.insert(700, "Kowalczyk")
    draft = "Start am low dipine and call mister Kovalchik today."
    picked = select_hints(terms, draft, min_score=0)  # every term passes: the best 40 are kept
    assert len(picked) == MAX_PROMPT_TERMS
    assert "amlodipine" in picked and "Kowalczyk" in picked
    assert picked == [t for t in terms if t in set(picked)]  # the user's order is kept
    picked = select_hints(terms, draft, min_score=65)  # a stricter threshold lets few random strings pass
    assert "amlodipine" in picked and "Kowalczyk" in picked and len(picked) < 10


def test_only_terms_like_something_in_the_draft_are_kept():
    terms = ["amlodipine", "Kowalczyk", "rivaroxaban", "Thessaloniki"]
    assert select_hints(terms, "Start am low dipine and call mister Kovalchik today.") == ["amlodipine", "Kowalczyk"]
    assert select_hints(terms, "The meeting has been moved to Thursday afternoon.") == []
    assert select_hints(terms, "") == []
    assert select_hints(terms, "anything", min_score=0) == terms  # the threshold is what cuts


def test_transcriber_cuts_a_long_list_per_clip(tiny_model_dir, monkeypatch):
    from engine.transcriber import Transcriber

    tr = Transcriber(tiny_model_dir, device="cpu")
    tr.hint_mode = "both"  # the mode with the hinted re-decode
    calls = []
    real = tr.backend.transcribe_batch

    def spy(clips, *, hints, beam_size, timing, context=None, bias_terms=None):
        calls.append((len(clips), None if hints is None else list(hints)))
        return real(clips, hints=hints, beam_size=beam_size, timing=timing, bias_terms=bias_terms)

    tr.backend.transcribe_batch = spy
    monkeypatch.setattr("engine.decoding.hints.MAX_REPLACED_CONFIDENCE", 1.01)  # every draft decoded again
    monkeypatch.setattr("engine.transcriber.likely_terms", lambda index, texts, logprobs, limit: index.terms[:1])
    tr.term_pass = False  # only the hinted re-decode is counted here
    audio = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)
    from engine.audio import AudioChunk

    chunks = [AudioChunk(audio=audio, start=0.0, end=1.0), AudioChunk(audio=audio[:8000], start=2.0, end=2.5)]
    long_list = _fillers(500)
    plain = tr.transcribe_chunks(chunks)
    calls.clear()
    with patch("engine.transcriber.select_hints", lambda terms, draft, limit: terms[:limit]):
        tr.transcribe_chunks(chunks, hints=long_list)
    assert calls[0] == (2, None)  # the hint-free draft of both clips, batched
    assert calls[1:] == [(1, long_list[:MAX_PROMPT_TERMS])] * 2
    calls.clear()
    # nothing in the list looks like what was heard: the drafts stand, decoded once
    with patch("engine.transcriber.select_hints", lambda terms, draft, limit: []):
        unhinted = tr.transcribe_chunks(chunks, hints=long_list[:10])
    assert calls == [(2, None)]
    assert [s.text for s in unhinted] == [s.text for s in plain]


def test_a_hinted_transcript_stands_only_if_it_writes_a_term(tiny_model_dir):
    from engine.audio import AudioChunk
    from engine.backend import ChunkResult
    from engine.transcriber import Transcriber

    tr = Transcriber(tiny_model_dir, device="cpu")
    tr.hint_mode = "both"  # the mode with the hinted re-decode
    tr.term_pass = False  # the hinted re-decode's own rule, without the term pass after it
    draft_tokens = [" start", " am", " low", " dip", "ine", " today"]
    draft_logprobs = [-0.1, -1.5, -1.2, -2.0, -0.9, -0.1]  # unsure where the drug name was said

    def fake(clips, *, hints, beam_size, timing, context=None, bias_terms=None):
        if not hints:
            return [ChunkResult(text="start am low dipine today", tokens=list(range(6)), token_texts=draft_tokens,
                                logprobs=draft_logprobs, flags=[]) for _ in clips]
        text = "start amlodipine today" if "amlodipine" in hints else "start a low dip in today"
        return [ChunkResult(text=text, tokens=[2], token_texts=["y"], logprobs=[-0.1], flags=[]) for _ in clips]

    tr.backend.transcribe_batch = fake
    chunk = [AudioChunk(audio=np.zeros(16000, dtype=np.float32), start=0.0, end=1.0)]
    assert tr.transcribe_chunks(chunk, hints=["amlodipine", "warfarin"])[0].text == "start amlodipine today"
    # "amlodipean" is picked (it looks like the draft) but the hinted text does not write it: the draft stands
    assert tr.transcribe_chunks(chunk, hints=["amlodipean"])[0].text == "start am low dipine today"


def test_a_term_must_replace_words_that_sound_like_it():
    from engine.decoding.hints import uses_terms

    terms = ["venlafaxine", "rivaroxaban", "amlodipine", "apixaban"]
    # hallucinated from a prompt of drug names: rejected
    assert not uses_terms("We've been late until we left our midnight.", "the venlafaxine", terms)
    assert not uses_terms("a new bridge in beaten rail to cross the river.",
                          "and nubrage is being built across rivaroxaban.", terms)
    # the misheard term fixed, with a word around it: accepted
    assert uses_terms("Her am low to pin was held.", "Her amlodipine was held.", terms)
    assert uses_terms("Start apixa band five milligrams.", "Start apixaban 5 milligrams.", terms)
    # nothing fixed by a term (the draft already had it, or no term written): the draft stands
    assert not uses_terms("Start apixaban today", "Start apixaban today.", terms)
    assert not uses_terms("Start a pixel ban today", "Start a pixel band today", terms)


def test_word_confidences_follow_the_normalised_words():
    import math

    from engine.decoding.hints import word_confidences

    texts = [" The", " patient", " took", " am", "lo", "dip", "ine", " 5", "mg", "."]
    lps = [-0.1, -0.2, -0.05, -2.0, -0.1, -1.0, -0.3, -0.1, -0.4, -0.01]
    conf = word_confidences(texts, lps)
    assert len(conf) == 6  # "5mg." -> "five mg": two words, each as sure as the written word
    assert conf[3] == pytest.approx(math.exp(-2.0))  # a word is as sure as its least sure token
    assert conf[4] == conf[5] == pytest.approx(math.exp(-0.4))
    assert conf[0] == pytest.approx(math.exp(-0.1))
    assert word_confidences([], []) == []


def test_a_term_may_not_replace_words_the_draft_heard_surely():
    """"I will rather stay in" -> "atorvastatin": the words look like the term, but the model
    was sure of them; a misheard drug name is written unsurely."""
    from engine.decoding.hints import TermEdit, acceptable, term_edits, uses_terms

    terms = ["atorvastatin", "amlodipine"]
    draft, hinted = "I will rather stay in.", "I will atorvastatin."
    sure = [0.99, 0.98, 0.97, 0.99, 0.96]
    unsure = [0.99, 0.98, 0.4, 0.5, 0.3]
    [edit] = term_edits(draft, hinted, terms, sure)
    assert edit.draft_words == ["rather", "stay", "in"] and edit.terms == ["atorvastatin"]
    assert edit.draft_confidence == pytest.approx(0.96)
    assert edit.hinted_confidence is None
    assert term_edits(draft, hinted, terms, sure, [0.9, 0.8, 0.2])[0].hinted_confidence == pytest.approx(0.2)
    assert acceptable(edit, max_confidence=1.01)  # looks alike: only the confidence tells
    assert not acceptable(edit, max_confidence=0.9)
    assert acceptable(term_edits(draft, hinted, terms, unsure)[0], max_confidence=0.9)
    assert term_edits(draft, hinted, terms, [0.9])[0].draft_confidence is None  # a mismatch is unknown
    assert uses_terms(draft, hinted, terms, None)  # confidence unknown: the old guard alone
    assert not uses_terms(draft, hinted, terms, sure)  # the default threshold
    assert uses_terms(draft, hinted, terms, unsure)
    assert not acceptable(TermEdit([], ["amlodipine"], ["amlodipine"], 0.0, 0, None))


def test_a_hinted_transcript_that_loses_words_elsewhere_does_not_stand():
    """It fixes the drug name but drops "twice daily"; the draft (with its misspelling) stands."""
    from engine.decoding.hints import uses_terms, words_lost

    draft = "start amlo deepine five milligrams twice daily then review"
    kept = "start amlodipine five milligrams twice daily then review"
    lost = "start amlodipine five milligrams then review"
    assert uses_terms(draft, kept, ["amlodipine"]) and words_lost(draft, kept, ["amlodipine"]) == 0
    assert words_lost(draft, lost, ["amlodipine"]) == 2 and not uses_terms(draft, lost, ["amlodipine"])


def test_a_draft_heard_surely_everywhere_is_not_decoded_again(tiny_model_dir):
    """The guard refuses any term edit over words heard at MAX_REPLACED_CONFIDENCE or more,
    so such a draft stands without a second decode (a long list then costs nothing)."""
    from engine.audio import AudioChunk
    from engine.backend import ChunkResult
    from engine.transcriber import Transcriber

    tr = Transcriber(tiny_model_dir, device="cpu")
    tr.hint_mode = "both"  # the mode with the hinted re-decode
    calls = []

    def fake(clips, *, hints, beam_size, timing, context=None, bias_terms=None):
        calls.append(hints)
        lp = -0.01 if sure else -2.0
        return [ChunkResult(text=" start am low dipine", tokens=[1, 2, 3, 4], token_texts=[" start", " am", " low",
                            " dipine"], logprobs=[lp] * 4, flags=[]) for _ in clips]

    tr.backend.transcribe_batch = fake
    chunk = [AudioChunk(audio=np.zeros(16000, dtype=np.float32), start=0.0, end=1.0)]
    sure = True
    tr.transcribe_chunks(chunk, hints=["amlodipine"])
    assert calls == [None]
    calls.clear()
    sure = False
    tr.transcribe_chunks(chunk, hints=["amlodipine"])
    assert calls == [None, ["amlodipine"]]
