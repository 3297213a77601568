"""Templates: clinic letters, SOAP notes, interview headers with fields to fill by voice or keys.

A template is a UTF-8 text file (`.txt` or `.md`, at most 64 KB):

    # SOAP note                      optional first line: the name shown in the menu
    Patient: {{Patient}}, DOB: {{Date of birth}}
    Subjective: {{Subjective}}

Each non-blank line becomes one row of an ordinary transcript, its own paragraph in the
exports; a field `{{Name}}` reads `[Name]` until it is dictated or typed into. The template
lines are kept in the transcript's meta, and a field is found again in its row's text by
the literal text around it. So the row text stays the only truth: typing, undo, autosave,
crash recovery and export need nothing of their own, and a row whose literal text the user
rewrote simply has no fields any more.

Built-in templates are in resources/templates/, the user's own in $STENO_HOME/templates/.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StenoError
from engine.models.registry import steno_home
from engine.text.transcript import Segment, Transcript

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "resources" / "templates"
SUFFIXES = (".txt", ".md")
MAX_BYTES = 64 * 1024  # a letter is a few KB: anything bigger is the wrong file
MAX_NAME = 60
META_KEY = "template"
# Rows get made-up times this far apart, so each template line is its own paragraph
# (engine.text.transcript.PARAGRAPH_PAUSE_S) in the TXT and DOCX exports.
ROW_SECONDS = 3.0
ROW_LENGTH = 0.5

_MARK = re.compile(r"\{\{|\}\}")


class TemplateError(StenoError):
    """A template file that cannot be used; the message names the file, line and problem."""


@dataclass(frozen=True)
class Field:
    name: str


Part = str | Field


@dataclass
class Template:
    name: str
    lines: list[str]  # the body, one entry per row, whitespace collapsed
    rows: list[list[Part]]  # each line parsed: literal text and fields
    path: Path | None = None

    @property
    def fields(self) -> list[str]:
        return [p.name for row in self.rows for p in row if isinstance(p, Field)]


@dataclass
class FieldSpot:
    """Where a field sits in its row's current text."""

    row: int
    index: int  # which field of the row
    name: str
    start: int
    end: int
    filled: bool

    @property
    def key(self) -> tuple[int, int]:
        return self.row, self.index


def placeholder(name: str) -> str:
    return f"[{name}]"


# ----------------------------------------------------------------------------- parsing


def parse_line(line: str, where: str = "") -> list[Part]:
    """One template line as literal text and fields; TemplateError says what is wrong."""
    at = f"{where}: " if where else ""
    line = " ".join(line.split())
    parts: list[Part] = []
    pos, opened = 0, None
    for m in _MARK.finditer(line):
        if m.group() == "{{":
            if opened is not None:
                raise TemplateError(f"{at}'{{{{' inside a field (a field is written {{{{Name}}}})")
            parts.append(line[pos:m.start()])
            opened = m.end()
            continue
        if opened is None:
            raise TemplateError(f"{at}'}}}}' with no '{{{{' before it")
        name = line[opened:m.start()].strip()
        if not name:
            raise TemplateError(f"{at}empty field '{{{{}}}}': give it a name, e.g. {{{{Diagnosis}}}}")
        if "{" in name or "}" in name:
            raise TemplateError(f"{at}field name {name!r} contains a brace")
        if len(name) > MAX_NAME:
            raise TemplateError(f"{at}field name {name[:20]!r}… is longer than {MAX_NAME} characters")
        parts.append(Field(name))
        pos, opened = m.end(), None
    if opened is not None:
        raise TemplateError(f"{at}'{{{{' is not closed with '}}}}'")
    parts.append(line[pos:])
    for a, between, b in zip(parts, parts[1:], parts[2:]):
        if isinstance(a, Field) and isinstance(b, Field) and not str(between).strip():
            raise TemplateError(f"{at}fields {{{{{a.name}}}}} and {{{{{b.name}}}}} need some text between them "
                                "(a comma, a label) so they can be told apart")
    return [p for p in parts if p != ""]


def parse_template(text: str, path: str | Path | None = None, name: str | None = None) -> Template:
    """A template from its text; `path` only names it in errors and gives the default name."""
    path = None if path is None else Path(path)
    if "\x00" in text:
        raise TemplateError("not a text file (it contains NUL bytes)", path)
    raw = text.splitlines()
    first = next((i for i, ln in enumerate(raw) if ln.strip()), None)
    if first is not None and raw[first].lstrip().startswith("# "):
        name = name or raw[first].strip()[2:].strip()
        raw[first] = ""
    lines, rows, seen = [], [], {}
    for number, line in enumerate(raw, 1):
        if not line.strip():
            continue
        try:
            parts = parse_line(line, f"line {number}")
        except TemplateError as e:
            raise TemplateError(e.problem, path) from None
        for p in parts:
            if isinstance(p, Field):
                key = p.name.casefold()
                if key in seen:
                    raise TemplateError(f"line {number}: duplicate field {{{{{p.name}}}}} (first on line "
                                        f"{seen[key]}); give each field its own name", path)
                seen[key] = number
        lines.append(" ".join(line.split()))
        rows.append(parts)
    if not lines:
        raise TemplateError("template has no text", path)
    if not name:
        stem = path.stem if path is not None else "Template"
        name = " ".join(stem.replace("_", " ").replace("-", " ").split()) or "Template"
        name = name[:1].upper() + name[1:]
    return Template(name=name, lines=lines, rows=rows, path=path)


def load_template(path: str | Path) -> Template:
    """Read and check a template file; every problem is a TemplateError naming the file."""
    path = Path(path)
    if path.is_dir():
        raise TemplateError("is a folder, not a template file", path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise TemplateError(f"too large ({size // 1024} KB; a template may be at most {MAX_BYTES // 1024} KB)",
                                path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise TemplateError("file not found", path) from None
    except OSError as e:
        raise TemplateError(f"cannot read file ({e.strerror or e})", path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TemplateError(f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                            "save it as UTF-8", path) from None
    return parse_template(text, path)


def user_dir() -> Path:
    return steno_home() / "templates"


def list_templates(folders: list[Path] | None = None) -> tuple[list[Template], list[TemplateError]]:
    """The usable templates (built-in first, then the user's) and the files that are broken.

    A broken file never hides the others: it comes back as an error to show.
    """
    templates, errors = [], []
    for folder in folders if folders is not None else [BUILTIN_DIR, user_dir()]:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in SUFFIXES or path.name.startswith("."):
                continue
            try:
                templates.append(load_template(path))
            except TemplateError as e:
                errors.append(e)
    return templates, errors


# ------------------------------------------------------------------- transcript side


def render_line(parts: list[Part], values: list[str | None] | None = None) -> str:
    """A row's text: literal text with each field's value, or its placeholder when None."""
    values = list(values or [])
    out, k = [], 0
    for p in parts:
        if isinstance(p, Field):
            value = values[k] if k < len(values) else None
            out.append(placeholder(p.name) if value is None else value)
            k += 1
        else:
            out.append(p)
    return " ".join("".join(out).split())


def new_transcript(template: Template) -> Transcript:
    """A transcript to fill: one row per template line, the template kept in its meta."""
    segments = [Segment(start=i * ROW_SECONDS, end=i * ROW_SECONDS + ROW_LENGTH, text=render_line(parts))
                for i, parts in enumerate(template.rows)]
    return Transcript(segments=segments, meta={META_KEY: {"name": template.name, "lines": list(template.lines)}})


def template_rows(transcript: Transcript) -> list[list[Part]]:
    """The parsed template line of each row ([] for a row without one); [] if no template."""
    info = transcript.meta.get(META_KEY) if isinstance(transcript.meta, dict) else None
    lines = info.get("lines") if isinstance(info, dict) else None
    if not isinstance(lines, list):
        return []
    rows = []
    for line in lines:
        try:
            rows.append(parse_line(line) if isinstance(line, str) else [])
        except TemplateError:
            rows.append([])  # a hand-edited transcript.json: that row is plain text
    return rows


def _line_pattern(parts: list[Part]) -> re.Pattern:
    """Matches a row's text to its template line; group k is field k. Spaces around literal
    text may come and go (edits collapse them), and a field reads its placeholder first."""
    out = []
    for p in parts:
        if isinstance(p, Field):
            out.append(f"({re.escape(placeholder(p.name))}|.*)")
        else:
            core = r"\s+".join(re.escape(w) for w in p.split())
            out.append((r"\s*" if p[:1].isspace() else "") + core + (r"\s*" if p[-1:].isspace() and core else ""))
    return re.compile("^" + "".join(out) + "$", re.DOTALL)


def find_fields(row: int, parts: list[Part], text: str) -> list[FieldSpot]:
    """The fields of one row in its current text; [] if the text no longer fits its line."""
    names = [p.name for p in parts if isinstance(p, Field)]
    if not names:
        return []
    m = _line_pattern(parts).match(text)
    if m is None:
        return []
    return [FieldSpot(row, k, name, m.start(k + 1), m.end(k + 1), m.group(k + 1) != placeholder(name))
            for k, name in enumerate(names)]


def fill(parts: list[Part], text: str, index: int, value: str, append: bool = True) -> str | None:
    """The row's text with field `index` set to `value` (added after what it holds when
    `append`); None if the text no longer fits its line."""
    spots = find_fields(0, parts, text)
    if not spots:
        return None
    values = [text[s.start:s.end].strip() if s.filled else None for s in spots]
    old = values[index]
    values[index] = f"{old} {value}" if append and old else value
    return render_line(parts, values)
