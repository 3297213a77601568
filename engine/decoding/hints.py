"""User vocabulary lists (drug names, people, places) read safely from disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import StenoError

MAX_TERMS = 5000

# How the Transcriber uses a word list (`Transcriber.hint_mode`, `steno transcribe --hint-mode`);
# docs/biasing.md has the measurements behind the default.
HINT_MODES = {
    "bias": "one decode with the terms boosted (engine.decoding.biasing)",
    "prompt": "a draft, then the terms that look like something in it in the prompt, kept where the guard agrees",
    "both": "as prompt, the picked terms also boosted",
    "score": "one plain decode; the list used only by the term pass (engine.decoding.term_pass)",
}
DEFAULT_HINT_MODE = "score"
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
# A term may not replace draft words the model heard this surely (each word's probability
# is its least likely token's). `bench/hints.py --calibrate-guard` on training and rehearsal
# clips (docs/hints.md): every right term edit replaced words the draft gave at most 0.46
# (whisper-base, 46 edits) or 0.77 (tiny.en, 36); above 1 turns the test off.
MAX_REPLACED_CONFIDENCE = 0.9
# Draft words a hinted re-decode may drop outside its term edits ("um", a repeated "the"):
# more, and the draft stands, whatever the hinted text fixed.
MAX_WORDS_LOST = 1


def hint_scores(terms: list[str], draft: str) -> list[float]:
    """How much each term looks like something in `draft`, 0-100.

    A term the recogniser got wrong still resembles what it wrote ("amlodipine" vs "am low
    de peen"), so each term is scored by its best fuzzy match against the draft's words and
    word pairs and triples, spaces ignored.
    """
    from rapidfuzz import fuzz

    from engine.text.metrics import normalize

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
    from engine.text.metrics import normalize

    padded = f" {normalize(text)} "
    return [t for t, n in ((t, normalize(t)) for t in terms) if n and f" {n} " in padded]


def word_confidences(token_texts: list[str], logprobs: list[float]) -> list[float] | None:
    """The probability of each word of the normalised transcript, as its least likely token's.

    Words are the tokens between leading spaces, each normalised as the metrics do (one
    written word may give several: "5mg" -> "five mg"). None when the words so made are not
    the normalised transcript's (the normaliser joined or split across tokens).
    """
    import math

    from engine.text.metrics import normalize

    words: list[tuple[str, float]] = []
    for text, lp in zip(token_texts, logprobs):
        if not words or text.startswith(" ") or not words[-1][0]:
            words.append((text, lp))
        else:
            words[-1] = (words[-1][0] + text, min(words[-1][1], lp))
    out = [(w, math.exp(lp)) for word, lp in words for w in normalize(word).split()]
    if [w for w, _ in out] != normalize("".join(token_texts)).split():
        return None
    return [c for _, c in out]


@dataclass
class TermEdit:
    """A stretch where a hinted transcript differs from its draft and writes a term."""
    draft_words: list[str]  # what the draft has there (normalised), possibly nothing
    hinted_words: list[str]
    terms: list[str]  # the terms written in it (normalised)
    score: float  # how much the two stretches look alike, 0-100 (spaces ignored)
    others: int  # words of the hinted stretch that belong to no term
    draft_confidence: float | None  # the least probable draft word of the stretch (None: unknown or empty)
    hinted_confidence: float | None = None  # the least probable word of the hinted stretch (None: unknown)


def term_edits(draft: str, hinted: str, terms: list[str], confidences: list[float] | None = None,
               hinted_confidences: list[float] | None = None) -> list[TermEdit]:
    """The changed stretches (word alignment, difflib) in which `hinted` writes one of `terms`.
    `confidences` / `hinted_confidences`: `word_confidences` of the draft / the hinted text."""
    import difflib

    from rapidfuzz import fuzz

    from engine.text.metrics import normalize

    d, h = normalize(draft).split(), normalize(hinted).split()
    if confidences is not None and len(confidences) != len(d):
        confidences = None
    if hinted_confidences is not None and len(hinted_confidences) != len(h):
        hinted_confidences = None
    wanted = [normalize(t).split() for t in terms if normalize(t)]
    edits = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, d, h, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        span = h[j1:j2]
        written = [w for w in wanted if any(span[k:k + len(w)] == w for k in range(len(span) - len(w) + 1))]
        if written:
            edits.append(TermEdit(d[i1:i2], span, [" ".join(w) for w in written],
                                  fuzz.ratio("".join(d[i1:i2]), "".join(span)), len(span) - sum(map(len, written)),
                                  min(confidences[i1:i2]) if confidences is not None and i2 > i1 else None,
                                  min(hinted_confidences[j1:j2]) if hinted_confidences is not None else None))
    return edits


def uses_terms(draft: str, hinted: str, terms: list[str], confidences: list[float] | None = None) -> bool:
    """Whether `hinted` (a transcript made with `terms` in the prompt) fixes the draft with a
    term, and only where the draft heard something like it.

    The two are aligned word by word (`term_edits`). Every changed stretch of `hinted` that
    writes a term must replace draft words that look like it (fuzzy score >= MIN_HINT_SCORE,
    spaces ignored) and bring at most MAX_WORDS_AROUND_TERM other words; where the draft's
    word `confidences` are known, the words replaced must not all have been heard surely
    (the least probable under MAX_REPLACED_CONFIDENCE). At least one such stretch must exist,
    and elsewhere the hinted text may drop at most MAX_WORDS_LOST of the draft's words.
    A prompt full of drug names makes a decoder write "the venlafaxine" for "The band played
    until well after midnight": that stretch fails, and the draft stands.
    """
    edits = term_edits(draft, hinted, terms, confidences)
    return bool(edits) and all(acceptable(e) for e in edits) and words_lost(draft, hinted, terms) <= MAX_WORDS_LOST


def words_lost(draft: str, hinted: str, terms: list[str]) -> int:
    """Draft words the hinted text drops outside the stretches where it writes a term: a
    re-decode that fixes a drug name must not lose a sentence elsewhere in the clip."""
    import difflib

    from engine.text.metrics import normalize

    d, h = normalize(draft).split(), normalize(hinted).split()
    wanted = [normalize(t).split() for t in terms if normalize(t)]
    lost = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, d, h, autojunk=False).get_opcodes():
        span = h[j1:j2]
        if tag != "equal" and not any(span[k:k + len(w)] == w for w in wanted for k in range(len(span) - len(w) + 1)):
            lost += max(0, (i2 - i1) - (j2 - j1))
    return lost


def acceptable(edit: TermEdit, min_score: float = MIN_HINT_SCORE, max_confidence: float = MAX_REPLACED_CONFIDENCE) -> bool:
    """One term edit passes the guard of `uses_terms`."""
    sure = edit.draft_confidence is not None and edit.draft_confidence >= max_confidence
    return edit.others <= MAX_WORDS_AROUND_TERM and edit.score >= min_score and not sure


def heard_surely(draft: str, confidences: list[float] | None) -> bool:
    """Every word of the draft was heard surely: `uses_terms` would refuse any term edit
    (each replaces words under MAX_REPLACED_CONFIDENCE, and an inserted term looks like
    nothing), so the hinted decode need not run."""
    from engine.text.metrics import normalize

    return confidences is not None and len(confidences) == len(normalize(draft).split()) \
        and min(confidences, default=1.0) >= MAX_REPLACED_CONFIDENCE
