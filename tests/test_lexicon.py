"""The unknown-word penalty: which words are known, and a decoder that prefers a real word
to a doubled one ("ratherther") that the CTC head slightly favours."""

import numpy as np
import pytest
import torch

from engine.ctc_prefix import CTCPrefixScorer
from engine.lexicon import Lexicon, TokenTexts, WordEnds


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


@pytest.mark.parametrize("beam", [2, 4])
def test_the_penalty_turns_a_doubled_word_into_the_real_one(beam):
    """Beam search keeps "the rather" ended beside "the rather ther" going on; the penalty
    charged when the second ends decides. (Greedy decoding commits to "ther" before the
    word ends, so there the penalty can only steer the next word.)"""
    from engine.decode import CTCGuide, joint_beam_search
    from tests.helpers import tiny_model

    m = tiny_model("hubert", "ctc", "gpt2").eval()
    token_to_label = m.bridge.token_to_label.numpy()
    n_labels = m.bridge.n_labels
    the, rather, ther = 7, 12, 9  # LM token ids with CTC labels; their texts are set below
    texts = [""] * len(token_to_label)
    texts[the], texts[rather], texts[ther] = " the", " rather", "ther"
    rows = []
    for probs in ({the: 1.0}, {0: 1.0}, {rather: 1.0}, {0: 0.2, ther: 0.8}, {0: 1.0}):
        row = np.full(n_labels, 1e-6)
        for tok, p in probs.items():
            row[0 if tok == 0 else token_to_label[tok]] = p
        rows.append(np.log(row / row.sum()))
    logp = np.array(rows)
    lm_in, _ = m.lm_inputs([torch.randn(4, m.lm.config.n_embd)])
    eos = m.tokenizer.eos_token_id
    lexicon = Lexicon(frozenset({"the", "rather"}))
    tokens = TokenTexts.from_texts(texts)

    def decode(penalty):
        guide = CTCGuide([CTCPrefixScorer(logp)], token_to_label, weight=0.95,
                         word_ends=WordEnds(tokens, lexicon, penalty) if penalty else None)
        return joint_beam_search(m.lm, lm_in, 10, eos, guide, beam_size=beam).tokens

    assert decode(0.0) == [the, rather, ther]
    assert decode(3.0) == [the, rather]
