"""The term pass (engine/decoding/term_pass.py): whole terms scored against the audio."""

from __future__ import annotations

import math

from engine.backend import ChunkResult, Span
from engine.decoding import term_pass as tp


def test_the_index_finds_terms_a_draft_misheard_and_only_compares_terms_sharing_letter_pairs():
    index = tp.TermIndex.build(["amlodipine", "Amlodipine ", "levothyroxine", "stop", "Ибупрофен", ""])
    assert index.terms == ["amlodipine", "levothyroxine", "stop", "Ибупрофен"]  # repeats and blanks once
    assert [index.terms[i] for _, i in index.similar(" Ramadipan")] == ["amlodipine"]
    assert index.similar("walked home") == []
    assert index.similar("amlodipine") == []  # written already: nothing to do
    assert index.common == [False, False, True, False]  # "stop" is an everyday word
    assert [index.terms[i] for _, i in index.similar("ибупрофин")] == ["Ибупрофен"]  # other scripts by spelling
    # a lookup compares only the terms that share a letter pair with the span, not the whole list
    big = tp.TermIndex.build([f"zz{i:05d}" for i in range(5000)] + ["amlodipine"])
    near = set().union(*(big.by_pair.get(p, set()) for p in tp._pairs(tp.phonetic_key("Ramadipan"))))
    assert len(near) < 10


def test_a_term_misheard_as_four_words_is_a_candidate_over_all_four():
    index = tp.TermIndex.build(["levothyroxine", "amlodipine"])
    texts = [" He", " takes", " leave", " oh", " thy", " rocks", " daily."]
    lps = [math.log(p) for p in (0.99, 0.99, 0.5, 0.4, 0.5, 0.6, 0.99)]
    best = tp.candidates(index, texts, lps, lambda text: [1])[0]
    assert (best.start, best.end, index.terms[best.term]) == (2, 6, "levothyroxine")  # "leave oh thy rocks"


def _result(texts: list[str], probs: list[float], spans: bool = False) -> ChunkResult:
    tokens = list(range(100, 100 + len(texts)))
    lps = [math.log(p) for p in probs]
    sp = [Span(0.0, 1.0, "".join(texts[:2]).strip(), texts[:2], lps[:2]),
          Span(1.0, 2.0, "".join(texts[2:]).strip(), texts[2:], lps[2:])] if spans else []
    return ChunkResult(text="".join(texts).strip(), tokens=tokens, token_texts=texts, logprobs=lps, flags=[], spans=sp)


class FakeBackend:
    """Tokens are word pieces kept in a table; a sequence scores `gain` when it holds `term`,
    and 2 less per word piece more or fewer than the draft (the first sequence) has: the
    audio has that many."""

    def __init__(self, texts: list[str], term: str, gain: float):
        self.table = {100 + i: t for i, t in enumerate(texts)}
        self.term, self.gain, self.calls = term, gain, 0

    def term_tokens(self, text: str) -> list[int]:
        for tok, t in self.table.items():
            if t == text:
                return [tok]
        self.table[len(self.table) + 100] = text
        return [len(self.table) + 99]

    def decode_tokens(self, tokens: list[int]) -> str:
        return "".join(self.table[t] for t in tokens)

    def score_tokens(self, clip, sequences, context=None, hints=None):
        self.calls += 1
        out = []
        for s in sequences:
            lps = [-0.5] * len(s)
            total = (self.gain if self.term in self.decode_tokens(s) else 0.0) - 2.0 * abs(len(s) - len(sequences[0]))
            out.append((total, lps))
        return out


def test_a_term_the_audio_allows_replaces_the_misheard_words_and_says_so():
    texts = [" Ramadipan", " was", " held", " today."]
    r = _result(texts, [0.3, 0.99, 0.99, 0.99], spans=True)
    index = tp.TermIndex.build(["amlodipine", "levothyroxine"])
    backend = FakeBackend(texts, "Amlodipine", -1.0)  # a little less likely than the draft: within the margin
    out = tp.improve(r, None, index, backend, margin=4.0)
    assert out.text == "Amlodipine was held today."
    assert out.flags == [tp.FLAG] and out.replaced == "Ramadipan -> amlodipine"
    assert [s.text for s in out.spans] == ["Amlodipine was", "held today."]
    assert r.text == "Ramadipan was held today." and r.flags == []  # the draft itself is untouched
    # the audio does not allow it: the draft stands, unflagged
    backend = FakeBackend(texts, "Amlodipine", -9.0)
    assert tp.improve(r, None, index, backend, margin=4.0) is r


def test_surely_heard_words_and_everyday_terms_need_the_audio_to_prefer_the_term():
    texts = [" Please", " stop", " now."]
    index = tp.TermIndex.build(["start"])
    sure = _result(texts, [0.99, 0.95, 0.99])
    backend = FakeBackend(texts, "start", 0.0)
    assert tp.improve(sure, None, index, backend) is sure and backend.calls == 0  # never even scored
    unsure = _result(texts, [0.99, 0.4, 0.99])
    assert tp.improve(unsure, None, index, FakeBackend(texts, "start", 1.0)) is unsure  # everyday: not enough
    assert tp.improve(unsure, None, index, FakeBackend(texts, "start", tp.EVERYDAY_LEAD + 1)).text == "Please start now."


def test_two_candidates_for_one_span_the_better_scored_wins():
    index = tp.TermIndex.build(["metoprolol", "bisoprolol"])
    cands = [tp.Candidate(1, 2, 0, 80.0, [7]), tp.Candidate(1, 3, 1, 70.0, [8]), tp.Candidate(4, 5, 0, 60.0, [7])]
    chosen = tp.choose(index, cands, [(-2.0, [-1.0]), (-1.0, [-0.5]), (-9.0, [-3.0])], margin=4.0)
    assert [(c.candidate.term, c.candidate.start) for c in chosen] == [(1, 1)]


def test_teacher_forced_scores_are_the_decoders_own_log_probs(tiny_model_dir):
    """The bridge family's `score_tokens` gives a greedy decode's tokens the log-probs the
    decoder recorded while writing them, and a changed sequence scores differently."""
    import numpy as np

    from engine.backend import Timing
    from engine.transcriber import Transcriber

    tr = Transcriber(tiny_model_dir, device="cpu")
    tr.config.decode.ctc_weight = 0.0  # the LM alone, as greedy then chooses by it
    clip = (np.random.default_rng(3).standard_normal(16000) * 0.1).astype(np.float32)
    r = tr.backend.transcribe_batch([clip], hints=None, beam_size=1, timing=Timing())[0]
    assert r.tokens
    other = list(r.tokens)
    other[0] = (other[0] + 1) % 100
    (total, lps), (total2, _) = tr.backend.score_tokens(clip, [r.tokens, other])
    assert np.allclose(lps, r.logprobs, atol=2e-3) and total < sum(lps) + 1e-6  # the end token's log-prob too
    assert total2 != total


def test_a_term_is_never_written_again_beside_itself():
    texts = [" take", " atorvastatin", " atorvastin."]
    r = _result(texts, [0.99, 0.6, 0.3])
    index = tp.TermIndex.build(["atorvastatin"])
    assert tp.improve(r, None, index, FakeBackend(texts, "atorvastatin", 5.0)) is r


def test_whisper_scores_with_the_decodes_own_cross_attention_keys_as_with_fresh_ones(real_transcriber, tmp_path):
    """The term pass reuses the decode's cross-attention keys for the same clip: same scores."""
    import numpy as np

    from engine.audio import load_audio
    from engine.backend import Timing
    from tests.conftest import espeak

    backend = real_transcriber.backend
    clip = load_audio(espeak("Her amlodipine was held before the operation.", tmp_path / "a.wav"))
    r = backend.transcribe_batch([clip], hints=None, beam_size=1, timing=Timing())[0]
    assert backend._cross and backend._cross[-1][0] is backend.encode(clip)
    other = r.tokens[:1] + backend.term_tokens(" amlodipine") + r.tokens[2:]
    reused = backend.score_tokens(clip, [r.tokens, other], hints=["amlodipine"])
    backend._cross = []
    fresh = backend.score_tokens(clip, [r.tokens, other], hints=["amlodipine"])
    assert np.allclose([t for t, _ in reused], [t for t, _ in fresh], atol=1e-4)
    assert np.allclose(reused[0][1], fresh[0][1], atol=1e-4) and len(reused[0][1]) == len(r.tokens)


def test_whisper_scores_a_sentence_the_same_alone_or_beside_others(real_tiny_en, tmp_path):
    """The prompt and the tokens all rows share run once; the rest per row: a sentence's
    scores do not depend on what it is scored beside (where the shared part ends). In fp32:
    int8 decoding scales each matrix product's input by its whole batch, which moves scores
    by up to a nat."""
    import numpy as np

    from engine.audio import load_audio
    from engine.transcriber import Transcriber
    from tests.conftest import espeak

    backend = Transcriber(real_tiny_en, device="cpu", precision="fp32").backend
    clip = load_audio(espeak("She would like to come off quetiapine.", tmp_path / "q.wav"))
    a = backend.term_tokens(" She would like to come off quetiapine.")
    b = backend.term_tokens(" She would like to come of where she'd apply.")
    alone = backend.score_tokens(clip, [a], hints=["quetiapine"])[0]
    beside = backend.score_tokens(clip, [b, a], hints=["quetiapine"])[1]
    assert len(alone[1]) == len(a) and np.allclose(alone[1], beside[1], atol=1e-3)
    assert abs(alone[0] - beside[0]) < 1e-3


def test_the_segment_holding_the_term_records_what_it_replaced_and_survives_a_save():
    from engine.audio import AudioChunk
    from engine.text.transcript import Transcript
    from engine.transcriber import chunk_segments

    texts = [" Ramadipan", " was", " held", " today."]
    r = tp.improve(_result(texts, [0.3, 0.99, 0.99, 0.99], spans=True), None,
                   tp.TermIndex.build(["amlodipine"]), FakeBackend(texts, "Amlodipine", -1.0))
    segs = chunk_segments(AudioChunk(start=10.0, end=12.0, audio=None), r)
    assert [(s.text, s.replaced, tp.FLAG in s.flags) for s in segs] == [
        ("Amlodipine was", "Ramadipan -> amlodipine", True), ("held today.", "", False)]
    again = Transcript.from_dict(Transcript(segments=segs, duration=12.0).to_dict())
    assert [s.replaced for s in again.segments] == ["Ramadipan -> amlodipine", ""]
