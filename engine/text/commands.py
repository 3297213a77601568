"""Spoken commands while dictating: "comma", "new paragraph", "scratch that", "cap" ...

A post-processing layer over the recognised text, so it works with every model and is
tested on its own. The recognised words are read left to right; a word (or phrase) that
is a command edits the text built so far instead of being written. "literal" writes the
next word as a word ("literal comma" -> "comma"). Switch it off and the text is left alone.

"next field" / "previous field" move between the fields of a template (app/templates.py).
`apply_commands` writes them as words, since plain dictation has no fields; `split_fields`
cuts dictated text at them for the template editor, and runs `apply_commands` on each piece.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PUNCTUATION = {
    ("comma",): ",", ("period",): ".", ("full", "stop"): ".", ("question", "mark"): "?",
    ("exclamation", "mark"): "!", ("exclamation", "point"): "!", ("colon",): ":", ("semicolon",): ";",
    ("semi", "colon"): ";", ("hyphen",): "-", ("dash",): " -",
}
BREAKS = {("new", "line"): "\n", ("newline",): "\n", ("new", "paragraph"): "\n\n", ("next", "paragraph"): "\n\n"}
QUOTES = {("open", "quote"): "open", ("begin", "quote"): "open", ("close", "quote"): "close",
          ("end", "quote"): "close", ("unquote",): "close"}
EDITS = {("scratch", "that"): "scratch", ("delete", "last", "word"): "delete_word", ("undo", "that"): "scratch"}
CASE = {("all", "caps"): "upper", ("cap",): "cap", ("capital",): "cap", ("no", "caps"): "lower"}
LITERAL = ("literal",)
FIELD_MOVES = {("next", "field"): 1, ("previous", "field"): -1}

_ALL = [*PUNCTUATION, *BREAKS, *QUOTES, *EDITS, *CASE, LITERAL]
_MAX_LEN = max(len(k) for k in _ALL)
_STRIP = re.compile(r"^[^\w']+|[^\w']+$")
SENTENCE_END = ".?!"


@dataclass
class _Text:
    pieces: list[str] = field(default_factory=list)  # words, punctuation marks, breaks, quotes
    phrase_starts: list[int] = field(default_factory=list)  # where each phrase began (for "scratch that")

    def render(self) -> str:
        out = ""
        for p in self.pieces:
            if not out:
                out = p.lstrip(" ")
            elif p in (",", ".", "?", "!", ":", ";", "-") or p.startswith("\n") or p == "\u201d" \
                    or out.endswith(("\n", "\u201c", "-")):
                out += p
            else:
                out += " " + p.lstrip(" ") if not p.startswith(" ") else p
        return out


def _clean(word: str) -> str:
    return _STRIP.sub("", word).lower()


def _sentence_start(pieces: list[str]) -> bool:
    for p in reversed(pieces):
        if p == "\u201c":
            continue
        return p in SENTENCE_END or p.startswith("\n")
    return True


def apply_commands(text: str, auto_capitalize: bool = True) -> str:
    """Carry out the spoken commands in `text` and return what the user meant to write."""
    words = text.split()
    t = _Text()
    case_next: str | None = None
    new_phrase = True
    i = 0
    while i < len(words):
        matched = None
        for n in range(min(_MAX_LEN, len(words) - i), 0, -1):
            key = tuple(_clean(w) for w in words[i:i + n])
            if key in _ALL or key in PUNCTUATION or key in BREAKS:
                matched = key
                break
        if matched is None or (matched == LITERAL and i + 1 >= len(words)):
            word = words[i]
            i += 1
        elif matched == LITERAL:
            word = _STRIP.sub("", words[i + 1])
            i += 2
        else:
            i += len(matched)
            if matched in PUNCTUATION:
                if t.pieces:  # nothing to attach punctuation to at the very start
                    _drop_trailing_mark(t)
                    t.pieces.append(PUNCTUATION[matched])
                new_phrase = True
            elif matched in BREAKS:
                if t.pieces:
                    t.pieces.append(BREAKS[matched])
                new_phrase = True
            elif matched in QUOTES:
                t.pieces.append("\u201c" if QUOTES[matched] == "open" else "\u201d")
            elif matched in EDITS:
                _edit(t, EDITS[matched])
                new_phrase = True
            elif matched in CASE:
                case_next = CASE[matched]
            continue
        if new_phrase:
            t.phrase_starts.append(len(t.pieces))
            new_phrase = False
        if case_next == "upper":
            word = word.upper()
        elif case_next == "cap":
            word = word[:1].upper() + word[1:]
        elif case_next == "lower":
            word = word.lower()
        elif auto_capitalize and _sentence_start(t.pieces):
            word = word[:1].upper() + word[1:]
        case_next = None
        t.pieces.append(word)
    return t.render()


def _drop_trailing_mark(t: _Text) -> None:
    """The recogniser often writes its own mark before a spoken one ("dose, comma"): keep one."""
    if t.pieces and t.pieces[-1] not in SENTENCE_END + ",:;" and t.pieces[-1][-1:] in ".,?!:;":
        t.pieces[-1] = t.pieces[-1][:-1] or t.pieces[-1]


def _edit(t: _Text, action: str) -> None:
    if action == "delete_word":
        while t.pieces and not _is_word(t.pieces[-1]):
            t.pieces.pop()
        if t.pieces:
            t.pieces.pop()
    elif action == "scratch":
        start = t.phrase_starts.pop() if t.phrase_starts else 0
        del t.pieces[start:]
    while t.phrase_starts and t.phrase_starts[-1] > len(t.pieces):
        t.phrase_starts.pop()


def _is_word(piece: str) -> bool:
    return any(c.isalnum() for c in piece)


@dataclass(frozen=True)
class FieldMove:
    """A spoken "next field" (step 1) or "previous field" (step -1)."""

    step: int


def split_fields(text: str, auto_capitalize: bool = True) -> list[str | FieldMove]:
    """Dictated text for a template: the pieces between spoken field moves (each with its
    commands carried out) and the moves themselves, in order.

    "literal next field" writes the words. A piece that comes out empty or as bare
    punctuation (the recogniser's "Next field." leaves a ".") is left out.
    """
    words = text.split()
    out: list[str | FieldMove] = []
    piece: list[str] = []

    def flush() -> None:
        written = apply_commands(" ".join(piece), auto_capitalize)
        if _is_word(written):
            out.append(written)
        piece.clear()

    i = 0
    while i < len(words):
        key = tuple(_clean(w) for w in words[i:i + 2])
        if key in FIELD_MOVES and not (piece and (_clean(piece[-1]),) == LITERAL):
            flush()
            out.append(FieldMove(FIELD_MOVES[key]))
            i += 2
        else:
            piece.append(words[i])
            i += 1
    flush()
    return out
