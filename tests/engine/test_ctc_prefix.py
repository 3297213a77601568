"""Joint CTC decoding: prefix scores against brute force, and a decoder it keeps to the speech."""

import itertools

import numpy as np
import pytest
import torch

from engine.decoding.ctc_prefix import CTCPrefixScorer


def _collapse(path):
    out, prev = [], 0
    for p in path:
        if p != 0 and p != prev:
            out.append(p)
        prev = p
    return tuple(out)


def _brute(logp):
    """log P(labelling) and log P(prefix) for every labelling, summing over all T-frame paths."""
    t, n = logp.shape
    full, prefix = {}, {}
    for path in itertools.product(range(n), repeat=t):
        lab = _collapse(path)
        lp = sum(logp[i, p] for i, p in enumerate(path))
        full[lab] = np.logaddexp(full.get(lab, -np.inf), lp)
    for lab, lp in full.items():
        for k in range(len(lab) + 1):
            prefix[lab[:k]] = np.logaddexp(prefix.get(lab[:k], -np.inf), lp)
    return full, prefix


def test_prefix_and_final_scores_equal_brute_force():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4))
    logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    full, prefix = _brute(logp)
    for target in [(1,), (2, 2), (1, 3, 1), (3, 2)]:
        s = CTCPrefixScorer(logp)
        assert s.final_score() == pytest.approx(full[()])
        for k, lab in enumerate(target):
            scores, el, eb = s.extend(np.array([1, 2, 3]))
            assert scores[lab - 1] == pytest.approx(prefix[target[:k + 1]], abs=1e-9)
            s.advance(lab, scores[lab - 1], el[:, lab - 1], eb[:, lab - 1])
        assert s.final_score() == pytest.approx(full.get(target, -np.inf), abs=1e-9)


def test_likely_labels_are_what_frames_rank_high():
    logp = np.log(np.array([[0.7, 0.2, 0.1, 0.0 + 1e-9], [0.1, 0.1, 0.1, 0.7], [0.9, 0.05, 0.04, 0.01]]))
    assert set(CTCPrefixScorer(logp).likely_labels()) == {1, 3}


def _greedy(lm, lm_in, limit, eos, guide=None):
    """One segment's greedy decoding as the bridge backend runs it (min_new_tokens 1)."""
    from engine.decoding.search import CausalLMStep, LoopCut, MinLength, greedy

    return greedy(CausalLMStep(lm, lm_in), [limit], eos, MinLength(eos, 1), guide, LoopCut(4))[0]


def test_joint_greedy_writes_what_the_ctc_head_hears():
    """A random LM alone writes noise; with the CTC weight near 1 it writes the CTC labelling."""
    from engine.decoding.search import CTCGuide
    from tests.helpers import tiny_model

    m = tiny_model("hubert", "ctc", "gpt2").eval()
    vocab = m.lm.get_input_embeddings().num_embeddings
    token_to_label = m.bridge.token_to_label.numpy()
    words = [7, 12, 9]  # LM token ids; their CTC labels are spoken, with blanks between
    n_labels = m.bridge.n_labels
    frames = []
    for tok in words:
        for lab in (token_to_label[tok], 0):
            row = np.full(n_labels, -20.0)
            row[lab] = 0.0
            frames.append(row)
    logp = np.array(frames) - np.logaddexp.reduce(np.array(frames), axis=1, keepdims=True)
    speech = torch.randn(4, m.lm.config.n_embd)
    lm_in, _ = m.lm_inputs([speech])
    eos = m.tokenizer.eos_token_id
    plain = _greedy(m.lm, lm_in, 10, eos)
    guided = _greedy(m.lm, lm_in, 10, eos, CTCGuide([CTCPrefixScorer(logp)], token_to_label, weight=0.95))
    assert guided.tokens == words and plain.tokens != words
    assert vocab > max(words)


def test_ctc_graph_returns_log_probs_and_transcribes_with_the_weight_and_blank_penalty(tmp_path, monkeypatch):
    from engine.bridge.folder import save_model
    from engine.decoding.ctc_prefix import penalize_blank
    from engine.transcriber import Transcriber
    from tests.helpers import tiny_model

    m = tiny_model("hubert", "ctc", "gpt2")
    m.config.decode.ctc_weight = 0.5
    folder = save_model(m, tmp_path / "ctc-model")
    tr = Transcriber(folder, device="cpu")
    audio = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)
    emb, logp = tr.backend.speech_outputs(audio)
    with torch.no_grad():
        expected = m.speech_outputs(torch.from_numpy(audio)[None])
    assert np.abs(emb - expected[0][0].numpy()).max() < 1e-3
    assert np.abs(logp - expected[1][0].numpy()).max() < 1e-3
    assert np.allclose(np.exp(logp).sum(-1), 1, atol=1e-4)
    import engine.bridge.backend as bb

    guides = []
    real = bb.greedy

    def spy(*args, **kw):
        guides.append(args[4] if len(args) > 4 else kw.get("guide"))
        return real(*args, **kw)

    monkeypatch.setattr(bb, "greedy", spy)
    tr.backend.transcribe_batch([audio], hints=None, beam_size=1, timing=tr.timing)
    assert isinstance(guides[-1], bb.CTCGuide) and guides[-1].weight == 0.5
    assert np.allclose(guides[-1].scorers[0].logp, logp)  # no blank penalty by default
    tr.backend.config.decode.ctc_blank_penalty = 1.5
    tr.backend.transcribe_batch([audio], hints=None, beam_size=1, timing=tr.timing)
    assert np.allclose(guides[-1].scorers[0].logp, penalize_blank(logp, 1.5))
    assert not np.allclose(guides[-1].scorers[0].logp, logp)
    assert guides[-1].word_ends is None  # no unknown-word penalty by default
    tr.backend.config.decode.unknown_word_penalty = 2.0
    tr.backend.transcribe_batch([audio], hints=["Xarelto"], beam_size=1, timing=tr.timing)
    ends = guides[-1].word_ends
    assert ends.penalty == 2.0 and ends.lexicon.knows("Xarelto") and not ends.lexicon.knows("ratherther")
    assert len(ends.tokens.texts) == len(m.bridge.token_to_label)
    tr.backend.config.decode.ctc_weight = 0.0
    tr.backend.transcribe_batch([audio], hints=None, beam_size=1, timing=tr.timing)
    assert guides[-1] is None


def test_skipping_frames_where_the_prefix_cannot_end_changes_nothing_that_matters():
    rng = np.random.default_rng(1)
    path = [3, 0, 0, 5, 5, 0, 2, 0, 0, 7, 0, 1, 0, 0, 4, 0]
    logits = rng.standard_normal((len(path), 9))
    logits[np.arange(len(path)), path] += 12  # peaky, as a trained head is
    logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    s = CTCPrefixScorer(logp)
    for lab in (3, 5, 2, 7):
        pruned, el, eb = s.extend(np.arange(1, 9))
        full = s.extend(np.arange(1, 9), start=0)[0]
        assert np.allclose(pruned[lab - 1], full[lab - 1], atol=1e-6)
        s.advance(lab, pruned[lab - 1], el[:, lab - 1], eb[:, lab - 1])
    assert s.start_frame() > 0  # "3 5 2 7" cannot have ended in the first frames: they are skipped


def _final(logp, labels):
    """log P(the frames spell exactly `labels`), through the scorer's extend/advance."""
    scorer = CTCPrefixScorer(logp)
    for lab in labels:
        prefix, el, eb = scorer.extend(np.array([lab]), 0)
        scorer.advance(lab, prefix[0], el[:, 0], eb[:, 0])
    return scorer.final_score()


def _joint_score(tokens, lm_logprobs, logp, token_to_label, weight):
    return (1 - weight) * sum(lm_logprobs) + weight * _final(logp, [int(token_to_label[t]) for t in tokens])


def test_joint_beam_search_equals_greedy_with_one_beam_and_finds_an_ambiguous_word():
    """Frames where two labels are equally likely: greedy commits on the LM's whim; a beam
    keeps both and scores whole transcripts (LM + CTC), never worse than greedy's here."""
    from engine.decoding.search import CausalLMStep, CTCGuide, JointScorer, LoopCut, beam_search
    from tests.helpers import tiny_model

    m = tiny_model("hubert", "ctc", "gpt2").eval()
    token_to_label = m.bridge.token_to_label.numpy()
    n_labels = m.bridge.n_labels
    rows = []
    for options in ([7], [12, 20], [9], [15, 11]):
        row = np.full(n_labels, -12.0)
        for tok in options:
            row[token_to_label[tok]] = 0.0
        rows += [row, np.where(np.arange(n_labels) == 0, 0.0, -12.0)]
    logp = np.array(rows) - np.logaddexp.reduce(np.array(rows), axis=1, keepdims=True)
    lm_in, _ = m.lm_inputs([torch.randn(4, m.lm.config.n_embd)])
    eos = m.tokenizer.eos_token_id
    guide = lambda: CTCGuide([CTCPrefixScorer(logp)], token_to_label, weight=0.8)  # noqa: E731
    g = _greedy(m.lm, lm_in, 10, eos, guide())
    b1 = beam_search(CausalLMStep(m.lm, lm_in), 10, 1, JointScorer(guide(), eos, 1), cut_loop=LoopCut(4))
    b4 = beam_search(CausalLMStep(m.lm, lm_in), 10, 4, JointScorer(guide(), eos, 1), cut_loop=LoopCut(4))
    assert b1.tokens == g.tokens
    assert len(b4.tokens) == 4 and b4.tokens[0] == 7 and b4.tokens[2] == 9
    assert b4.tokens[1] in (12, 20) and b4.tokens[3] in (15, 11)
    score = lambda d: _joint_score(d.tokens, d.logprobs, logp, token_to_label, 0.8)  # noqa: E731
    assert score(b4) >= score(g) - 1e-6


def test_a_blank_penalty_keeps_an_unsure_word_that_plain_ctc_drops():
    """Frames: word 1 (sure), then word 2 at 0.4 against blank 0.55, then word 3 (sure). Plain
    CTC prefers the transcript without word 2; a blank penalty of 1 nat keeps it."""
    from engine.decoding.ctc_prefix import penalize_blank

    probs = np.full((5, 4), 0.01)
    probs[0, 1] = probs[4, 3] = 0.97
    probs[1, 0] = probs[3, 0] = 0.97
    probs[2, 0], probs[2, 2] = 0.55, 0.4
    logp = np.log(probs / probs.sum(1, keepdims=True))
    assert _final(logp, [1, 3]) > _final(logp, [1, 2, 3])
    kept = penalize_blank(logp, 1.0)
    assert np.allclose(np.exp(kept).sum(1), 1.0)
    assert _final(kept, [1, 2, 3]) > _final(kept, [1, 3])
    assert penalize_blank(logp, 0.0) is logp


def test_best_path_merges_repeats_and_drops_blanks_and_labels_map_back_to_tokens():
    from engine.decoding.ctc_prefix import best_path, label_tokens

    assert best_path([0, 3, 3, 0, 3, 5, 5, 0, 0, 2]) == [3, 3, 5, 2]  # a blank between repeats keeps both
    token_to_label = np.array([-1, 2, -1, 1, 3])  # tokens 1, 3, 4 have labels 2, 1, 3
    assert label_tokens(token_to_label).tolist() == [0, 3, 1, 4]


def test_likely_labels_ordered_a_few_frames_at_a_time_are_those_of_all_frames_at_once():
    from engine.decoding.ctc_prefix import TOP_ROWS

    rng = np.random.default_rng(5)
    logp = np.log(rng.dirichlet(np.ones(40), size=3 * TOP_ROWS + 7))
    scorer = CTCPrefixScorer(logp)
    whole = np.argpartition(-logp, 1, axis=1)[:, :2]
    for start in (0, TOP_ROWS + 3, len(logp) - 1):
        assert np.array_equal(scorer.likely_labels(start), np.unique(whole[start:][whole[start:] > 0]))
