"""Autoregressive decoding with a KV cache: one greedy loop and one beam search for every model family.

As in openai/whisper's decoding.py, the loops know nothing of a model; each family hands
them small pieces:

- a `Step`: runs the prompt, then one token per row, and reorders rows for beam search
  (`CausalLMStep` here for a causal LM fed input embeddings; the Whisper backend
  has its own over its decoder and cache);
- `rules`: turn a step's logits into log-probs given each row's history (`MinLength`;
  Whisper's timestamp and suppression rules);
- a beam `Scorer`: the LM's summed log-prob per token (`LogProbScorer`) or the joint
  CTC/LM score (`JointScorer`, from a `CTCGuide`, which also steers greedy decoding);
- a loop cut (`LoopCut`): stops a transcript that has started repeating itself;
- a `Bias` (engine/decoding/biasing.py): the user's terms boosted, the same for every family.

Greedy decoding steps a whole batch at once (segments of one file decode together); beam
search runs one segment at a time with its beams as the batch. Both stop at the end
token, at the length limit (flagged "max-length"), or at a loop, cut to one copy and
flagged "dropped-repetition".
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np
import torch

from engine.decoding.ctc_prefix import label_tokens

if TYPE_CHECKING:  # type names only: the search needs none of these modules at run time
    from engine.bridge.model import LMInputs
    from engine.decoding.biasing import Bias
    from engine.decoding.lexicon import TokenTexts, WordEnds


@dataclass
class Decoded:
    tokens: list[int]
    logprobs: list[float]  # per emitted token, for confidence
    flags: list[str] = field(default_factory=list)
    eos_logprob: float = 0.0  # of the end token, where the search chose it (Whisper's avg_logprob counts it)
    removed: list[int] = field(default_factory=list)  # tokens a loop cut took off the end (shown, not lost)

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


PHRASE_MIN, PHRASE_MAX = 8, 64  # the lengths of a looping phrase (LoopCut.phrase_repeats)


@dataclass
class LoopCut:
    """Cuts a transcript that has started looping to one copy of the repeated part, flagged
    "dropped-repetition": an n-gram of up to 16 tokens said `max_repeats` times in a row,
    or (with `phrase_repeats`) a phrase of 8..64 tokens said that often, which is how
    Whisper loops ("Thank you. Thank you. Thank you."): too long for the first test to
    catch within the token budget. Only tokens below `text_below` count, where set
    (Whisper's timestamps are not text)."""
    max_repeats: int
    phrase_repeats: int = 0
    text_below: int | None = None

    def __call__(self, d: Decoded) -> bool:
        text_pos = [i for i, t in enumerate(d.tokens) if self.text_below is None or t < self.text_below]
        text = [d.tokens[i] for i in text_pos]
        found = find_repeat(text, self.max_repeats, 1, 16)
        if found is None and self.phrase_repeats:
            found = find_repeat(text, self.phrase_repeats, PHRASE_MIN, PHRASE_MAX)
        if found is None:
            return False
        start, n = found
        cut = text_pos[start + n] if start + n < len(text_pos) else len(d.tokens)
        d.removed = d.tokens[cut:] + d.removed
        del d.tokens[cut:]  # keep one copy of the repeated phrase
        del d.logprobs[cut:]
        d.flags.append("dropped-repetition")
        return True


@dataclass
class CTCGuide:
    """Joint decoding with a ctc bridge (engine/decoding/ctc_prefix.py): each next token is chosen by
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


# ---------------------------------------------------------------------- what a family provides


class Step(Protocol):
    """A decoder with its KV cache, over a batch of rows (segments, or one segment's beams)."""

    def prefill(self) -> torch.Tensor:
        """Run the prompt; (rows, vocab) logits for the first token."""

    def next(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token (rows,) to every row; (rows, vocab) logits for the one after."""

    def reorder(self, sources: list[int]) -> None:
        """Beam search: row i goes on from row `sources[i]` (the cache follows)."""


Rules = Callable[[torch.Tensor, list[list[int]]], torch.Tensor]  # (logits, each row's tokens) -> log-probs


def log_probs(logits: torch.Tensor, histories: list[list[int]]) -> torch.Tensor:
    """No rules: the step's logits as log-probs."""
    return logits.float().log_softmax(-1)


@dataclass
class MinLength:
    """Rules that keep the end token out until every row has written `n` tokens."""
    eos_id: int
    n: int

    def __call__(self, logits: torch.Tensor, histories: list[list[int]]) -> torch.Tensor:
        logp = log_probs(logits, histories)
        if max(len(h) for h in histories) < self.n:
            logp[:, self.eos_id] = -float("inf")
        return logp


class CausalLMStep:
    """A causal LM decoding after a prompt of input embeddings (the bridge family: the plain
    Llama of engine.bridge.llama, or a transformers LM, called the same way),
    its batch left-padded. For beam search the prompt is one segment, run once; the beams
    copy its cache on the first reorder."""

    def __init__(self, lm, inputs: LMInputs):
        self.lm, self.inputs = lm, inputs
        self.embed = lm.get_input_embeddings()
        self.cache = None
        self.mask = inputs.attention_mask
        self.pos = inputs.position_ids[:, -1:] + 1
        self.shared = True  # the cache still holds the prompt's rows as run

    def _run(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        out = self.lm(inputs_embeds=embeds, attention_mask=self.mask, position_ids=positions, cache=self.cache,
                      use_cache=True)
        self.cache = out.cache
        return out.logits[:, -1].float()

    def prefill(self) -> torch.Tensor:
        return self._run(self.inputs.embeds, self.inputs.position_ids)

    def next(self, tokens: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(tokens), 1)], dim=1)
        logits = self._run(self.embed(tokens[:, None]), self.pos)
        self.pos = self.pos + 1
        return logits

    def reorder(self, sources: list[int]) -> None:
        if self.shared:
            self.cache.batch_repeat_interleave(len(sources))
            self.shared = False
        else:
            self.cache.reorder_cache(torch.tensor(sources))
        self.mask = self.mask[:1].expand(len(sources), -1)  # rows differ only in the tokens after the prompt
        self.pos = self.pos[:1].expand(len(sources), -1)


# ---------------------------------------------------------------------- greedy


@torch.no_grad()
def greedy(step: Step, limits: list[int], eos_id: int, rules: Rules = log_probs, guide: CTCGuide | None = None,
           cut_loop: Callable[[Decoded], bool] | None = None, bias: Bias | None = None) -> list[Decoded]:
    """The likeliest next token for each row (`guide`: the joint CTC/LM choice; `bias`: with
    the user's terms boosted) until the end token, the row's limit or a loop (a loop is cut
    first, as in `beam_search`). Log-probs are recorded unboosted."""
    batch = len(limits)
    results = [Decoded([], []) for _ in range(batch)]
    done = [False] * batch
    matches = [bias.initial() for _ in range(batch)] if bias is not None else None
    logits = step.prefill()
    for _ in range(max(limits)):
        logp = rules(logits, [r.tokens for r in results])
        chosen = logp if bias is None else logp + bias.boosts(matches, logp.shape[-1], logp.device)
        best = chosen.argmax(-1)
        for i, r in enumerate(results):
            if done[i]:
                continue
            if guide is not None:
                allow_eos = bool(logp[i, eos_id] > -float("inf"))
                best[i] = guide.choose(i, chosen[i], eos_id, allow_eos=allow_eos, written=r.tokens)
            tok = int(best[i])
            if tok == eos_id:
                r.eos_logprob = float(logp[i, tok])
                done[i] = True
                continue
            if bias is not None:
                matches[i] = bias.advance(matches[i], tok)[0]
            r.tokens.append(tok)
            r.logprobs.append(float(logp[i, tok]))
            if cut_loop is not None and cut_loop(r):
                done[i] = True
            elif len(r.tokens) >= limits[i]:
                r.flags.append("max-length")
                done[i] = True
        if all(done):
            break
        logits = step.next(best)
    return results


# ---------------------------------------------------------------------- beam search


@dataclass
class Beam:
    score: float
    hyp: Decoded
    state: object = None  # the scorer's own state for this beam (JointScorer: its CTC prefix scorer)
    match: object = None  # where it stands among the user's terms (engine.decoding.biasing.Match), when biased


@dataclass
class Option:
    """A candidate next token for one beam, with the beam's score if it is taken."""
    score: float
    beam: int
    token: int
    extra: object = None  # what the scorer needs to advance the beam's state
    ends: bool = False  # the end token: the beam's hypothesis is finished


class Scorer(Protocol):
    """How beam search scores, ranks and stops."""

    def initial(self) -> object:
        """The first beam's state."""

    def options(self, beams: list[Beam], logp: torch.Tensor, beam_size: int) -> list[Option]:
        """Candidate continuations of all beams, best first."""

    def ends(self, beams: list[Beam], logp: torch.Tensor) -> list[tuple[float, Decoded]]:
        """(rank, hypothesis) for beams that may end here besides by an end-token option."""

    def advance(self, beam: Beam, option: Option) -> object:
        """The state of `beam` continued by `option`."""

    def rank(self, score: float, hyp: Decoded) -> float:
        """What a finished hypothesis is ranked by (ended by the end token, or at the limit)."""

    def rank_cut(self, score: float, hyp: Decoded, state: object, logp: torch.Tensor) -> float:
        """The rank of a hypothesis ended by a loop cut (`logp`: its parent beam's log-probs)."""

    def stop(self, finished: list[tuple[float, Decoded]], beams: list[Beam], beam_size: int) -> bool:
        """Whether the search is over, given the finished hypotheses and the live beams (best first)."""


@dataclass
class LogProbScorer:
    """The LM's summed log-prob, the end token a candidate like any other; finished
    hypotheses ranked per token^length_penalty (Whisper's length norm); the search stops
    once as many hypotheses have finished as there are beams."""
    eos_id: int
    length_penalty: float = 1.0

    def initial(self) -> object:
        return None

    def options(self, beams: list[Beam], logp: torch.Tensor, beam_size: int) -> list[Option]:
        scores = torch.tensor([b.score for b in beams], device=logp.device)
        total = scores[:, None] + logp  # (beams, vocab)
        top_scores, top_idx = total.flatten().topk(min(2 * beam_size, total.numel()))
        vocab = logp.shape[-1]
        options = []
        for score, idx in zip(top_scores.tolist(), top_idx.tolist()):
            beam, token = divmod(idx, vocab)
            options.append(Option(score, beam, token, ends=token == self.eos_id))
        return options

    def ends(self, beams: list[Beam], logp: torch.Tensor) -> list[tuple[float, Decoded]]:
        return []

    def advance(self, beam: Beam, option: Option) -> object:
        return None

    def rank(self, score: float, hyp: Decoded) -> float:
        return score / max(1, len(hyp.tokens)) ** self.length_penalty

    def rank_cut(self, score: float, hyp: Decoded, state: object, logp: torch.Tensor) -> float:
        return self.rank(score, hyp)

    def stop(self, finished: list[tuple[float, Decoded]], beams: list[Beam], beam_size: int) -> bool:
        return len(finished) >= beam_size or not beams


@dataclass
class JointScorer:
    """Beams scored as CTCGuide scores a greedy step: the sum over the transcript of
    (1 - w) x LM log-prob + w x the change in CTC prefix log-prob, which is (1 - w) x the
    LM's log-prob of the transcript + w x its CTC prefix log-prob.

    Why beams: a greedy step commits to a token the CTC head and LM half agree on; keeping
    a few alternatives lets the next frames decide. Every beam may end at every step (from
    `min_new_tokens` on). Both terms only fall as a transcript grows, so once the best ended
    transcript scores above every live beam, search stops. Each beam carries its own CTC
    prefix state (copied on a branch, as a beam's KV cache is). A word bonus breaks that
    bound by up to the bonus per word, so a live beam gets one more word's worth of slack
    before the search stops.
    """
    guide: CTCGuide
    eos_id: int
    min_new_tokens: int = 1

    def initial(self) -> object:
        return self.guide.scorers[0]

    def options(self, beams: list[Beam], logp: torch.Tensor, beam_size: int) -> list[Option]:
        options = []
        for b, beam in enumerate(beams):
            tokens, delta, states = self.guide.candidates(beam.state, logp[b], beam.hyp.tokens)
            for j in np.argsort(-delta)[:beam_size]:
                options.append(Option(beam.score + float(delta[j]), b, int(tokens[j]), (int(j), states)))
        options.sort(key=lambda o: -o.score)
        return options

    def ends(self, beams: list[Beam], logp: torch.Tensor) -> list[tuple[float, Decoded]]:
        return [(b.score + self.guide.end_score(b.state, logp[i], self.eos_id, b.hyp.tokens), b.hyp)
                for i, b in enumerate(beams) if len(b.hyp.tokens) >= self.min_new_tokens]

    def advance(self, beam: Beam, option: Option) -> object:
        j, (prefix, ending_label, ending_blank) = option.extra
        child = copy.copy(beam.state)
        child.advance(self.guide.token_to_label[option.token], prefix[j], ending_label[:, j], ending_blank[:, j])
        return child

    def rank(self, score: float, hyp: Decoded) -> float:
        return score

    def rank_cut(self, score: float, hyp: Decoded, state: object, logp: torch.Tensor) -> float:
        return score + self.guide.end_score(state, logp, self.eos_id, hyp.tokens)

    def stop(self, finished: list[tuple[float, Decoded]], beams: list[Beam], beam_size: int) -> bool:
        best_done = max((f[0] for f in finished), default=-float("inf"))
        return not beams or best_done >= beams[0].score + self.guide.word_bonus


@torch.no_grad()
def beam_search(step: Step, limit: int, beam_size: int, scorer: Scorer, rules: Rules = log_probs,
                cut_loop: Callable[[Decoded], bool] | None = None, bias: Bias | None = None) -> Decoded:
    """Beam search for one segment (the step's prompt a batch of 1), its beams as the batch;
    the best finished hypothesis by `scorer`. With one beam and LogProbScorer it equals
    `greedy`. With `bias`, the scorer sees the log-probs with the user's terms boosted, and a
    beam that leaves a term unfinished (or ends inside one) loses the bonus it got for it."""
    logits = step.prefill()
    beams = [Beam(0.0, Decoded([], []), scorer.initial(), bias.initial() if bias is not None else None)]
    finished: list[tuple[float, Decoded]] = []

    def taken_back(beam: Beam) -> float:
        return bias.end(beam.match) if bias is not None else 0.0

    for _ in range(limit):
        logp = rules(logits, [b.hyp.tokens for b in beams])
        scored = logp if bias is None else logp + bias.boosts([b.match for b in beams], logp.shape[-1], logp.device)
        owner = {id(b.hyp): b for b in beams}
        finished += [(rank + taken_back(owner[id(h)]), h) for rank, h in scorer.ends(beams, scored)]
        options = scorer.options(beams, scored, beam_size)
        moves = {}
        if bias is not None:
            for opt in options:
                if opt.ends:
                    opt.score += taken_back(beams[opt.beam])
                else:
                    moves[id(opt)] = bias.advance(beams[opt.beam].match, opt.token)
                    opt.score += moves[id(opt)][1]
            options.sort(key=lambda o: -o.score)
        new: list[Beam] = []
        sources: list[int] = []
        for opt in options:
            if len(new) == beam_size or opt.score == -float("inf"):
                break
            parent = beams[opt.beam].hyp
            lp = float(logp[opt.beam, opt.token])
            if opt.ends:
                ended = Decoded(list(parent.tokens), list(parent.logprobs), eos_logprob=lp)
                finished.append((scorer.rank(opt.score, ended), ended))
                continue
            hyp = Decoded(parent.tokens + [opt.token], parent.logprobs + [lp])
            state = scorer.advance(beams[opt.beam], opt)
            match = moves[id(opt)][0] if bias is not None else None
            if cut_loop is not None and cut_loop(hyp):
                finished.append((scorer.rank_cut(opt.score + (bias.end(match) if bias is not None else 0.0), hyp,
                                                 state, scored[opt.beam]), hyp))
                continue
            new.append(Beam(opt.score, hyp, state, match))
            sources.append(opt.beam)
        if scorer.stop(finished, new, beam_size):
            break
        step.reorder(sources)
        beams = new
        logits = step.next(torch.tensor([b.hyp.tokens[-1] for b in beams], device=logits.device))
    else:
        for b in beams:
            hyp = Decoded(b.hyp.tokens, b.hyp.logprobs, b.hyp.flags + ["max-length"])
            finished.append((scorer.rank(b.score + taken_back(b), hyp), hyp))
    if not finished:
        return beams[0].hyp
    return max(finished, key=lambda f: f[0])[1]
