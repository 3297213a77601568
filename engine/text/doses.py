"""Doses as clinicians write them ("75 mg"), and the words a sentence's meaning hangs on.

Whisper writes a dose as it pleases: "75mg", "75 milligrams", "five milligrams", "75 Mg".
A letter is signed with the clinician's own form: number, a space, the unit's standard
abbreviation (mg, mcg, g, mL, L, mmol, mm, kg; "units" in full, as safe-prescribing rules
ask). `write_doses` rewrites a segment's words so, keeping each word's time and confidence.

Some words carry a sentence's meaning alone: "stop" for "start", "not", "left" for "right",
a dose's number or unit. A word of those the model was unsure of (KEY_CONFIDENCE, stricter
than for other words) makes the segment unsure (`unsure_key_words`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.text.transcript import Segment, Word

# unit as written -> every way a transcript spells it (lower case)
UNITS = {
    "mg": ("mg", "mgs", "milligram", "milligrams", "milligramme", "milligrammes"),
    "mcg": ("mcg", "µg", "μg", "ug", "microgram", "micrograms", "microgramme", "microgrammes"),
    "g": ("g", "gram", "grams", "gramme", "grammes"),
    "kg": ("kg", "kilogram", "kilograms", "kilo", "kilos"),
    "mL": ("ml", "mls", "millilitre", "millilitres", "milliliter", "milliliters"),
    "L": ("l", "litre", "litres", "liter", "liters"),
    "mmol": ("mmol", "millimole", "millimoles", "millimol"),
    "mm": ("mm", "millimetre", "millimetres", "millimeter", "millimeters"),
    "units": ("unit", "units", "iu", "u"),
}
SPELLING = {s: unit for unit, spellings in UNITS.items() for s in spellings}
# single letters are units only right after a number written in digits ("1 g", "1g"), never after a word
LETTER_UNITS = {"g", "l", "u"}
KEY_WORDS = frozenset({"stop", "start", "restart", "continue", "increase", "reduce", "decrease", "hold",
                       "withhold", "not", "don't", "no", "left", "right", "before", "after"})
KEY_CONFIDENCE = 0.8  # a key word, number or unit below this marks its segment unsure (others: 0.5)

_SMALL = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve thirteen "
                                     "fourteen fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i > 1}
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)?$")
_GLUED = re.compile(r"^(\d+(?:\.\d+)?)([a-zµμ]+)$", re.IGNORECASE)
_EDGE = re.compile(r"^([(\"'“]*)(.*?)([.,;:!?)\"'”]*)$")


@dataclass
class Dose:
    number: float
    unit: str  # as written (a key of UNITS)
    text: str  # as written: "75 mg"


def _words_number(words: list[str]) -> float | None:
    """'seventy five' -> 75, 'two point five' -> 2.5, 'one hundred' -> 100; None if not a number."""
    if not words:
        return None
    if "point" in words:
        i = words.index("point")
        whole, frac = _words_number(words[:i]) if i else 0, words[i + 1:]
        if whole is None or not frac or any(w not in _SMALL or _SMALL[w] > 9 for w in frac):
            return None
        return float(f"{int(whole)}.{''.join(str(_SMALL[w]) for w in frac)}")
    total, part = 0, 0
    for w in words:
        if w in _SMALL:
            part += _SMALL[w]
        elif w in _TENS:
            part += _TENS[w]
        elif w == "hundred":
            part = max(part, 1) * 100
        elif w == "thousand":
            total, part = total + max(part, 1) * 1000, 0
        elif w != "and":
            return None
    return float(total + part)


def _number_text(x: float) -> str:
    return str(int(x)) if x == int(x) else f"{x:g}"


def _split_edges(word: str) -> tuple[str, str, str]:
    m = _EDGE.match(word)
    return m.group(1), m.group(2), m.group(3)


def _number_before(words: list[str], end: int) -> tuple[int, float] | None:
    """The number that ends just before words[end]: (index of its first word, value)."""
    lead, core, trail = _split_edges(words[end - 1]) if end else ("", "", "")
    if end and not trail and _NUMBER.match(core):
        return end - 1, float(core.replace(",", ""))
    for start in range(max(0, end - 6), end):
        cores = [_split_edges(w) for w in words[start:end]]
        if any(c[2] for c in cores[:-1]) or cores[-1][2] or any(c[0] for c in cores[1:]):
            continue
        value = _words_number([c[1].lower() for c in cores])
        if value is not None and cores[0][1].lower() not in ("and", "point"):
            return start, value
    return None


def write_doses(segment: Segment) -> Segment:
    """The segment with every dose written "75 mg"; words keep their times and confidences
    (a number said in words takes the span of its words)."""
    words = segment.words or [Word(w, segment.start, segment.end) for w in segment.text.split()]
    texts = [w.text.strip() for w in words]
    out: list[Word] = []
    i = 0
    while i < len(words):
        lead, core, trail = _split_edges(texts[i])
        glued = _GLUED.match(core)
        if glued and glued.group(2).lower() in SPELLING:
            unit = SPELLING[glued.group(2).lower()]
            w = words[i]
            out += [Word(lead + glued.group(1), w.start, w.end, w.confidence),
                    Word(unit + trail, w.start, w.end, w.confidence)]
            i += 1
            continue
        unit = SPELLING.get(core.lower())
        found = _number_before(texts, i) if unit and not lead else None
        if found is not None:
            start, value = found
            digits = _NUMBER.match(_split_edges(texts[start])[1]) is not None and start == i - 1
            if core.lower() in LETTER_UNITS and not digits:
                found = None
        if found is None:
            out.append(words[i])
            i += 1
            continue
        start, value = found
        del out[len(out) - (i - start):]
        number_words = words[start:i]
        confidences = [w.confidence for w in number_words if w.confidence is not None]
        out.append(Word(_split_edges(texts[start])[0] + _number_text(value), number_words[0].start,
                        number_words[-1].end, min(confidences) if confidences else None))
        out.append(Word(unit + trail, words[i].start, words[i].end, words[i].confidence))
        i += 1
    text = " ".join(w.text for w in out)
    if text == " ".join(texts):
        return segment
    return Segment(segment.start, segment.end, text, words=out if segment.words else [],
                   confidence=segment.confidence, flags=list(segment.flags), removed=segment.removed)


def doses(text: str) -> list[Dose]:
    """The doses in `text`, however spelled ("75mg", "75 milligrams", "seventy five mg")."""
    seg = write_doses(Segment(0.0, 0.0, text))
    words = seg.text.split()
    out = []
    for i in range(1, len(words)):
        _, core, _ = _split_edges(words[i])
        _, number, _ = _split_edges(words[i - 1])
        if core in UNITS and _NUMBER.match(number):
            out.append(Dose(float(number.replace(",", "")), core, f"{number} {core}"))
    return out


def same_dose(a: Dose, b: Dose) -> bool:
    return a.number == b.number and a.unit == b.unit


def is_key_word(text: str) -> bool:
    """A word one error in which changes what the sentence tells anyone to do."""
    core = _split_edges(text.strip())[1]
    return core.lower() in KEY_WORDS or core in UNITS or core.lower() in SPELLING \
        or _NUMBER.match(core) is not None or _GLUED.match(core) is not None


def unsure_key_words(segment: Segment) -> list[Word]:
    """The key words of `segment` the model gave less than KEY_CONFIDENCE."""
    return [w for w in segment.words if w.confidence is not None and w.confidence < KEY_CONFIDENCE
            and is_key_word(w.text)]
