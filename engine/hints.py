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

# A term goes into a clip's prompt only when something in the hint-free draft of that clip
# looks like it (rapidfuzz ratio 0-100, spaces ignored). Chosen with
# `bench/hints.py --calibrate` on the clinical *training* clips and the rehearsal sentences,
# never on the test clips (docs/hints.md): at 50, 81% of the terms said pass and about 7 of
# the 40 that are not; fuzzy spelling alone cannot tell them apart better, hence
# `uses_terms`, the check that a hinted transcript put a term where the draft heard it.
MIN_HINT_SCORE = 50.0
# A term may bring this many other changed words with it ("apixa band five" -> "apixaban 5").
MAX_WORDS_AROUND_TERM = 2


def hint_scores(terms: list[str], draft: str) -> list[float]:
    """How much each term looks like something in `draft`, 0-100.

    A term the recogniser got wrong still resembles what it wrote ("amlodipine" vs "am low
    de peen"), so each term is scored by its best fuzzy match against the draft's words and
    word pairs and triples, spaces ignored.
    """
    from rapidfuzz import fuzz

    from engine.metrics import normalize

    words = normalize(draft).split()
    grams = {"".join(words[i:i + n]) for n in (1, 2, 3) for i in range(len(words) - n + 1)}

    def score(term: str) -> float:
        t = "".join(normalize(term).split())
        return max((fuzz.ratio(t, g) for g in grams), default=0.0)

    return [score(t) for t in terms]


def select_hints(terms: list[str], draft: str, limit: int = MAX_PROMPT_TERMS,
                 min_score: float = MIN_HINT_SCORE) -> list[str]:
    """At most `limit` terms that look like something in `draft` (a first transcript of the
    same speech, made without hints), best first when there are more, kept in the user's
    order. Terms scoring under `min_score` are left out: possibly all of them."""
    scores = hint_scores(terms, draft)
    ok = [i for i in range(len(terms)) if scores[i] >= min_score]
    best = sorted(ok, key=lambda i: (-scores[i], i))[:limit]
    return [terms[i] for i in sorted(best)]


def said_terms(text: str, terms: list[str]) -> list[str]:
    """The terms that occur in `text` as whole words (after the metrics' normalisation)."""
    from engine.metrics import normalize

    padded = f" {normalize(text)} "
    return [t for t, n in ((t, normalize(t)) for t in terms) if n and f" {n} " in padded]


def uses_terms(draft: str, hinted: str, terms: list[str]) -> bool:
    """Whether `hinted` (a transcript made with `terms` in the prompt) fixes the draft with a
    term, and only where the draft heard something like it.

    The two are aligned word by word. Every changed stretch of `hinted` that writes a term
    must replace draft words that look like it (fuzzy score >= MIN_HINT_SCORE, spaces
    ignored) and bring at most MAX_WORDS_AROUND_TERM other words; at least one such stretch
    must exist. A prompt full of drug names makes a decoder write "the venlafaxine" for
    "The band played until well after midnight": that stretch fails, and the draft stands.
    """
    import difflib

    from rapidfuzz import fuzz

    from engine.metrics import normalize

    d, h = normalize(draft).split(), normalize(hinted).split()
    wanted = [normalize(t).split() for t in terms if normalize(t)]
    fixed = False
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, d, h, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        span = h[j1:j2]
        written = [w for w in wanted if any(span[k:k + len(w)] == w for k in range(len(span) - len(w) + 1))]
        if not written:
            continue
        others = len(span) - sum(len(w) for w in written)
        if others > MAX_WORDS_AROUND_TERM or fuzz.ratio("".join(d[i1:i2]), "".join(span)) < MIN_HINT_SCORE:
            return False
        fixed = True
    return fixed
