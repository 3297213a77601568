"""Speaker names on a transcript's segments, a segment split where its speaker changes.

Each word gets the speaker who speaks most of its time span. Words are grouped into
sentences (ending in . ? or !), and a sentence goes to the speaker of most of its words'
time: a sentence is never split between two speakers by the jitter of a turn's edge, while
two speakers' sentences never share a segment. A segment without words (none came back
from the model) goes whole to its main speaker.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from engine.speakers import diarize  # the module: diarize.diarize is looked up at each call, so it can be replaced
from engine.speakers.diarize import Diarization
from engine.speakers.profiles import match_profiles
from engine.text.transcript import Segment, Word

SENTENCE_END = (".", "?", "!", "…")


def default_name(index: int) -> str:
    return f"Speaker {index + 1}"


def label_speakers(audio: np.ndarray, segments: list[Segment], count: int | None, *, profiles: list | None = None,
                   chunks: list | None = None, progress: Callable[[float], None] | None = None,
                   check: Callable[[], None] | None = None) -> tuple[list[Segment], Diarization]:
    """Who spoke when in `audio` (`count` speakers, or None to find how many), put on the
    segments transcribed from it; a speaker whose voice matches a saved profile takes its
    name. Used while transcribing, and again on a finished transcript (another count chosen)
    without transcribing it again. The segments' speaker fields are overwritten."""
    found = diarize.diarize(audio, count, chunks=chunks, progress=progress, check=check)
    return label_segments(segments, found, match_profiles(found.centroids, profiles or [])), found


def label_segments(segments: list[Segment], diarization: Diarization, names: list[str] | None = None) -> list[Segment]:
    """Segments with `speaker` set (new Segment objects where one was split). `names[i]` is
    diarization speaker i's name; speakers without one are "Speaker 1", "Speaker 2"... in the
    order they first speak in the transcript."""
    given: dict[int, str] = {}
    numbered: list[int] = []  # the speakers given a number so far, in order

    def name(i: int | None) -> str | None:
        if i is None:
            return None
        if i not in given:
            saved = names[i] if names is not None and i < len(names) else None
            if not saved:
                saved = default_name(len(numbered))
                numbered.append(i)
            given[i] = saved
        return given[i]

    out: list[Segment] = []
    for seg in segments:
        if not seg.words or not seg.words_spell_text():
            seg.speaker = name(diarization.speaker_at(seg.start, seg.end))
            out.append(seg)
            continue
        runs: list[tuple[str | None, list[Word]]] = []
        for sentence in _sentences(seg.words):
            spk = name(_main_speaker(sentence, diarization))
            if runs and runs[-1][0] == spk:
                runs[-1][1].extend(sentence)
            else:
                runs.append((spk, list(sentence)))
        for spk, words in runs:
            for w in words:
                w.speaker = spk
        if len(runs) == 1:
            seg.speaker = runs[0][0]
            out.append(seg)
            continue
        for i, (spk, words) in enumerate(runs):
            out.append(Segment(
                start=seg.start if i == 0 else words[0].start,
                end=seg.end if i == len(runs) - 1 else words[-1].end,
                text=" ".join(w.text.strip() for w in words),
                words=words,
                confidence=_mean_confidence(words, seg.confidence),
                flags=list(seg.flags),
                removed=seg.removed if i == 0 else "",
                speaker=spk,
            ))
    return out


def _sentences(words: list[Word]) -> list[list[Word]]:
    out: list[list[Word]] = [[]]
    for w in words:
        out[-1].append(w)
        if w.text.strip().endswith(SENTENCE_END):
            out.append([])
    return [s for s in out if s]


def _main_speaker(words: list[Word], diarization: Diarization) -> int | None:
    time: dict[int, float] = {}
    for w in words:
        spk = diarization.speaker_at(w.start, max(w.end, w.start + 0.01))
        if spk is not None:
            time[spk] = time.get(spk, 0.0) + max(w.end - w.start, 0.01)
    return max(time, key=time.get) if time else None


def _mean_confidence(words: list[Word], fallback: float | None) -> float | None:
    known = [w.confidence for w in words if w.confidence is not None]
    return sum(known) / len(known) if known else fallback
