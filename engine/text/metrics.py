"""How good a transcript is: word and character error rates, and recall of key terms.

Error rates are counted over the whole set (total edits / total reference length), not
averaged per utterance, so short clips do not outweigh long ones. Both sides go through
the same `normalize` first, so casing and punctuation style are not counted as errors.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import jiwer
from num2words import num2words

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "`": "'"})
_HYPHENS = str.maketrans({c: " " for c in "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"})
_NUMBER_MARKS = ".,:"  # kept between two digits: 2.5, 1,000, 10:30


def normalize(text: str) -> str:
    """Text as compared for scoring.

    1. Unicode NFKC (full-width letters, ligatures and the like become plain ones).
    2. Lowercase.
    3. Curly and other apostrophes (’ ‘ ʼ ′ `) become '.
    4. Hyphens and dashes (- ‐ ‑ ‒ – — ― −) become a space: "follow-up" = "follow up".
    5. Other punctuation and symbols (Unicode P* and S*) become a space, except an
       apostrophe between two letters or digits ("don't", "o'clock") and . , : between
       two digits ("2.5", "1,000", "10:30"), and % becomes " percent".
    6. Numbers in digits are spelled as our training texts spell them (num2words, hyphens
       and commas dropped), so "5" and "five" agree: "1,000" -> "one thousand", "2.5" ->
       "two point five", "3rd" -> "third", "10:30" -> "ten thirty", "50mg" -> "fifty mg",
       and 1100-2099 read as years: "1990" -> "nineteen ninety".
    7. Runs of whitespace become one space; no space at either end.
    """
    t = unicodedata.normalize("NFKC", text).lower().translate(_APOSTROPHES).translate(_HYPHENS)
    t = t.replace("%", " percent ")
    out = []
    for i, c in enumerate(t):
        if unicodedata.category(c)[0] in "PS":
            prev = t[i - 1] if i else ""
            nxt = t[i + 1] if i + 1 < len(t) else ""
            inside_word = c == "'" and prev.isalnum() and nxt.isalnum()
            in_number = c in _NUMBER_MARKS and prev.isdigit() and nxt.isdigit()
            out.append(c if inside_word or in_number else " ")
        else:
            out.append(c)
    return " ".join(_NUMBER.sub(_spelled, "".join(out)).split())


_NUMBER = re.compile(r"(\d[\d,]*(?:[.:]\d+)*)(st|nd|rd|th)?")


def _spelled(match: re.Match) -> str:
    digits, ordinal = match.group(1).replace(",", ""), match.group(2)
    if len(digits) > 15:  # an identifier, not a quantity (and past what a float holds): digit by digit
        text = " ".join("point" if c in ".:" else num2words(int(c)) for c in digits)
    elif digits.count(".") + digits.count(":") > 1:  # a version or a date: 1.2.3 -> one two three
        text = " ".join(num2words(int(part)) for part in re.split("[.:]", digits))
    elif ":" in digits:  # a time of day: 10:30 -> ten thirty, 10:00 -> ten, 9:05 -> nine oh five
        hours, minutes = (int(part) for part in digits.split(":"))
        text = num2words(hours) + ("" if minutes == 0 else f" oh {num2words(minutes)}" if minutes < 10
                                   else f" {num2words(minutes)}")
    elif "." in digits:
        text = num2words(float(digits))
    elif ordinal:
        text = num2words(int(digits), to="ordinal")
    elif len(digits) == 4 and 1100 <= int(digits) <= 2099:
        text = num2words(int(digits), to="year")
    else:
        text = num2words(int(digits))
    return f" {text.replace('-', ' ').replace(',', '')} "


@dataclass
class ErrorRates:
    wer: float  # word edits / reference words; inf if the references are empty but the hypotheses are not
    cer: float  # character edits / reference characters (spaces included), likewise
    words: int  # reference words, after normalization
    chars: int  # reference characters, after normalization


def _rate(errors: int, total: int) -> float:
    if total:
        return errors / total
    return 0.0 if errors == 0 else float("inf")


def error_rates(references: list[str], hypotheses: list[str]) -> ErrorRates:
    """Corpus WER and CER of `hypotheses` against the paired `references`, on normalized text."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    refs = [normalize(r) for r in references]
    hyps = [normalize(h) for h in hypotheses]
    words = sum(len(r.split()) for r in refs)
    chars = sum(len(r) for r in refs)
    word_errors = char_errors = 0
    pairs = [(r, h) for r, h in zip(refs, hyps) if r]
    for r, h in zip(refs, hyps):
        if not r:  # nothing said: every hypothesis word/char is an insertion
            word_errors += len(h.split())
            char_errors += len(h)
    if pairs:
        pr, ph = [p[0] for p in pairs], [p[1] for p in pairs]
        w = jiwer.process_words(pr, ph)
        c = jiwer.process_characters(pr, ph)
        word_errors += w.substitutions + w.deletions + w.insertions
        char_errors += c.substitutions + c.deletions + c.insertions
    return ErrorRates(_rate(word_errors, words), _rate(char_errors, chars), words, chars)


def _count(seq: list[str], term: list[str]) -> int:
    n = len(term)
    return sum(1 for i in range(len(seq) - n + 1) if seq[i : i + n] == term)


def term_recall(terms: list[str], references: list[str], hypotheses: list[str]) -> float | None:
    """Share of the terms' occurrences in the references that the paired hypothesis also has.

    Terms match whole words on normalized text ("pain" does not match "painful"); a
    multi-word term matches as a phrase. A term said twice in a reference but once in its
    hypothesis counts one hit of two. None when no term occurs in any reference.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    keys = {tuple(normalize(t).split()) for t in terms}
    keys.discard(())
    found = total = 0
    for r, h in zip(references, hypotheses):
        rw, hw = normalize(r).split(), normalize(h).split()
        for key in keys:
            n_ref = _count(rw, list(key))
            if n_ref:
                total += n_ref
                found += min(n_ref, _count(hw, list(key)))
    return found / total if total else None
