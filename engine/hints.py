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
