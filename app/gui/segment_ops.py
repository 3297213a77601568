"""Split, merge and insert segments, keeping every word and sensible times.

New segments are made with dataclasses.replace, so fields this module does not know of (a
speaker, say) are carried over. Times follow the words where the words still spell the text:
a split falls between two words the model timed; otherwise the span is shared in proportion
to the characters on each side.
"""

from __future__ import annotations

import dataclasses

from engine.text.transcript import CHECKED_FLAGS, Segment, Word


def _words(seg: Segment) -> list[Word]:
    """The words as the text reads now (an edited segment's words re-timed to its new text)."""
    return seg.timed_words()


def _spells(words: list[Word], text: str) -> bool:
    return bool(words) and " ".join(w.text.strip() for w in words) == " ".join(text.split())


def word_boundary(text: str, pos: int) -> int:
    """The word boundary nearest `pos`: a split never cuts a word in two."""
    pos = max(0, min(pos, len(text)))
    if pos in (0, len(text)) or text[pos - 1].isspace() or text[pos].isspace():
        return pos
    left = pos
    while left > 0 and not text[left - 1].isspace():
        left -= 1
    right = pos
    while right < len(text) and not text[right].isspace():
        right += 1
    return left if pos - left <= right - pos else right


def split_segment(seg: Segment, pos: int) -> tuple[Segment, Segment] | None:
    """`seg` cut at the word boundary nearest character `pos`; None when one side would be empty."""
    text = " ".join(seg.text.split())
    before = " ".join(seg.text[:pos].split())  # `pos` in the normalised text
    pos = word_boundary(text, len(before) + (1 if before and seg.text[:pos][-1:].isspace() else 0))
    a, b = text[:pos].strip(), text[pos:].strip()
    if not a or not b:
        return None
    words = _words(seg)
    if _spells(words, text):
        k = len(a.split())
        first_words, second_words = words[:k], words[k:]
        cut_a, cut_b = first_words[-1].end, second_words[0].start
    else:
        cut_a = cut_b = seg.start + (seg.end - seg.start) * len(a) / (len(a) + len(b))
        first_words = [w for w in words if w.end <= cut_a]
        second_words = [w for w in words if w.end > cut_a]
    cut_a = min(max(cut_a, seg.start), seg.end)
    cut_b = min(max(cut_b, cut_a), seg.end)
    first = dataclasses.replace(seg, end=cut_a, text=a, words=list(first_words), flags=list(seg.flags),
                                removed="")  # what a guard removed was at the end: it goes with the second
    second = dataclasses.replace(seg, start=cut_b, text=b, words=list(second_words), flags=list(seg.flags))
    return first, second


def merge_segments(a: Segment, b: Segment) -> Segment:
    """One segment holding both texts and both word lists, from a's start to b's end. It counts
    as checked by the user only if both were: unchecked model text must not become training data."""
    confidences = [c for c in (a.confidence, b.confidence) if c is not None]
    flags = list(dict.fromkeys(a.flags + b.flags))
    if not (a.checked and b.checked):
        flags = [f for f in flags if f not in CHECKED_FLAGS]
    return dataclasses.replace(a, start=min(a.start, b.start), end=max(a.end, b.end),
                               text=" ".join((a.text.strip() + " " + b.text.strip()).split()),
                               words=list(_words(a)) + list(_words(b)),
                               confidence=min(confidences) if confidences else None, flags=flags,
                               removed=" ".join(r for r in (a.removed, b.removed) if r))


def new_segment_after(segments: list[Segment], row: int) -> Segment:
    """An empty segment for the user to type into, after `row` (-1: at the start), in the gap there."""
    start = segments[row].end if 0 <= row < len(segments) else 0.0
    following = segments[row + 1].start if row + 1 < len(segments) else start + 1.0
    return Segment(start, max(start, following), "", flags=["edited"])
