"""Write a Transcript as TXT, SRT, VTT, JSON or DOCX.

Subtitle cues follow the common broadcast rule of at most two lines of 42 characters and
one to seven seconds: short segments (and the words of a segment) are joined into cues,
never across speakers,
a long segment without word times becomes several cues whose times split its span in
proportion to their characters. Speaker names, where the transcript has them, open each
turn in TXT and DOCX ("Name: text"), each SRT cue ("Name: ") and each VTT cue (a `<v Name>`
voice tag). Files are written atomically: a failed export never leaves a
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
MIN_CUE_S = 1.0  # a subtitle shown for less cannot be read
MAX_CUE_S = 7.0
MERGE_GAP_S = 1.0  # a longer pause ends a cue


def render(transcript: Transcript, fmt: str) -> bytes:
    """The file content for `fmt` (one of FORMATS), as bytes."""
    fmt = fmt.lower().lstrip(".")
    if fmt == "txt":
        text = transcript.speaker_text()
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


def _pieces(seg) -> list[tuple[float, float, str]]:
    """A segment as timed pieces to build cues from: its words where their times still spell
    the text, else its text wrapped to cue size with times in proportion to characters."""
    text = " ".join(seg.text.split())
    words = [w.text.strip() for w in seg.words]
    if words and " ".join(words) == text:
        return [(w.start, w.end, t) for w, t in zip(seg.words, words) if t]
    groups = [_wrap(chunk) for chunk in _balanced(text)]
    sizes = [sum(len(line) for line in g) for g in groups]
    total = sum(sizes)
    span = max(seg.end - seg.start, 0.0)
    out, done = [], 0
    for g, size in zip(groups, sizes):
        start = seg.start + span * done / total
        done += size
        out.append((start, seg.start + span * done / total, " ".join(g)))
    return out


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(text, LINE_CHARS, break_on_hyphens=False)


def _fits(text: str) -> bool:
    return len(_wrap(text)) <= CUE_LINES


def _balanced(text: str) -> list[str]:
    """`text` in as few cue-sized chunks as it needs, of even length: no one-word tail cue."""
    if not text:
        return []
    lines = _wrap(text)
    n = -(-len(lines) // CUE_LINES)
    words = text.split(" ")
    for limit in range(-(-len(text) // n), len(text) + 1):
        chunks = [words[0]]
        for w in words[1:]:
            joined = chunks[-1] + " " + w
            if len(joined) <= limit and _fits(joined):
                chunks[-1] = joined
            else:
                chunks.append(w)
        if len(chunks) <= n:
            return chunks
    return [" ".join(g) for g in (lines[i : i + CUE_LINES] for i in range(0, len(lines), CUE_LINES))]


def _cues(transcript: Transcript) -> list[tuple[float, float, list[str]]]:
    """(start, end, lines) per cue. Pieces (words, or wrapped text) are joined in order into
    cues of at most CUE_LINES lines of LINE_CHARS and MAX_CUE_S, never across a pause longer
    than MERGE_GAP_S or a change of speaker. A segment that can be read alone keeps its own
    cues; a shorter one joins its neighbour, and a cue still shorter than MIN_CUE_S is held
    longer when the next one leaves room. One-word cues of half a second cannot be read."""
    merged: list[list] = []  # [start, end, text, speaker]
    for seg in transcript.segments:
        speaker = seg.speaker
        for i, (start, end, text) in enumerate(_pieces(seg)):
            last = merged[-1] if merged else None
            # within a segment, words fill the cue; across segments only a too-short cue joins
            join = i > 0 or (last is not None and min(last[1] - last[0], seg.end - seg.start) < MIN_CUE_S)
            if (join and last is not None and last[3] == speaker and start - last[1] <= MERGE_GAP_S
                    and max(end, last[1]) - last[0] <= MAX_CUE_S and _fits(last[2] + " " + text)):
                last[1], last[2] = max(end, last[1]), last[2] + " " + text
            else:
                merged.append([start, end, text, speaker])
    cues = []
    for i, (start, end, text, speaker) in enumerate(merged):
        if end - start < MIN_CUE_S:
            limit = merged[i + 1][0] if i + 1 < len(merged) else start + MIN_CUE_S
            end = max(end, min(start + MIN_CUE_S, limit))
        cues.append((start, end, _wrap(text), speaker))
    return cues


def _srt(transcript: Transcript) -> str:
    blocks = []
    for i, (s, e, lines, speaker) in enumerate(_cues(transcript), 1):
        if speaker:
            lines = [f"{speaker}: {lines[0]}", *lines[1:]]
        blocks.append(f"{i}\n{_timestamp(s, ',')} --> {_timestamp(e, ',')}\n" + "\n".join(lines) + "\n")
    return "\n".join(blocks)


def _vtt_escape(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt(transcript: Transcript) -> str:
    blocks = ["WEBVTT\n"]
    for s, e, lines, speaker in _cues(transcript):
        lines = list(map(_vtt_escape, lines))
        if speaker:  # a voice tag's name may hold anything but "<", ">", "&" and a line break
            lines[0] = f"<v {_vtt_escape(' '.join(speaker.split()))}>{lines[0]}"
        blocks.append(f"{_timestamp(s, '.')} --> {_timestamp(e, '.')}\n" + "\n".join(lines) + "\n")
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
        if seg.speaker:
            para.add_run(clean(f"{seg.speaker}: ")).bold = True
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
