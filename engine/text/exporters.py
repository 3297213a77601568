"""Write a Transcript as TXT, SRT, VTT, JSON or DOCX.

Subtitle cues follow the common broadcast rule of at most two lines of 42 characters, so
a long segment becomes several cues whose times split the segment's span in proportion
to their characters. Files are written atomically: a failed export never leaves a
half-written file, and an older export at the same path survives it.
"""

from __future__ import annotations

import io
import json
import re
import textwrap
from pathlib import Path

from engine.errors import ExportError
from engine.files import atomic_write_bytes
from engine.text.transcript import Transcript

FORMATS = ("txt", "srt", "vtt", "json", "docx")
LINE_CHARS = 42
CUE_LINES = 2
LOW_CONFIDENCE = 0.5


def render(transcript: Transcript, fmt: str) -> bytes:
    """The file content for `fmt` (one of FORMATS), as bytes."""
    fmt = fmt.lower().lstrip(".")
    if fmt == "txt":
        text = transcript.text
        return (text + "\n" if text else "").encode("utf-8")
    if fmt == "srt":
        return _srt(transcript).encode("utf-8")
    if fmt == "vtt":
        return _vtt(transcript).encode("utf-8")
    if fmt == "json":
        return (json.dumps(transcript.to_dict(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    if fmt == "docx":
        return _docx(transcript)
    raise ValueError(f"unknown export format {fmt!r} (use one of {', '.join(FORMATS)})")


def export(transcript: Transcript, path: str | Path, fmt: str | None = None) -> Path:
    """Write `transcript` to `path`; the format comes from the suffix unless `fmt` is given."""
    path = Path(path)
    name = (fmt if fmt is not None else path.suffix).lower().lstrip(".")
    if name not in FORMATS:
        shown = f"'{fmt}'" if fmt is not None else (f"'{path.suffix}'" if path.suffix else "(no suffix)")
        raise ExportError(f"unknown export format {shown}; use one of {', '.join(FORMATS)}", path)
    data = render(transcript, name)  # before touching the disk: a render bug writes nothing
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise ExportError(f"cannot write file ({e.strerror or e})", path) from None
    return path


# ------------------------------------------------------------------------------ subtitles


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cues(transcript: Transcript) -> list[tuple[float, float, list[str]]]:
    """(start, end, lines) per cue: each segment wrapped to LINE_CHARS, CUE_LINES per cue."""
    cues = []
    for seg in transcript.segments:
        text = " ".join(seg.text.split())
        if not text:
            continue
        lines = textwrap.wrap(text, LINE_CHARS, break_on_hyphens=False)
        groups = [lines[i : i + CUE_LINES] for i in range(0, len(lines), CUE_LINES)]
        sizes = [sum(len(line) for line in g) for g in groups]
        total = sum(sizes)
        span = max(seg.end - seg.start, 0.0)
        done = 0
        for g, size in zip(groups, sizes):
            start = seg.start + span * done / total
            done += size
            cues.append((start, seg.start + span * done / total, g))
    return cues


def _srt(transcript: Transcript) -> str:
    blocks = [
        f"{i}\n{_timestamp(s, ',')} --> {_timestamp(e, ',')}\n" + "\n".join(lines) + "\n"
        for i, (s, e, lines) in enumerate(_cues(transcript), 1)
    ]
    return "\n".join(blocks)


def _vtt_escape(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt(transcript: Transcript) -> str:
    blocks = ["WEBVTT\n"]
    for s, e, lines in _cues(transcript):
        blocks.append(f"{_timestamp(s, '.')} --> {_timestamp(e, '.')}\n" + "\n".join(map(_vtt_escape, lines)) + "\n")
    return "\n".join(blocks)


# ----------------------------------------------------------------------------------- docx

# XML 1.0 forbids most control characters; python-docx raises on them.
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def clock(seconds: float) -> str:
    """mm:ss, or h:mm:ss from the first hour on (the DOCX stamps and the app's clocks)."""
    s = max(0, int(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _docx(transcript: Transcript) -> bytes:
    from docx import Document
    from docx.enum.text import WD_COLOR_INDEX
    from docx.shared import RGBColor

    clean = lambda t: _XML_BAD.sub("", t)  # noqa: E731
    doc = Document()
    title = Path(transcript.source).name if transcript.source else "Transcript"
    doc.core_properties.title = clean(title)
    doc.add_heading(clean(title), level=1)
    for seg in transcript.segments:
        if not seg.text.strip():
            continue
        para = doc.add_paragraph()
        stamp = para.add_run(f"[{clock(seg.start)}] ")
        stamp.font.color.rgb = RGBColor(0x80, 0x80, 0x80)
        words = [w.text.strip() for w in seg.words]
        # Words only while they still spell the segment: text edited by the user wins.
        if words and " ".join(words) == " ".join(seg.text.split()):
            for i, (w, text) in enumerate(zip(seg.words, words)):
                if i:
                    para.add_run(" ")
                run = para.add_run(clean(text))
                if w.confidence is not None and w.confidence < LOW_CONFIDENCE:
                    run.font.highlight_color = WD_COLOR_INDEX.YELLOW
        else:
            run = para.add_run(clean(seg.text.strip()))
            if seg.confidence is not None and seg.confidence < LOW_CONFIDENCE:
                run.font.highlight_color = WD_COLOR_INDEX.YELLOW
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()
