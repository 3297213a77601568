"""Contextual biasing: the prefix tree of a word list, the bonus and its taking back, in
greedy and beam search; bad lists."""

import torch

from engine.decoding import search
from engine.decoding.biasing import Bias, Match, build_trie, make_bias
from engine.decoding.search import LogProbScorer

EOS, STOP, ST, ART, AM, LO, DIPINE, THE, X = range(9)
PIECES = {" stop": [STOP], "stop": [STOP], " start": [ST, ART], "start": [ST, ART],
          " amlodipine": [AM, LO, DIPINE], " amlox": [AM, LO, X]}


def encode(texts):
    """A toy tokenizer: the pieces above, any other text one token per character from 100 on."""
    return [PIECES.get(t.lower(), PIECES.get(" " + t.lower(), [100 + ord(c) % 50 for c in t])) for t in texts]


class BigramStep:
    """A toy decoder whose next-token logits depend only on the last token (search.Step)."""

    def __init__(self, table: dict[int | None, dict[int, float]], rows: int = 1, vocab: int = 9):
        self.table, self.vocab = table, vocab
        self.last = [None] * rows

    def _logits(self) -> torch.Tensor:
        out = torch.full((len(self.last), self.vocab), -30.0)
        for i, t in enumerate(self.last):
            for tok, v in self.table.get(t, {EOS: 0.0}).items():
                out[i, tok] = v
        return out

    def prefill(self):
        return self._logits()

    def next(self, tokens):
        self.last = [int(t) for t in tokens]
        return self._logits()

    def reorder(self, sources):
        self.last = [self.last[s] for s in sources]


# The model half hears a drug: " the" is a little likelier than " am", and after " am lo" it
# is sure of "dipine".
HALF_HEARD = {None: {THE: 0.0, AM: -1.0}, THE: {EOS: 0.0}, AM: {LO: 0.0}, LO: {DIPINE: 0.0, X: -20.0},
              DIPINE: {EOS: 0.0}}


def bias_for(terms, bonus=2.0):
    return Bias(build_trie(terms, encode), bonus)


def test_a_listed_term_the_model_half_heard_is_written_greedy_and_beam():
    plain = search.greedy(BigramStep(HALF_HEARD), [10], EOS)[0]
    assert plain.tokens == [THE]
    biased = search.greedy(BigramStep(HALF_HEARD), [10], EOS, bias=bias_for(["amlodipine"]))[0]
    assert biased.tokens == [AM, LO, DIPINE]
    beam = search.beam_search(BigramStep(HALF_HEARD), 10, 3, LogProbScorer(EOS, 0.0), bias=bias_for(["amlodipine"]))
    assert beam.tokens == [AM, LO, DIPINE]
    assert biased.logprobs[0] < -1.0  # the log-probs recorded are the model's, not the boosted ones


def test_a_term_left_unfinished_gives_its_bonus_back_in_beam_search():
    # "amlox": " am lo" is boosted, but the model is sure of "dipine" after it, which leaves
    # the term; the bonus is taken back and the plain reading wins again
    beam = search.beam_search(BigramStep(HALF_HEARD), 10, 3, LogProbScorer(EOS, 0.0), bias=bias_for(["amlox"]))
    assert beam.tokens == [THE]
    b = bias_for(["amlox"])
    s, _ = b.advance(b.initial(), AM)
    s, _ = b.advance(s, LO)
    assert s.pending == 4.0
    after, change = b.advance(s, DIPINE)
    assert change == -4.0 and after.pending == 0.0
    assert b.end(s) == -4.0  # ending inside a term gives it back too


def test_a_finished_term_keeps_its_bonus_and_a_new_term_can_start():
    b = bias_for(["amlodipine"])
    s = b.initial()
    for tok in (AM, LO, DIPINE):
        s, change = b.advance(s, tok)
        assert change == 0.0
    assert s == Match(0) and b.end(s) == 0.0
    boosts = b.boosts([s], 9)
    assert boosts[0, AM] == 2.0 and boosts[0, LO] == 0.0  # only a term's first token, between terms


def test_everyday_words_are_never_boosted_so_stop_stays_stop():
    trie = build_trie(["stop", "start", "Start"], encode)
    assert len(trie) == 0
    said_stop = {None: {STOP: 0.0, ST: -1.5}, ST: {ART: 0.0}, STOP: {EOS: 0.0}, ART: {EOS: 0.0}}
    assert make_bias(["start"], None, None, {}) is None
    out = search.greedy(BigramStep(said_stop), [5], EOS, bias=bias_for(["start", "amlodipine"]))[0]
    assert out.tokens == [STOP]
    beam = search.beam_search(BigramStep(said_stop), 5, 3, LogProbScorer(EOS, 0.0),
                              bias=bias_for(["start", "amlodipine"]))
    assert beam.tokens == [STOP]


def test_bad_lists_empty_repeated_other_scripts_and_huge():
    assert make_bias([], None, None, {}) is None
    assert make_bias(None, None, None, {}) is None
    trie = build_trie(["amlodipine", "Amlodipine", " amlodipine ", "", "   ", "アムロジピン", "Ибупрофен"], encode)
    assert len(trie) == 3  # repeats in any case or spacing count once; other scripts are terms like any
    huge = [f"zq{i}term" for i in range(100_000)]
    assert len(build_trie(huge, encode)) == 100_000


def test_special_tokens_are_never_part_of_a_term():
    trie = build_trie(["amlox"], encode, text_below=X)  # X counts as a special token here
    assert len(trie) == 1
    assert all(X not in kids for kids in trie.children)


def test_each_hint_mode_decodes_as_documented_and_the_encoder_runs_once_per_clip(tiny_model_dir):
    from unittest.mock import patch

    import numpy as np

    from engine.audio import AudioChunk
    from engine.transcriber import Transcriber

    tr = Transcriber(tiny_model_dir, device="cpu")
    calls, graph_runs = [], []
    real, real_graph = tr.backend.transcribe_batch, tr.backend._run_graph

    def spy(clips, *, hints, beam_size, timing, context=None, bias_terms=None):
        calls.append((hints, bias_terms))
        return real(clips, hints=hints, beam_size=beam_size, timing=timing, bias_terms=bias_terms)

    tr.backend.transcribe_batch = spy
    tr.backend._run_graph = lambda audio: graph_runs.append(1) or real_graph(audio)
    audio = (np.random.default_rng(1).standard_normal(16000) * 0.1).astype(np.float32)
    chunk = [AudioChunk(audio=audio, start=0.0, end=1.0)]
    terms = ["amlodipine", "stop", "zopiclone"]
    tr.hint_mode = "bias"
    tr.transcribe_chunks(chunk, hints=terms)
    assert calls == [(None, terms)] and len(graph_runs) == 1
    calls.clear()
    tr.hint_mode = "both"
    with patch("engine.transcriber.select_hints", lambda t, draft, limit: t[:1]), \
            patch("engine.transcriber.likely_terms", lambda *a: ["amlodipine"]), \
            patch("engine.decoding.hints.MAX_REPLACED_CONFIDENCE", 1.01):  # the draft is decoded again, however sure
        tr.transcribe_chunks(chunk, hints=terms)
    assert calls == [(None, None), (["amlodipine"], ["amlodipine"])]
    assert len(graph_runs) == 1  # the draft's encoder output served the hinted decode too
    calls.clear()
    tr.hint_mode = "prompt"
    with patch("engine.transcriber.select_hints", lambda t, draft, limit: t[:1]), \
            patch("engine.transcriber.likely_terms", lambda *a: ["amlodipine"]), \
            patch("engine.decoding.hints.MAX_REPLACED_CONFIDENCE", 1.01):
        tr.transcribe_chunks(chunk, hints=terms)
    assert calls == [(None, None), (["amlodipine"], None)]
    calls.clear()
    tr.hint_mode = "score"  # one plain decode, however like a term the draft looks; the term pass still runs
    scored = []
    with patch("engine.transcriber.select_hints", lambda t, draft, limit: t[:1]), \
            patch("engine.transcriber.likely_terms", lambda *a: ["amlodipine"]), \
            patch("engine.decoding.hints.MAX_REPLACED_CONFIDENCE", 1.01), \
            patch("engine.transcriber.improve", lambda r, clip, index, *a: scored.append(index.terms) or r):
        tr.transcribe_chunks(chunk, hints=terms)
    assert calls == [(None, None)] and len(scored) == 1 and list(scored[0]) == terms


def test_whisper_never_turns_stop_into_start_and_an_irrelevant_list_changes_nothing(real_transcriber, tmp_path):
    from engine.decoding.hints import DEFAULT_HINT_MODE
    from tests.conftest import espeak

    wav = espeak("Please stop the tablets and start walking every morning.", tmp_path / "s.wav")
    tr = real_transcriber
    plain = {beam: tr.transcribe(wav, beam_size=beam).text for beam in (1, 3)}
    try:
        for mode in ("bias", "both", "score"):
            tr.hint_mode = mode
            for beam in (1, 3):
                for terms in (["start", "stop", "Start"], ["zopiclone", "Kowalczyk", "Ибупрофен", "アムロジピン"]):
                    assert tr.transcribe(wav, hints=terms, beam_size=beam).text == plain[beam], (mode, beam, terms)
    finally:
        tr.hint_mode = DEFAULT_HINT_MODE
    assert "stop" in plain[1].lower()


def test_word_list_files_empty_repeated_and_too_long_are_clear(tmp_path):
    import pytest

    from engine.decoding.hints import MAX_TERMS, read_word_list
    from engine.errors import StenoError

    f = tmp_path / "words.txt"
    f.write_text("# my drugs\n\n   \n")
    with pytest.raises(StenoError, match="no terms"):
        read_word_list(f)
    f.write_text("Apixaban\napixaban, APIXABAN\nИбупрофен\n")
    assert read_word_list(f) == ["Apixaban", "Ибупрофен"]
    f.write_text("\n".join(f"term{i}" for i in range(MAX_TERMS + 1)))
    with pytest.raises(StenoError, match=f"at most {MAX_TERMS}"):
        read_word_list(f)
