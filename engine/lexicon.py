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
import unicodedata
from dataclasses import dataclass, field

import numpy as np

_EDGES = re.compile(r"^[^\w']+|[^\w']+$")
_PARTS = re.compile(r"[-\u2010\u2011\u2013/]")


def word_key(word: str) -> str:
    """The form a word list holds: lower case, curly apostrophes straightened, no
    surrounding punctuation ("Dashwood," -> "dashwood")."""
    w = unicodedata.normalize("NFKC", word).lower().replace("\u2019", "'")
    return _EDGES.sub("", w).strip("'")


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
            self.extra.update(k for k in (word_key(w) for w in term.split()) if k)

    def knows(self, word: str) -> bool:
        """True for list words, numbers, hyphenated words whose parts are all known, a known
        word with a possessive 's, and anything outside the Latin script (not judged)."""
        key = word_key(word)
        if not key or any(c.isdigit() for c in key) or not key.isascii():
            return True
        if key in self.words or key in self.extra:
            return True
        if key.endswith("'s") and self.knows(key[:-2]):
            return True
        parts = [p for p in _PARTS.split(key) if p]
        return len(parts) > 1 and all(self.knows(p) for p in parts)


_OPEN_WORD = re.compile(r"[\w']+$")


def closes_word(text: str) -> bool:
    """A token that starts with a space or punctuation ends the word written before it."""
    return bool(text) and not (text[0].isalnum() or text[0] in "'_")


@dataclass
class WordEnds:
    """Charges `penalty` each time decoding finishes a word the lexicon does not know: when
    the next token starts a new word or punctuation, or the transcript ends. Each run of
    letters is judged once ("cold-hearted": "cold", then "hearted")."""
    texts: list[str]  # decoded text of each LM token ("" for tokens never written)
    lexicon: Lexicon
    penalty: float

    def __post_init__(self):
        self.closes = np.array([closes_word(t) for t in self.texts])

    def open_word(self, tokens: list[int], look_back: int = 16) -> str:
        text = "".join(self.texts[t] for t in tokens[-look_back:])
        found = _OPEN_WORD.search(text)
        return found.group(0) if found else ""

    def _cost(self, tokens: list[int]) -> float:
        word = self.open_word(tokens)
        return 0.0 if not word or self.lexicon.knows(word) else -self.penalty

    def costs(self, tokens: list[int], candidates: np.ndarray) -> np.ndarray:
        """Score change of writing each candidate token after `tokens`."""
        cost = self._cost(tokens)
        return cost * self.closes[candidates] if cost else np.zeros(len(candidates))

    def end_cost(self, tokens: list[int]) -> float:
        return self._cost(tokens)


def token_texts(tokenizer, size: int, ids=None) -> list[str]:
    """What each token id below `size` writes on its own; with `ids`, only those (the tokens
    a CTC head can write) are decoded and the rest are ""."""
    texts = [""] * size
    for i in range(size) if ids is None else ids:
        texts[int(i)] = tokenizer.decode([int(i)])
    return texts
