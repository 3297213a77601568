"""Autoregressive decoding of the LM from input embeddings, with a KV cache.

Greedy decoding steps a whole left-padded batch at once (segments of one file decode
together); beam search runs one segment at a time with its beams as the batch. Both stop
at eos, at `max_new_tokens`, or when the output starts looping (an n-gram repeated
`max_repeats` times in a row), in which case the loop is cut and the result flagged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.ctc_prefix import label_tokens

if TYPE_CHECKING:  # engine.model imports transformers' modeling code (~160 MB): not for find_loop users
    from engine.lexicon import TokenTexts, WordEnds
    from engine.model import LMInputs


@dataclass
class Decoded:
    tokens: list[int]
    logprobs: list[float]  # per emitted token, for confidence
    flags: list[str] = field(default_factory=list)

    @property
    def confidence(self) -> float | None:
        if not self.logprobs:
            return None
        return float(torch.tensor(self.logprobs).mean().exp())


def find_repeat(tokens: list[int], repeats: int, min_ngram: int = 1, max_ngram: int = 16) -> tuple[int, int] | None:
    """(where the run began, n) if `tokens` ends in an n-gram repeated `repeats` times in a
    row, min_ngram <= n <= max_ngram; the smallest such n wins."""
    for n in range(min_ngram, max_ngram + 1):
        span = n * repeats
        if len(tokens) < span:
            break
        gram = tokens[-n:]
        if all(tokens[len(tokens) - span + i:len(tokens) - span + i + n] == gram for i in range(0, span, n)):
            start = len(tokens) - span
            while start >= n and tokens[start - n:start] == gram:
                start -= n
            return start, n
    return None


def find_loop(tokens: list[int], max_repeats: int, max_ngram: int = 16) -> int | None:
    """If `tokens` ends in an n-gram repeated `max_repeats` times in a row, where that run began."""
    found = find_repeat(tokens, max_repeats, 1, max_ngram)
    return None if found is None else found[0]


def _cut_loop(d: Decoded, max_repeats: int) -> bool:
    found = find_repeat(d.tokens, max_repeats)
    if found is None:
        return False
    start, n = found
    del d.tokens[start + n:]  # keep one copy of the repeated phrase
    del d.logprobs[start + n:]
    d.flags.append("dropped-repetition")
    return True


@dataclass
class CTCGuide:
    """Joint decoding with a ctc bridge (engine/ctc_prefix.py): each next token is chosen by
    (1 - weight) x LM log-prob + weight x the change in CTC prefix log-prob, among the LM's
    `lm_candidates` best tokens and the labels the CTC head ranks high on the frames where the
    transcript may go on (from `start_frame()`). Only tokens the CTC head has a label for can
    be written (and eos)."""
    scorers: list  # one CTCPrefixScorer per batch item
    token_to_label: np.ndarray  # (vocab,) CTC label of each LM token, -1 where there is none
    weight: float
    lm_candidates: int = 16
    word_ends: WordEnds | None = None  # charges words no word list knows (decode.unknown_word_penalty)
    word_bonus: float = 0.0  # added per word begun (decode.word_bonus); needs token_texts
    token_texts: TokenTexts | None = None

    def __post_init__(self):
        self.label_to_token = label_tokens(self.token_to_label)

    def candidates(self, scorer, logp: torch.Tensor, written: list[int] = ()):
        """The tokens worth scoring after `scorer`'s prefix (`written`), their joint score
        changes, and the CTC states (prefix scores, ending_label, ending_blank) to advance with."""
        start = scorer.start_frame()
        top = logp.topk(min(self.lm_candidates, logp.shape[-1])).indices.cpu().numpy()
        tokens = np.union1d(top, self.label_to_token[scorer.likely_labels(start)])
        tokens = tokens[self.token_to_label[tokens] > 0]
        if len(tokens) == 0:
            return tokens, np.zeros(0), None
        lm = logp.float().cpu().numpy()
        states = scorer.extend(self.token_to_label[tokens], start)
        delta = (1 - self.weight) * lm[tokens] + self.weight * (states[0] - scorer.score)
        if self.word_ends is not None:
            delta = delta + self.word_ends.costs(written, tokens)
        if self.word_bonus:
            begins = self.token_texts.starts[tokens] if written else self.token_texts.leads[tokens]
            delta = delta + self.word_bonus * begins
        return tokens, delta, states

    def end_score(self, scorer, logp: torch.Tensor, eos_id: int, written: list[int] = ()) -> float:
        """The joint score change of ending the transcript after `scorer`'s prefix."""
        score = (1 - self.weight) * float(logp[eos_id]) + self.weight * (scorer.final_score() - scorer.score)
        return score + (self.word_ends.end_cost(written) if self.word_ends is not None else 0.0)

    def choose(self, i: int, logp: torch.Tensor, eos_id: int, allow_eos: bool, written: list[int] = ()) -> int:
        scorer = self.scorers[i]
        tokens, total, states = self.candidates(scorer, logp, written)
        if len(tokens) == 0:
            return int(logp.argmax())
        best = int(total.argmax())
        if allow_eos and self.end_score(scorer, logp, eos_id, written) >= total[best]:
            return eos_id
        prefix, ending_label, ending_blank = states
        scorer.advance(self.token_to_label[tokens[best]], prefix[best], ending_label[:, best], ending_blank[:, best])
        return int(tokens[best])


def _step(lm, embeds, mask, positions, cache):
    out = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
    return out.logits[:, -1].float().log_softmax(-1), out.cache


def _step_beams(lm, embed, cache, mask, pos, sources: list[int], tokens: list[int], first: bool):
    """One LM step for the surviving beams: beam i continues beam `sources[i]` with `tokens[i]`.
    The KV cache is copied per beam after the prompt step and reordered after later ones."""
    if first:
        cache.batch_repeat_interleave(len(sources))
        mask = mask.expand(len(sources), -1)
        pos = pos.expand(len(sources), -1)
    else:
        cache.reorder_cache(torch.tensor(sources))
    mask = torch.cat([mask[: len(sources)], mask.new_ones(len(sources), 1)], dim=1)
    pos = pos[: len(sources)]
    logp, cache = _step(lm, embed(torch.tensor(tokens)[:, None]), mask, pos, cache)
    return logp, cache, mask, pos + 1


@torch.no_grad()
def greedy(lm, inputs: LMInputs, max_new_tokens: list[int], eos_id: int, min_new_tokens: int = 1,
           max_repeats: int = 4, ctc: CTCGuide | None = None) -> list[Decoded]:
    batch = inputs.embeds.shape[0]
    results = [Decoded([], []) for _ in range(batch)]
    done = [False] * batch
    mask, positions = inputs.attention_mask, inputs.position_ids
    logp, cache = _step(lm, inputs.embeds, mask, positions, None)
    next_pos = positions[:, -1:] + 1
    embed = lm.get_input_embeddings()
    for step in range(max(max_new_tokens)):
        if step < min_new_tokens:
            logp[:, eos_id] = -float("inf")
        best = logp.argmax(-1)
        for i in range(batch):
            if done[i]:
                continue
            if ctc is not None:
                best[i] = ctc.choose(i, logp[i], eos_id, allow_eos=step >= min_new_tokens, written=results[i].tokens)
            tok = int(best[i])
            if tok == eos_id:
                done[i] = True
                continue
            results[i].tokens.append(tok)
            results[i].logprobs.append(float(logp[i, tok]))
            if len(results[i].tokens) >= max_new_tokens[i]:
                done[i] = True
                results[i].flags.append("max-length")
            elif _cut_loop(results[i], max_repeats):
                done[i] = True
        if all(done):
            break
        mask = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
        logp, cache = _step(lm, embed(best[:, None]), mask, next_pos, cache)
        next_pos = next_pos + 1
    return results


@torch.no_grad()
def beam_search(lm, inputs: LMInputs, max_new_tokens: int, eos_id: int, beam_size: int = 4,
                min_new_tokens: int = 1, length_penalty: float = 1.0, max_repeats: int = 4) -> Decoded:
    """Beam search for one segment (batch of 1). With beam_size=1 it equals `greedy`."""
    assert inputs.embeds.shape[0] == 1, "beam search decodes one segment at a time"
    logp, cache = _step(lm, inputs.embeds, inputs.attention_mask, inputs.position_ids, None)
    embed = lm.get_input_embeddings()
    beams: list[tuple[list[int], list[float]]] = [([], [])]
    scores = torch.zeros(1)
    finished: list[tuple[float, Decoded]] = []
    mask = inputs.attention_mask
    pos = inputs.position_ids[:, -1:] + 1
    for step in range(max_new_tokens):
        if step < min_new_tokens:
            logp[:, eos_id] = -float("inf")
        total = scores[:, None] + logp  # (beams, vocab)
        top_scores, top_idx = total.flatten().topk(min(2 * beam_size, total.numel()))
        vocab = logp.shape[-1]
        new_beams, new_scores, sources, tokens = [], [], [], []
        for score, idx in zip(top_scores.tolist(), top_idx.tolist()):
            src, tok = divmod(idx, vocab)
            toks, lps = beams[src]
            if tok == eos_id:
                length = max(1, len(toks))
                finished.append((score / length ** length_penalty, Decoded(list(toks), list(lps))))
                continue
            cand = Decoded(toks + [tok], lps + [float(logp[src, tok])])
            if _cut_loop(cand, max_repeats):
                length = max(1, len(cand.tokens))
                finished.append((score / length ** length_penalty, cand))
                continue
            new_beams.append((cand.tokens, cand.logprobs))
            new_scores.append(score)
            sources.append(src)
            tokens.append(tok)
            if len(new_beams) == beam_size:
                break
        if len(finished) >= beam_size or not new_beams:
            break  # early stopping: as many finished hypotheses as beams
        beams, scores = new_beams, torch.tensor(new_scores)
        logp, cache, mask, pos = _step_beams(lm, embed, cache, mask, pos, sources, tokens, first=step == 0)
    else:
        for (toks, lps), score in zip(beams, scores.tolist()):
            d = Decoded(toks, lps, ["max-length"])
            finished.append((score / max(1, len(toks)) ** length_penalty, d))
    if not finished:
        toks, lps = beams[0]
        return Decoded(toks, lps)
    return max(finished, key=lambda x: x[0])[1]


@torch.no_grad()
def joint_beam_search(lm, inputs: LMInputs, max_new_tokens: int, eos_id: int, guide: CTCGuide,
                      beam_size: int = 4, min_new_tokens: int = 1, max_repeats: int = 4) -> Decoded:
    """Beam search for one segment scored as CTCGuide scores a greedy step: the sum over the
    transcript of (1 - w) x LM log-prob + w x the change in CTC prefix log-prob, which is
    (1 - w) x the LM's log-prob of the transcript + w x its CTC prefix log-prob.

    Why beams: a greedy step commits to a token the CTC head and LM half agree on; keeping
    a few alternatives lets the next frames decide. Both terms only fall as a transcript
    grows, so once the best ended transcript scores above every live beam, search stops.
    Each beam carries its own CTC prefix state (copied on a branch, as a beam's KV cache is).
    A word bonus breaks that bound by up to the bonus per word, so a live beam gets one more
    word's worth of slack before the search stops.
    """
    assert inputs.embeds.shape[0] == 1, "beam search decodes one segment at a time"
    logp, cache = _step(lm, inputs.embeds, inputs.attention_mask, inputs.position_ids, None)
    embed = lm.get_input_embeddings()
    beams = [(0.0, Decoded([], []), guide.scorers[0])]
    finished: list[tuple[float, Decoded]] = []
    mask = inputs.attention_mask
    pos = inputs.position_ids[:, -1:] + 1
    for step in range(max_new_tokens):
        options = []  # (score, beam index, token, candidate column, states)
        for b, (score, dec, scorer) in enumerate(beams):
            if step >= min_new_tokens:
                finished.append((score + guide.end_score(scorer, logp[b], eos_id, dec.tokens), dec))
            tokens, delta, states = guide.candidates(scorer, logp[b], dec.tokens)
            for j in np.argsort(-delta)[:beam_size]:
                options.append((score + float(delta[j]), b, int(tokens[j]), int(j), states))
        options.sort(key=lambda o: -o[0])
        new_beams, sources, next_tokens = [], [], []
        for score, b, tok, j, (prefix, ending_label, ending_blank) in options:
            if len(new_beams) == beam_size:
                break
            parent = beams[b][1]
            cand = Decoded(parent.tokens + [tok], parent.logprobs + [float(logp[b, tok])])
            child = copy.copy(beams[b][2])
            child.advance(guide.token_to_label[tok], prefix[j], ending_label[:, j], ending_blank[:, j])
            if _cut_loop(cand, max_repeats):
                finished.append((score + guide.end_score(child, logp[b], eos_id, cand.tokens), cand))
                continue
            new_beams.append((score, cand, child))
            sources.append(b)
            next_tokens.append(tok)
        best_done = max((f[0] for f in finished), default=-float("inf"))
        if not new_beams or best_done >= new_beams[0][0] + guide.word_bonus:
            break
        beams = new_beams
        logp, cache, mask, pos = _step_beams(lm, embed, cache, mask, pos, sources, next_tokens, first=step == 0)
    else:
        for score, dec, _ in beams:
            finished.append((score, Decoded(dec.tokens, dec.logprobs, ["max-length"])))
    if not finished:  # no beam had a token the CTC head can write
        return beams[0][1]
    return max(finished, key=lambda f: f[0])[1]
