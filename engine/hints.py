"""User vocabulary lists (drug names, people, places) read safely from disk."""

from __future__ import annotations

from pathlib import Path

from engine.errors import StenoError

MAX_TERMS = 5000
MAX_TERM_CHARS = 100


def read_word_list(path: str | Path) -> list[str]:
    """One term per line (commas also separate); blank lines and '#' comments ignored."""
    path = Path(path)
    if not path.is_file():
        raise StenoError("word list not found", path)
    if path.stat().st_size > 5 << 20:
        raise StenoError("word list is over 5 MB: is this really a word list?", path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise StenoError(f"word list is not UTF-8 text (byte {e.start}); save it as UTF-8", path) from None
    terms, seen = [], set()
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for term in line.split(","):
            term = " ".join(term.split())
            if term and len(term) <= MAX_TERM_CHARS and term.lower() not in seen:
                seen.add(term.lower())
                terms.append(term)
    if not terms:
        raise StenoError("word list has no terms", path)
    if len(terms) > MAX_TERMS:
        raise StenoError(f"word list has {len(terms)} terms; at most {MAX_TERMS} are supported", path)
    return terms


# A prompt holds this many terms comfortably (Whisper's previous-text window is ~220 tokens);
# a model config can set fewer (`PromptConfig.max_hint_terms`: the default bridge model was
# trained with up to 7), and a longer list is cut per clip to the most relevant.
MAX_PROMPT_TERMS = 40


def select_hints(terms: list[str], draft: str, limit: int = MAX_PROMPT_TERMS) -> list[str]:
    """The `limit` terms that look most like something in `draft` (a first transcript of the
    same speech, made without hints), kept in the user's order.

    A term the recogniser got wrong still resembles what it wrote ("amlodipine" vs "am low
    de peen"), so each term is scored by its best fuzzy match against the draft's words and
    word pairs and triples, spaces ignored.
    """
    if len(terms) <= limit:
        return list(terms)
    from rapidfuzz import fuzz

    from engine.metrics import normalize

    words = normalize(draft).split()
    grams = {"".join(words[i:i + n]) for n in (1, 2, 3) for i in range(len(words) - n + 1)}

    def score(term: str) -> float:
        t = "".join(normalize(term).split())
        return max((fuzz.ratio(t, g) for g in grams), default=0.0)

    scores = [score(t) for t in terms]
    best = sorted(range(len(terms)), key=lambda i: (-scores[i], i))[:limit]
    return [terms[i] for i in sorted(best)]
