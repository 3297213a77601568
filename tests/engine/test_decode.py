"""Greedy and beam decoding with a KV cache, batching, and the loop guard."""

import numpy as np
import pytest
import torch

from engine.bridge.encoder import encoder_inputs
from engine.decoding import search
from engine.decoding.search import CausalLMStep, LogProbScorer, LoopCut, MinLength, find_loop
from tests.helpers import tiny_model


def greedy(lm, inputs, limits, eos_id, min_new_tokens=1, max_repeats=4):
    """Greedy decoding as the bridge backend runs it."""
    return search.greedy(CausalLMStep(lm, inputs), limits, eos_id, MinLength(eos_id, min_new_tokens),
                         cut_loop=LoopCut(max_repeats))


def beam_search(lm, inputs, limit, eos_id, beam_size=4, length_penalty=1.0, max_repeats=4):
    return search.beam_search(CausalLMStep(lm, inputs), limit, beam_size, LogProbScorer(eos_id, length_penalty),
                              MinLength(eos_id, 1), LoopCut(max_repeats))


def _speech(m, seconds_list, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s in seconds_list:
        audio = (rng.standard_normal(int(16000 * s)) * 0.1).astype(np.float32)
        with torch.no_grad():
            out.append(m.speech_embeddings(torch.from_numpy(encoder_inputs(m.config.encoder, audio)))[0])
    return out


@pytest.mark.parametrize("lm", ["gpt2", "llama"])
def test_greedy_equals_beam_of_one_and_batching_changes_nothing(lm):
    m = tiny_model("hubert", "conv", lm, seed=3)
    speech = _speech(m, [1.0, 2.5, 4.0])
    eos = m.tokenizer.eos_token_id
    batched, _ = m.lm_inputs(speech)
    together = greedy(m.lm, batched, [25, 25, 25], eos, max_repeats=100)
    for i, s in enumerate(speech):
        one, _ = m.lm_inputs([s])
        alone = greedy(m.lm, one, [25], eos, max_repeats=100)[0]
        beam1 = beam_search(m.lm, one, 25, eos, beam_size=1, max_repeats=100)
        assert alone.tokens == together[i].tokens == beam1.tokens
        assert np.allclose(alone.logprobs, together[i].logprobs, atol=1e-4)


def test_kv_cache_greedy_matches_full_recompute():
    m = tiny_model("hubert", "conv", "llama", seed=5)
    speech = _speech(m, [2.0])
    inputs, _ = m.lm_inputs(speech)
    out = greedy(m.lm, inputs, [12], m.tokenizer.eos_token_id, max_repeats=100)[0]
    embeds = inputs.embeds
    tokens = []
    with torch.no_grad():
        for _ in range(len(out.tokens)):
            logits = m.lm(inputs_embeds=embeds).logits[0, -1]
            logits[m.tokenizer.eos_token_id] = -float("inf") if not tokens else logits[m.tokenizer.eos_token_id]
            tok = int(logits.argmax())
            tokens.append(tok)
            embeds = torch.cat([embeds, m.embed_tokens([tok])[None]], dim=1)
    assert tokens == out.tokens


def test_beam_search_never_scores_below_greedy():
    m = tiny_model("hubert", "conv", "gpt2", seed=7)
    eos = m.tokenizer.eos_token_id
    for s in _speech(m, [1.5, 3.0], seed=2):
        one, _ = m.lm_inputs([s])
        g = greedy(m.lm, one, [15], eos, max_repeats=100)[0]
        b = beam_search(m.lm, one, 15, eos, beam_size=4, length_penalty=0.0, max_repeats=100)
        if "max-length" not in g.flags:
            assert sum(b.logprobs) >= sum(g.logprobs) - 1e-4


def test_max_new_tokens_is_respected_and_flagged():
    m = tiny_model("hubert", "conv", "llama", seed=1)
    inputs, _ = m.lm_inputs(_speech(m, [1.0]))
    out = greedy(m.lm, inputs, [3], eos_id=-1 % len(m.tokenizer), min_new_tokens=3, max_repeats=100)[0]
    assert len(out.tokens) == 3 and "max-length" in out.flags


def test_find_loop_spots_repeated_ngrams_only():
    assert find_loop([1, 2, 3, 4, 5, 6], 3) is None
    assert find_loop([9, 1, 2, 1, 2, 1, 2], 3) == 1
    assert find_loop([5, 7, 7, 7, 7], 4) == 1
    assert find_loop([5, 7, 7, 7], 4) is None


def test_loop_guard_cuts_a_looping_model_and_flags_it():
    m = tiny_model("hubert", "conv", "gpt2", seed=0)
    # force a loop: with the (tied) output matrix zeroed every step predicts token 0
    with torch.no_grad():
        m.lm.lm_head.weight.zero_()
    inputs, _ = m.lm_inputs(_speech(m, [2.0]))
    out = greedy(m.lm, inputs, [50], m.tokenizer.eos_token_id, max_repeats=4)[0]
    assert "dropped-repetition" in out.flags
    assert len(out.tokens) < 50
    assert find_loop(out.tokens, 2) is None or len(out.tokens) == 1
