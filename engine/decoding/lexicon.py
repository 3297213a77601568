"""Which written words are English words: the check behind `decode.unknown_word_penalty`.

Why: a CTC head trained on word pieces sometimes spells a word twice or half ("ratherther",
"gaveve", "toposed") where the speech is unclear, and joint decoding follows it. A finished
word that no word list knows costs the transcript a fixed penalty, so a real word with
almost the same score wins; a clearly spoken name or drug still gets through. The list is
wordfreq's English list (about 321,000 words, drug names and surnames included) plus the
user's vocabulary hints.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import numpy as np

from engine.text.metrics import normalize


@functools.lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """wordfreq's large English list (all words with a Zipf frequency of 1 or more)."""
    from wordfreq import get_frequency_dict

    return frozenset(get_frequency_dict("en", "large"))


@dataclass
class Lexicon:
    words: frozenset[str]
    extra: set[str] = field(default_factory=set)  # the user's vocabulary, hints

    @classmethod
    def english(cls, extra: list[str] | tuple[str, ...] = ()) -> "Lexicon":
        lex = cls(english_words())
        lex.add(extra)
        return lex

    def add(self, terms) -> None:
        """Every word of each term (a hint may be "left ventricular hypertrophy")."""
        for term in terms:
            self.extra.update(normalize(term).split())

    def knows(self, word: str) -> bool:
        """True when every word of `word`, normalized as for scoring ("Dashwood," ->
        "dashwood", "cold-hearted" -> "cold hearted"), is known."""
        return all(self._knows(w) for w in normalize(word).split())

    def _knows(self, key: str) -> bool:
        """List words, numbers, a known word with a possessive 's, and anything outside the
        Latin script (not judged)."""
        if any(c.isdigit() for c in key) or not key.isascii() or key in self.words or key in self.extra:
            return True
        return key.endswith("'s") and self._knows(key[:-2])


_OPEN_WORD = re.compile(r"[\w']+$")


def closes_word(text: str) -> bool:
    """A token that starts with a space or punctuation ends the word written before it."""
    return bool(text) and not (text[0].isalnum() or text[0] in "'_")


def starts_word(text: str) -> bool:
    """A token that begins a new word after a space (" amiable", " 1"). (The first token of a
    transcript begins one whenever it starts with a letter or digit: TokenTexts.leads.)"""
    return text[:1] == " " and text[1:2].isalnum()


@dataclass
class TokenTexts:
    """What each LM token writes on its own, and whether it ends the word before it: made
    once per model, since decoding a whole vocabulary is slow."""
    texts: list[str]  # "" for tokens never written
    closes: np.ndarray
    starts: np.ndarray  # starts_word of each text
    leads: np.ndarray  # begins a word if it is the first token: a letter or digit, after a space or not

    @classmethod
    def of(cls, tokenizer, size: int, ids=None) -> "TokenTexts":
        """Token ids below `size`; with `ids`, only those (the tokens a CTC head can write)
        are decoded and the rest are ""."""
        texts = [""] * size
        for i in range(size) if ids is None else ids:
            texts[int(i)] = tokenizer.decode([int(i)])
        return cls.from_texts(texts)

    @classmethod
    def from_texts(cls, texts: list[str]) -> "TokenTexts":
        return cls(texts, np.array([closes_word(t) for t in texts]), np.array([starts_word(t) for t in texts]),
                   np.array([t.lstrip(" ")[:1].isalnum() for t in texts]))


@dataclass
class WordEnds:
    """Charges `penalty` each time decoding finishes a word the lexicon does not know: when
    the next token starts a new word or punctuation, or the transcript ends. Each run of
    letters is judged once ("cold-hearted": "cold", then "hearted")."""
    tokens: TokenTexts
    lexicon: Lexicon
    penalty: float

    def open_word(self, written: list[int], look_back: int = 16) -> str:
        text = "".join(self.tokens.texts[t] for t in written[-look_back:])
        found = _OPEN_WORD.search(text)
        return found.group(0) if found else ""

    def end_cost(self, written: list[int]) -> float:
        """Score change of ending the open word of `written` (by a new word, punctuation or eos)."""
        word = self.open_word(written)
        return 0.0 if not word or self.lexicon.knows(word) else -self.penalty

    def costs(self, written: list[int], candidates: np.ndarray) -> np.ndarray:
        """Score change of writing each candidate token after `written`."""
        cost = self.end_cost(written)
        return cost * self.tokens.closes[candidates] if cost else np.zeros(len(candidates))
