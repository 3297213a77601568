"""What a transcription produces: timed segments of text, with words where the model knows them.

One `Transcript` flows from the decoder to the editor, the exporters and the trainer, and
is saved as JSON (`to_dict`/`from_dict`). The JSON carries a format name and version so
a file from a newer Steno is refused with a clear message instead of misread. Version 2
added speaker names (a segment's `speaker`, and a word's where words exist); a transcript
without speakers is still written as version 1, so older Steno reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from engine.errors import StenoError

FORMAT = "steno-transcript"
VERSION = 2
PARAGRAPH_PAUSE_S = 2.0  # a pause longer than this starts a new paragraph in .text
CHECKED_FLAGS = ("edited", "confirmed")  # the user rewrote the text, or read it and said it is right


@dataclass
class Word:
    text: str
    start: float
    end: float
    confidence: float | None = None
    speaker: str | None = None


@dataclass
class Segment:
    """A stretch of speech. `flags` mark doubts for the editor, e.g. "dropped-repetition"
    (the decoder cut a loop) or "no-speech" (text where the VAD heard silence)."""

    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    confidence: float | None = None
    flags: list[str] = field(default_factory=list)
    removed: str = ""  # text a guard took out here (see flags); the editor can put it back
    replaced: str = ""  # draft words the term pass replaced by listed terms ("big summer -> apixaban")
    speaker: str | None = None  # the speaker's name as shown ("Speaker 1" until renamed)

    @property
    def checked(self) -> bool:
        """The user corrected or confirmed this text: only such text can teach a model anything
        (the rest is the model's own guess, mistakes included)."""
        return any(f in self.flags for f in CHECKED_FLAGS)

    def words_spell_text(self) -> bool:
        """The word list still reads as the text (no edit since the model wrote both)."""
        return " ".join(w.text.strip() for w in self.words) == " ".join(self.text.split())

    def timed_words(self) -> list[Word]:
        """The words that go with the text as it reads now: what is saved and exported.

        The model's words while they still spell the text. Once the text was changed, a word
        left as it was keeps its times, a changed or added one shares the time of what it
        replaced (or of the gap it went into), and a word of an edited segment carries no
        confidence: the user has checked it. Kept in memory is the model's list, so undo
        brings its confidences back."""
        if not self.words or self.words_spell_text():
            return self.words
        old = [w.text.strip() for w in self.words]
        new = self.text.split()
        checked = "edited" in self.flags
        out: list[Word] = []
        for op, i1, i2, j1, j2 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
            if op == "equal":
                out += [Word(t, w.start, w.end, None if checked else w.confidence, w.speaker)
                        for w, t in zip(self.words[i1:i2], new[j1:j2])]
            elif j2 > j1:  # replaced or inserted: spread over the old words' span, or the gap
                start = self.words[i1].start if i2 > i1 else (self.words[i1 - 1].end if i1 else self.start)
                end = self.words[i2 - 1].end if i2 > i1 else (self.words[i1].start if i1 < len(old) else self.end)
                out += _spread(new[j1:j2], start, max(start, end))
        return out


@dataclass
class Transcript:
    segments: list[Segment] = field(default_factory=list)
    source: str | None = None  # the audio file it came from
    model: str | None = None  # the model (folder name or id) that produced it
    duration: float | None = None  # seconds of audio
    meta: dict = field(default_factory=dict)

    @property
    def speakers(self) -> list[str]:
        """The speakers' names in order of first appearance."""
        return list(dict.fromkeys(s.speaker for s in self.segments if s.speaker))

    def rename_speaker(self, old: str, new: str) -> int:
        """Call `old` by `new` on every segment and word; how many segments changed.
        Renaming to a name another speaker has merges the two."""
        new = " ".join(new.split())
        if not new:
            raise StenoError("a speaker's name cannot be empty")
        changed = 0
        for seg in self.segments:
            if seg.speaker == old:
                seg.speaker = new
                changed += 1
            for w in seg.words:
                if w.speaker == old:
                    w.speaker = new
        return changed

    def speaker_text(self) -> str:
        """Plain text with "Name: " before each turn, one turn a paragraph; `text` when
        nobody is named."""
        if not self.speakers:
            return self.text
        turns: list[list] = []
        for seg in self.segments:
            t = seg.text.strip()
            if not t:
                continue
            if turns and turns[-1][0] == seg.speaker:
                turns[-1][1].append(t)
            else:
                turns.append([seg.speaker, [t]])
        return "\n\n".join(f"{name}: {' '.join(parts)}" if name else " ".join(parts) for name, parts in turns)

    @property
    def text(self) -> str:
        """Plain text: segments joined by a space, or by a blank line after a long pause."""
        out: list[str] = []
        prev_end = None
        for seg in self.segments:
            t = seg.text.strip()
            if not t:
                continue
            if out:
                out.append("\n\n" if seg.start - prev_end > PARAGRAPH_PAUSE_S else " ")
            out.append(t)
            prev_end = seg.end
        return "".join(out)

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION if self.speakers else 1,
            "source": self.source,
            "model": self.model,
            "duration": self.duration,
            "meta": self.meta,
            "segments": [
                {
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "confidence": s.confidence,
                    "flags": list(s.flags),
                    **({"removed": s.removed} if s.removed else {}),
                    **({"replaced": s.replaced} if s.replaced else {}),
                    **({"speaker": s.speaker} if s.speaker else {}),
                    "words": [
                        {"text": w.text, "start": w.start, "end": w.end, "confidence": w.confidence,
                         **({"speaker": w.speaker or s.speaker} if (w.speaker or s.speaker) else {})}
                        for w in s.timed_words()
                    ],
                }
                for s in self.segments
            ],
        }

    @classmethod
    def from_dict(cls, data: Any) -> "Transcript":
        """Rebuild from `to_dict` output; StenoError says what is wrong with anything else."""
        if not isinstance(data, dict):
            raise StenoError("not a Steno transcript (expected a JSON object)")
        if data.get("format") != FORMAT:
            raise StenoError(f"not a Steno transcript (format is {data.get('format')!r}, expected {FORMAT!r})")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise StenoError(f"transcript has no valid version (got {version!r})")
        if version > VERSION:
            raise StenoError(f"transcript format version {version} is newer than this Steno reads ({VERSION}); update Steno")
        if version < 1:
            raise StenoError(f"transcript format version {version} is not valid")
        segments = data.get("segments")
        if not isinstance(segments, list):
            raise StenoError("transcript 'segments' must be a list")
        meta = data.get("meta", {})
        if not isinstance(meta, dict):
            raise StenoError("transcript 'meta' must be an object")
        return cls(
            segments=[_segment(s, i) for i, s in enumerate(segments)],
            source=_opt_str(data.get("source"), "source"),
            model=_opt_str(data.get("model"), "model"),
            duration=_opt_num(data.get("duration"), "duration"),
            meta=meta,
        )


def _spread(texts: list[str], start: float, end: float) -> list[Word]:
    """Words sharing [start, end] in proportion to their length: times nobody measured."""
    total = sum(len(t) for t in texts) or 1
    out, done = [], 0
    for t in texts:
        a = start + (end - start) * done / total
        done += len(t)
        out.append(Word(t, a, start + (end - start) * done / total))
    return out


def _num(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StenoError(f"transcript {where} must be a finite number (got {value!r})")
    return float(value)


def _opt_num(value: Any, where: str) -> float | None:
    return None if value is None else _num(value, where)


def _opt_str(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise StenoError(f"transcript {where} must be text (got {value!r})")
    return value


def _times(d: dict, where: str) -> tuple[float, float]:
    start, end = _num(d.get("start"), f"{where} start"), _num(d.get("end"), f"{where} end")
    if end < start:
        raise StenoError(f"transcript {where} ends ({end}) before it starts ({start})")
    return start, end


def _segment(d: Any, i: int) -> Segment:
    where = f"segment {i}"
    if not isinstance(d, dict):
        raise StenoError(f"transcript {where} must be an object")
    start, end = _times(d, where)
    text = d.get("text")
    if not isinstance(text, str):
        raise StenoError(f"transcript {where} text must be text (got {text!r})")
    flags = d.get("flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise StenoError(f"transcript {where} flags must be a list of text")
    words = d.get("words", [])
    if not isinstance(words, list):
        raise StenoError(f"transcript {where} words must be a list")
    return Segment(
        start=start,
        end=end,
        text=text,
        words=[_word(w, f"{where} word {j}") for j, w in enumerate(words)],
        confidence=_opt_num(d.get("confidence"), f"{where} confidence"),
        flags=list(flags),
        removed=_opt_str(d.get("removed"), f"{where} removed") or "",
        replaced=_opt_str(d.get("replaced"), f"{where} replaced") or "",
        speaker=_opt_str(d.get("speaker"), f"{where} speaker") or None,
    )


def _word(d: Any, where: str) -> Word:
    if not isinstance(d, dict):
        raise StenoError(f"transcript {where} must be an object")
    text = d.get("text")
    if not isinstance(text, str):
        raise StenoError(f"transcript {where} text must be text (got {text!r})")
    start, end = _times(d, where)
    return Word(text, start, end, _opt_num(d.get("confidence"), f"{where} confidence"),
                _opt_str(d.get("speaker"), f"{where} speaker") or None)
