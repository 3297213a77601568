"""engine.text.transcript and engine.text.exporters: the data model, its JSON, and every export format."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from engine.errors import ExportError, StenoError
from engine.text import exporters
from engine.text.exporters import FORMATS, export, render
from engine.text.transcript import Segment, Transcript, Word

LONG = (
    "The patient is a seventy two year old woman admitted with atrial fibrillation and "
    "started on apixaban five milligrams twice daily after discussion with the family."
)


def make() -> Transcript:
    return Transcript(
        segments=[
            Segment(1.0, 2.5, "Hello world.", [Word("Hello", 1.0, 1.6, 0.9), Word("world.", 1.7, 2.5, 0.3)], 0.6),
            Segment(3.0, 12.0, LONG, confidence=0.8, flags=["dropped-repetition"]),
            Segment(15.0, 16.0, "Naïve café — “quoted” <b> & done.", flags=["no-speech"]),
            Segment(3723.456, 3725.0, "An hour in."),
        ],
        source="/recordings/interview 3.wav",
        model="steno-base",
        duration=3725.0,
        meta={"language": "en", "vad": {"max_seconds": 30}},
    )


# --------------------------------------------------------------------------- transcript


def test_text_joins_with_paragraphs_after_long_pauses():
    t = make()
    assert t.text == f"Hello world. {LONG}\n\nNaïve café — “quoted” <b> & done.\n\nAn hour in."
    t2 = Transcript([Segment(0, 1, " a "), Segment(1.5, 2.9, " "), Segment(3.1, 4, "b"), Segment(5.5, 7, "c")])
    assert t2.text == "a\n\nb c"  # 2.1 s after "a" (the empty segment does not count), 1.5 s before "c"
    assert Transcript().text == ""


def test_dict_round_trip_through_json():
    t = make()
    d = t.to_dict()
    assert d["format"] == "steno-transcript" and d["version"] == 1
    back = Transcript.from_dict(json.loads(json.dumps(d)))
    assert back == t
    assert back.segments[0].words[1] == Word("world.", 1.7, 2.5, 0.3)


def _bad(**change):
    d = make().to_dict()
    for k, v in change.items():
        d[k] = v
    return d


@pytest.mark.parametrize(
    "data, problem",
    [
        ([1, 2], "expected a JSON object"),
        (_bad(format="srt"), "not a Steno transcript"),
        (_bad(version=3), "newer than this Steno"),
        (_bad(version="1"), "no valid version"),
        (_bad(segments={}), "'segments' must be a list"),
        (_bad(meta=[]), "'meta' must be an object"),
        (_bad(duration="long"), "duration must be a finite number"),
        (_bad(segments=[{"start": 0, "text": "x"}]), "segment 0 end must be a finite number"),
        (_bad(segments=[{"start": 2, "end": 1, "text": "x"}]), "ends \\(1.0\\) before it starts"),
        (_bad(segments=[{"start": True, "end": 1, "text": "x"}]), "segment 0 start"),
        (_bad(segments=[{"start": 0, "end": 1, "text": 5}]), "segment 0 text"),
        (_bad(segments=[{"start": 0, "end": 1, "text": "x", "flags": [1]}]), "flags must be a list of text"),
        (_bad(segments=[{"start": 0, "end": 1, "text": "x", "words": [{"text": "x", "start": 0}]}]), "segment 0 word 0 end"),
    ],
)
def test_from_dict_rejects_malformed(data, problem):
    with pytest.raises(StenoError, match=problem):
        Transcript.from_dict(data)


# ------------------------------------------------------------------------------ exports

SRT_TIME = r"(\d\d):(\d\d):(\d\d),(\d\d\d)"
VTT_TIME = r"(\d\d):(\d\d):(\d\d)\.(\d\d\d)"


def _seconds(h, m, s, ms):
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_cues(text: str, time_re: str) -> list[tuple[float, float, list[str]]]:
    cues = []
    for block in text.strip().split("\n\n"):
        lines = block.split("\n")
        for i, line in enumerate(lines):
            m = re.fullmatch(f"{time_re} --> {time_re}", line)
            if m:
                g = m.groups()
                cues.append((_seconds(*g[:4]), _seconds(*g[4:]), lines[i + 1 :]))
                break
    return cues


def test_txt():
    assert render(make(), "txt").decode("utf-8") == make().text + "\n"


def test_srt_timestamps_numbering_and_wrapping():
    text = render(make(), "srt").decode("utf-8")
    blocks = text.strip().split("\n\n")
    assert [b.split("\n")[0] for b in blocks] == [str(i) for i in range(1, len(blocks) + 1)]
    assert "01:02:03,456 --> 01:02:05,000" in text
    cues = parse_cues(text, SRT_TIME)
    assert len(cues) == len(blocks)
    assert cues[0] == (1.0, 2.5, ["Hello world."])
    for s, e, lines in cues:
        assert 1 <= len(lines) <= 2 and all(len(line) <= 42 for line in lines) and s < e
    # the long segment: several cues sharing its span in proportion to their characters
    long_cues = [c for c in cues if 3.0 <= c[0] < 12.0]
    assert len(long_cues) >= 2
    assert long_cues[0][0] == 3.0 and long_cues[-1][1] == 12.0
    assert all(a[1] == b[0] for a, b in zip(long_cues, long_cues[1:]))
    assert " ".join(" ".join(c[2]) for c in long_cues) == LONG
    chars = [sum(map(len, c[2])) for c in long_cues]
    for (s, e, _), n in zip(long_cues, chars):
        assert e - s == pytest.approx(9.0 * n / sum(chars), abs=0.002)


def test_vtt_header_timestamps_and_escaping():
    text = render(make(), "vtt").decode("utf-8")
    assert text.startswith("WEBVTT\n\n")
    assert "01:02:03.456 --> 01:02:05.000" in text
    assert "," not in re.findall(r"\S+ --> \S+", text)[0]
    cues = parse_cues(text, VTT_TIME)
    assert cues == [(s, e, [ln.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for ln in lines])
                    for s, e, lines in parse_cues(render(make(), "srt").decode(), SRT_TIME)]
    assert "&lt;b&gt; &amp; done." in text


def test_json_export_round_trip(tmp_path):
    path = export(make(), tmp_path / "t.json")
    raw = path.read_bytes()
    assert "Naïve café".encode("utf-8") in raw  # UTF-8, not \u escapes
    assert Transcript.from_dict(json.loads(raw)) == make()


def test_docx_content(tmp_path):
    from docx import Document
    from docx.enum.text import WD_COLOR_INDEX

    path = export(make(), tmp_path / "t.docx")
    doc = Document(str(path))
    paras = [p for p in doc.paragraphs if p.text]
    assert paras[0].text == "interview 3.wav" and paras[0].style.name.startswith("Heading")
    assert [p.text for p in paras[1:]] == [
        "[00:01] Hello world.",
        f"[00:03] {LONG}",
        "[00:15] Naïve café — “quoted” <b> & done.",
        "[1:02:03] An hour in.",
    ]
    runs = paras[1].runs
    assert runs[0].text == "[00:01] " and str(runs[0].font.color.rgb) == "808080"
    highlighted = [r.text for p in paras for r in p.runs if r.font.highlight_color == WD_COLOR_INDEX.YELLOW]
    assert highlighted == ["world."]  # the one word with confidence < 0.5


def test_docx_edited_text_wins_over_stale_words(tmp_path):
    from docx import Document

    t = Transcript([Segment(0, 1, "Hello there, world.", [Word("Hello", 0, 0.5, 0.2), Word("world.", 0.5, 1, 0.9)])])
    doc = Document(str(export(t, tmp_path / "t.docx")))
    assert doc.paragraphs[0].text == "Transcript"
    assert doc.paragraphs[1].text == "[00:00] Hello there, world."


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_picks_format_from_suffix(tmp_path, fmt):
    path = export(make(), tmp_path / f"out.{fmt.upper()}")
    if fmt == "docx":  # a zip whose metadata holds the save time: compare the text instead
        from docx import Document

        assert Document(str(path)).paragraphs[0].text == "interview 3.wav"
    else:
        assert path.read_bytes() == render(make(), fmt)


def test_export_format_override_and_unknown(tmp_path):
    path = export(make(), tmp_path / "notes.text", fmt="txt")
    assert path.read_text("utf-8") == make().text + "\n"
    with pytest.raises(ExportError, match=r"out\.pdf: unknown export format '\.pdf'"):
        export(make(), tmp_path / "out.pdf")
    with pytest.raises(ExportError, match="noext: unknown export format"):
        export(make(), tmp_path / "noext")
    with pytest.raises(ExportError, match="x.txt: unknown export format 'mp3'"):
        export(make(), tmp_path / "x.txt", fmt="mp3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.text"]


def test_failed_export_keeps_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "t.srt"
    path.write_text("previous version\n")
    real_write = Path.write_bytes

    def half_then_full_disk(self, data):
        real_write(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_full_disk)
    with pytest.raises(ExportError, match="t.srt: cannot write file \\(No space left on device\\)"):
        export(make(), path)
    assert path.read_text() == "previous version\n"
    assert os.listdir(tmp_path) == ["t.srt"]


def test_render_failure_writes_nothing(tmp_path, monkeypatch):
    def boom(t):
        raise RuntimeError("bug")

    monkeypatch.setattr(exporters, "_docx", boom)
    with pytest.raises(RuntimeError):
        export(make(), tmp_path / "t.docx")
    assert os.listdir(tmp_path) == []
