"""SRT/VTT cues are readable: short segments joined to 1-7 s cues of at most two 42-character
lines, never across a long pause or a change of speaker, every word kept in order."""

from __future__ import annotations

import re

from engine.text.exporters import render
from engine.text.transcript import Segment, Transcript, Word

SRT_TIME = r"(\d\d):(\d\d):(\d\d),(\d\d\d)"
WORDS = ("so we started the new dose on monday and she felt better by the weekend but then "
         "the headaches came back worse than before").split()


def cues(transcript: Transcript) -> list[tuple[float, float, list[str]]]:
    out = []
    for block in render(transcript, "srt").decode("utf-8").strip().split("\n\n"):
        lines = block.split("\n")
        m = re.fullmatch(f"{SRT_TIME} --> {SRT_TIME}", lines[1])
        g = [int(x) for x in m.groups()]
        out.append((g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000, g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000,
                    lines[2:]))
    return out


def one_word_segments(with_words: bool, start: float = 0.0) -> list[Segment]:
    segs, t = [], start
    for i, w in enumerate(WORDS):
        d = 0.5 + 0.1 * (i % 4)  # 0.5-0.8 s, as the model gave them
        segs.append(Segment(t, t + d, w, [Word(w, t, t + d, 0.9)] if with_words else []))
        t += d + 0.05
    return segs


def check_readable(cs):
    for s, e, lines in cs:
        assert 1 <= len(lines) <= 2 and all(len(x) <= 42 for x in lines)
        assert 1.0 - 1e-3 <= e - s <= 7.0 + 1e-3, (s, e, lines)
    assert all(a[1] <= b[0] + 1e-3 for a, b in zip(cs, cs[1:]))  # in order, never overlapping


def test_one_word_segments_become_readable_cues():
    for with_words in (True, False):
        t = Transcript(one_word_segments(with_words))
        cs = cues(t)
        check_readable(cs)
        assert len(cs) < len(WORDS) / 3
        assert " ".join(" ".join(c[2]) for c in cs).split() == WORDS  # nothing dropped or reordered
        vtt = render(t, "vtt").decode("utf-8")
        assert vtt.count(" --> ") == len(cs)


def test_never_merged_across_a_long_pause_or_a_speaker_change():
    first = one_word_segments(True)[:3]
    later = one_word_segments(True, start=first[-1].end + 3.0)[3:6]
    t = Transcript(first + later)
    cs = cues(t)
    assert [" ".join(c[2]) for c in cs] == ["so we started", "the new dose"]
    a, b = one_word_segments(True)[:2]
    a.speaker, b.speaker = "Interviewer", "Guest"  # a model with speakers: each keeps its own cue
    assert [" ".join(c[2]) for c in cues(Transcript([a, b]))] == ["Interviewer: so", "Guest: we"]


def test_a_long_segment_with_word_times_is_cut_by_its_words():
    words, t = [], 0.0
    for w in WORDS:
        words.append(Word(w, t, t + 0.4))
        t += 0.45
    seg = Segment(0.0, t, " ".join(WORDS), words)
    cs = cues(Transcript([seg]))
    check_readable(cs)
    assert " ".join(" ".join(c[2]) for c in cs).split() == WORDS
    for s, e, lines in cs:  # each cue starts when its first word does
        assert any(w.text == lines[0].split()[0] and abs(w.start - s) < 1e-3 for w in words)
