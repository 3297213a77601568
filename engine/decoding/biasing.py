"""Contextual biasing: a user's terms boosted while decoding, for every model family.

Why: a drug name the model has never seen gets a low score at each of its word pieces,
and a prompt alone rarely lifts it enough. As in keyword boosting (a prefix tree of the
terms' token sequences; NeMo's word boosting, Granite Speech's keyword lists), each token
that continues a term gets `bonus` added to its log-prob while decoding. The bonus a
hypothesis collected is taken back when it leaves a term unfinished, so beam search
ranks a half-written term as if it had never been boosted.

A term is tried in its case variants ("amlodipine", "Amlodipine" and the user's spelling;
not UPPER CASE, which a decoder would then write), each after a space and, at the start of
the text, without one. Terms
that are everyday words ("stop", "start": wordfreq Zipf frequency >= EVERYDAY_ZIPF) are not
boosted: the model knows them, and boosting one could turn a word that was said into
another that was not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

# An everyday word (about once in 30,000 words of English or more often; "stop" 5.5,
# "budget" 4.8, "Kennedy" 4.3, "sertraline" 2.1): the model needs no help with it.
EVERYDAY_ZIPF = 4.5
# Added to the log-prob of each token that continues a term (nats). bench/biasing.py --bonus.
DEFAULT_BONUS = 2.0
# Terms boosted at most; a longer list keeps its first ones (the trie's size, not the speed,
# is what grows: a step costs the same with 10 or 100,000 terms).
MAX_BIASED_TERMS = 100_000


@dataclass
class TermTrie:
    """The terms' token sequences as a prefix tree: node 0 is the root after a space (or
    mid-text), node 1 the root at the very start of the text."""
    children: list[dict[int, int]] = field(default_factory=lambda: [{}, {}])
    complete: list[bool] = field(default_factory=lambda: [False, False])
    terms: int = 0  # how many of the user's terms are in it
    ids: dict[int, torch.Tensor] = field(default_factory=dict)  # node -> its children's tokens (see _ids)

    def add(self, root: int, tokens: list[int]) -> None:
        node = root
        for t in tokens:
            nxt = self.children[node].get(t)
            if nxt is None:
                nxt = len(self.children)
                self.children[node][t] = nxt
                self.children.append({})
                self.complete.append(False)
            node = nxt
        if node > 1:
            self.complete[node] = True

    def __len__(self) -> int:
        return self.terms


def everyday(term: str) -> bool:
    """Whether every word of `term` is an everyday English word (see EVERYDAY_ZIPF)."""
    from wordfreq import zipf_frequency

    words = term.split()
    return bool(words) and all(zipf_frequency(w, "en") >= EVERYDAY_ZIPF for w in words)


def variants(term: str) -> list[str]:
    """The spellings a term is boosted in: as written, lower case, Capitalised."""
    out = [term, term.lower(), term[:1].upper() + term[1:].lower()]
    return list(dict.fromkeys(out))


def build_trie(terms: list[str], encode: Callable[[list[str]], list[list[int]]],
               text_below: int | None = None) -> TermTrie:
    """The prefix tree of `terms` (everyday words, blanks and repeats left out) as `encode`
    tokenizes them (many texts at once). Token sequences that reach `text_below` or beyond
    (special tokens) are skipped."""
    trie = TermTrie()
    seen, kept = set(), []
    for term in terms[:MAX_BIASED_TERMS]:
        term = " ".join(term.split())
        if term and term.lower() not in seen and not everyday(term):
            seen.add(term.lower())
            kept.append(term)
    trie.terms = len(kept)
    texts = [(root, text) for term in kept for v in variants(term) for root, text in ((0, " " + v), (1, v))]
    for (root, _), tokens in zip(texts, encode([t for _, t in texts])):
        if tokens and (text_below is None or max(tokens) < text_below):
            trie.add(root, tokens)
    return trie


def batch_encoder(tokenizer) -> Callable[[list[str]], list[list[int]]]:
    """Texts to token ids without special tokens, all at once where `tokenizer` is a fast
    (Rust) one: 100,000 terms take seconds instead of a minute."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return lambda texts: [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
    return lambda texts: [tokenizer.encode(t, add_special_tokens=False) for t in texts]


@dataclass(frozen=True)
class Match:
    """Where one hypothesis stands in the trie."""
    node: int = 1  # 1: nothing written yet; 0: between terms; else inside a term
    pending: float = 0.0  # bonus given to the unfinished term so far (taken back if it is left)


@dataclass
class Bias:
    """The bonus each next token gets given a hypothesis's `Match`, and how a token moves it.

    Only text tokens (below `text_below`: Whisper's timestamps are not text) take part; any
    other token ends a match."""
    trie: TermTrie
    bonus: float = DEFAULT_BONUS
    text_below: int | None = None

    def initial(self) -> Match:
        return Match()

    def boosts(self, states: list[Match], vocab: int, device=None) -> torch.Tensor:
        """(rows, vocab): the bonus each token gets after each row's state."""
        out = torch.zeros(len(states), vocab, device=device)
        for i, s in enumerate(states):
            for node in {s.node, 0} if s.node != 1 else {1, 0}:
                ids = _ids(self.trie, node)
                if len(ids):
                    out[i, ids.to(out.device)] = self.bonus
        return out

    def advance(self, s: Match, token: int) -> tuple[Match, float]:
        """The state after `token`, and the score change it brings besides its bonus: minus the
        pending bonus where `token` leaves an unfinished term."""
        if self.text_below is not None and token >= self.text_below:
            return Match(0 if s.node != 1 else 1), -s.pending
        nxt = self.trie.children[s.node].get(token)
        if nxt is not None and s.node > 1:
            if self.trie.complete[nxt] and not self.trie.children[nxt]:
                return Match(0), 0.0  # a whole term: the bonus stays
            return Match(nxt, 0.0 if self.trie.complete[nxt] else s.pending + self.bonus), 0.0
        taken = -s.pending if s.node > 1 and not self.trie.complete[s.node] else 0.0
        for root in ((1, 0) if s.node == 1 else (0,)):
            start = self.trie.children[root].get(token)
            if start is not None:
                done = self.trie.complete[start]
                return (Match(0) if done and not self.trie.children[start]
                        else Match(start, 0.0 if done else self.bonus)), taken
        return Match(0), taken

    def end(self, s: Match) -> float:
        """The score change of ending the text in state `s`: an unfinished term's bonus goes."""
        return -s.pending if s.node > 1 and not self.trie.complete[s.node] else 0.0


def _ids(trie: TermTrie, node: int) -> torch.Tensor:
    """The tokens that continue `node`, as an index tensor (made once per node)."""
    if node not in trie.ids:
        trie.ids[node] = torch.tensor(sorted(trie.children[node]), dtype=torch.long)
    return trie.ids[node]


def make_bias(terms: list[str] | None, tokenizer, text_below: int | None, cache: dict,
              bonus: float = DEFAULT_BONUS) -> Bias | None:
    """A `Bias` over `terms` (None when none is left to boost), its trie kept in `cache` for
    the next call with the same list (a file's clips share one)."""
    if not terms:
        return None
    key = tuple(terms)
    if key not in cache:
        cache.clear()
        cache[key] = build_trie(list(terms), batch_encoder(tokenizer), text_below)
    trie = cache[key]
    return Bias(trie, bonus, text_below) if len(trie) else None
