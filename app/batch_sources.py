"""What `steno batch` transcribes, and where each transcript goes.

A source is an audio file, a folder (searched recursively for audio files) or a manifest
(a text file, one audio path per line; a TSV's first column, so `steno eval` manifests
work). Outputs mirror the inputs' tree under the output folder, below the deepest folder
all sources share, and keep the audio file's whole name (a.wav -> a.wav.txt): two inputs
never share an output path, and a file's output path does not depend on what else is in
the run, so a second run finds the first one's work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StenoError

AUDIO_SUFFIXES = frozenset(
    ".wav .flac .mp3 .m4a .mp4 .aac .ogg .oga .opus .wma .aif .aiff .aifc .caf .amr .webm .mkv .mov .3gp".split())
MANIFEST_SUFFIXES = frozenset((".txt", ".tsv", ".lst", ".list"))


@dataclass(frozen=True)
class Job:
    """One input file: `rel` is its path under the shared root, its outputs' path under DIR."""

    path: Path
    rel: str
    size: int
    mtime: float


@dataclass(frozen=True)
class Missing:
    """A manifest line naming a file that is not there: recorded as failed, not fatal."""

    path: Path
    error: str


def find_inputs(sources: list[str], out_dir: Path) -> tuple[list[Job], list[Missing]]:
    """The jobs of a run, in a stable order; one-line StenoError for a source that cannot be used."""
    out_dir = Path(os.path.abspath(out_dir))
    files: list[Path] = []
    roots: list[Path] = []
    missing: list[Missing] = []
    for source in sources:
        path = Path(os.path.abspath(source))
        if not path.exists():
            raise StenoError("not found (give audio files, folders or a manifest)", source)
        if path.is_dir():
            if out_dir == path or path in out_dir.parents:
                raise StenoError(f"the output folder {out_dir} is inside this source folder: choose one outside it",
                                 source)
            found = _audio_in(path)
            if not found:
                raise StenoError(f"no audio files in this folder (looked for {', '.join(sorted(AUDIO_SUFFIXES))})",
                                 source)
            files += found
            roots.append(path)
        elif path.suffix.lower() in MANIFEST_SUFFIXES:
            listed, gone = read_manifest(path)
            files += listed
            missing += gone
            roots += [p.parent for p in listed] or [path.parent]
        else:
            files.append(path)
            roots.append(path.parent)
    root = Path(os.path.commonpath([str(r) for r in roots]))
    jobs, seen = [], set()
    for f in files:
        if f in seen:
            continue
        seen.add(f)
        st = f.stat()
        jobs.append(Job(f, f.relative_to(root).as_posix(), st.st_size, st.st_mtime))
    return jobs, missing


def _audio_in(folder: Path) -> list[Path]:
    """Audio files under `folder`, sorted; hidden files and folders (.DS_Store, ._a.wav) skipped."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / n for n in sorted(filenames)
                if not n.startswith(".") and Path(n).suffix.lower() in AUDIO_SUFFIXES]
    return out


def read_manifest(path: Path) -> tuple[list[Path], list[Missing]]:
    """Audio paths listed one per line (relative to the manifest's folder); blank and # lines skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise StenoError(f"cannot read the manifest ({getattr(e, 'strerror', None) or e})", path) from None
    found, missing = [], []
    for number, line in enumerate(lines, 1):
        entry = line.split("\t", 1)[0].strip()
        if not entry or entry.startswith("#"):
            continue
        audio = Path(os.path.abspath(path.parent / entry))
        if audio.is_file():
            found.append(audio)
        else:
            what = "is a folder" if audio.is_dir() else "file not found"
            missing.append(Missing(audio, f"{what} (listed in {path} line {number})"))
    if not found and not missing:
        raise StenoError("the manifest lists no files", path)
    return found, missing


def output_paths(out_dir: Path, rel: str, formats: list[str]) -> dict[str, Path]:
    """Where each format's transcript of the input at `rel` goes."""
    return {fmt: out_dir / f"{rel}.{fmt}" for fmt in formats}
