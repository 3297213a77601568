"""The unknown-word penalty: which words are known, and a decoder that prefers a real word
to a doubled one ("ratherther") that the CTC head slightly favours."""

import numpy as np
import pytest
import torch

from engine.decoding.ctc_prefix import CTCPrefixScorer
from engine.decoding.lexicon import Lexicon, TokenTexts, WordEnds


def test_the_english_word_list_knows_words_names_and_drugs_but_not_doubled_pieces():
    lex = Lexicon.english(["Xarelto twice daily"])
    for word in ["rather", "Dashwood,", "amiable", "metformin", "cold-hearted", "bookseller's", "12mg",
                 "xarelto", "daily", "café"]:
        assert lex.knows(word), word
    for word in ["ratherther", "gaveve", "toposed", "jhnz", "xareltox"]:
        assert not lex.knows(word), word


def test_a_word_is_charged_once_when_it_ends():
    texts = ["", " rather", "ther", ",", " gave", "ve", " the", "-", "hearted"]
    tokens = TokenTexts.from_texts(texts)
    ends = WordEnds(tokens, Lexicon(frozenset({"rather", "gave", "the", "hearted"})), 3.0)
    after = np.array([3, 4, 2, 7])  # ",", " gave", "ther", "-"
    assert list(ends.costs([1, 2], after)) == [-3.0, -3.0, 0.0, -3.0]  # "ratherther" ends, unless it goes on
    assert list(ends.costs([1], after)) == [0.0] * 4  # "rather" is a word
    assert ends.end_cost([1, 2]) == -3.0 and ends.end_cost([4]) == 0.0
    assert ends.open_word([1, 2, 3]) == "" and ends.costs([1, 2, 3], after).tolist() == [0.0] * 4  # judged already
    assert ends.open_word([6, 7, 8]) == "hearted"


def frame_logprobs(model, frames: list[dict[int, float]]) -> np.ndarray:
    """CTC log-probabilities (frames, labels) from each frame's {LM token (0: blank): probability}."""
    token_to_label = model.bridge.token_to_label.numpy()
    rows = []
    for probs in frames:
        row = np.full(model.bridge.n_labels, 1e-6)
        for tok, p in probs.items():
            row[0 if tok == 0 else token_to_label[tok]] = p
        rows.append(np.log(row / row.sum()))
    return np.array(rows)


@pytest.mark.parametrize("beam", [2, 4])
def test_the_penalty_turns_a_doubled_word_into_the_real_one(beam):
    """Beam search keeps "the rather" ended beside "the rather ther" going on; the penalty
    charged when the second ends decides. (Greedy decoding commits to "ther" before the
    word ends, so there the penalty can only steer the next word.)"""
    from engine.decoding.search import CausalLMStep, CTCGuide, JointScorer, LoopCut, beam_search
    from tests.helpers import tiny_model

    m = tiny_model("hubert", "ctc", "gpt2").eval()
    token_to_label = m.bridge.token_to_label.numpy()
    the, rather, ther = 7, 12, 9  # LM token ids with CTC labels; their texts are set below
    texts = [""] * len(token_to_label)
    texts[the], texts[rather], texts[ther] = " the", " rather", "ther"
    logp = frame_logprobs(m, [{the: 1.0}, {0: 1.0}, {rather: 1.0}, {0: 0.2, ther: 0.8}, {0: 1.0}])
    lm_in, _ = m.lm_inputs([torch.randn(4, m.lm.config.n_embd)])
    eos = m.tokenizer.eos_token_id
    lexicon = Lexicon(frozenset({"the", "rather"}))
    tokens = TokenTexts.from_texts(texts)

    def decode(penalty):
        guide = CTCGuide([CTCPrefixScorer(logp)], token_to_label, weight=0.95,
                         word_ends=WordEnds(tokens, lexicon, penalty) if penalty else None)
        return beam_search(CausalLMStep(m.lm, lm_in), 10, beam, JointScorer(guide, eos, 1), cut_loop=LoopCut(4)).tokens

    assert decode(0.0) == [the, rather, ther]
    assert decode(3.0) == [the, rather]


@pytest.mark.parametrize("beam", [2, 4])
def test_a_word_bonus_keeps_a_word_the_head_is_unsure_of(beam):
    """"the amiable woman" where the head gives "amiable" 0.35 against blank's 0.65: reading
    that frame as blank scores higher, so beam search drops the word ("the woman", as the
    real dev set shows) unless each word begun earns a bonus (decode.word_bonus). (Greedy
    decoding weighs the next token of one transcript, where every word gets the bonus.)"""
    from engine.decoding.search import CausalLMStep, CTCGuide, JointScorer, LoopCut, beam_search
    from tests.helpers import tiny_model

    m = tiny_model("hubert", "ctc", "gpt2").eval()
    token_to_label = m.bridge.token_to_label.numpy()
    the, amiable, woman = 7, 12, 9
    texts = [""] * len(token_to_label)
    texts[the], texts[amiable], texts[woman] = "The", " amiable", " woman"
    logp = frame_logprobs(m, [{the: 1.0}, {0: 1.0}, {0: 0.65, amiable: 0.35}, {0: 1.0}, {woman: 1.0}, {0: 1.0}])
    lm_in, _ = m.lm_inputs([torch.randn(4, m.lm.config.n_embd)])
    eos = m.tokenizer.eos_token_id

    def decode(bonus):
        guide = CTCGuide([CTCPrefixScorer(logp)], token_to_label, weight=0.95, word_bonus=bonus,
                         token_texts=TokenTexts.from_texts(texts))
        return beam_search(CausalLMStep(m.lm, lm_in), 10, beam, JointScorer(guide, eos, 1), cut_loop=LoopCut(4)).tokens

    assert decode(0.0) == [the, woman]
    assert decode(2.0) == [the, amiable, woman]


def test_which_tokens_begin_a_word():
    tokens = TokenTexts.from_texts(["", " amiable", "able", ",", "The", " 12", " -"])
    assert tokens.starts.tolist() == [False, True, False, False, False, True, False]
    assert tokens.leads.tolist() == [False, True, True, False, True, True, False]
