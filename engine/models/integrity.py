"""Is a model folder still what was installed? Damage is found before loading, in one line.

`steno setup` records each file's size and sha256 in a hidden manifest (hidden, so the
model's id, which ties adapters to it, does not change). Each load compares sizes and
modification times (one stat per file); only a file whose time changed is hashed again,
so a few MB overwritten inside a weights file are found without hashing gigabytes on
every load. Every folder, with a manifest or not (saved by the trainer, imported), also
gets the structural check: each safetensors file is as long as its header says.

steno.json is left out of the manifest (measured figures are written into it later; the
config is checked when it is read), and so are the ONNX graphs, which are rebuilt from
the weights when damaged (engine.graph).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from engine.errors import ModelFolderError, first_line
from engine.files import atomic_write_text
from engine.models.config import CONFIG_NAME

MANIFEST = ".steno_files.json"
REPAIR = "run `steno setup` to repair an installed model"
PARTS = {"encoder": "the speech encoder", "lm": "the language model", "bridge.safetensors": "the bridge weights",
         "whisper": "the Whisper model"}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def tracked_files(folder: Path) -> list[Path]:
    """The files a model's manifest covers (see the module's docstring for what is left out)."""
    found = []
    for path in sorted(Path(folder).rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel != CONFIG_NAME and not rel.startswith("encoder_bridge") and not _hidden(rel):
            found.append(path)
    return found


def _hidden(rel: str) -> bool:
    """Dot-files and anything in a dot-folder: the manifest, temporary and leftover files."""
    return "/." in f"/{rel}"


def stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def record_files(folder: str | Path) -> None:
    """Write the manifest: size, time and sha256 of each file, as installed now."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): {**stamp(p), "sha256": sha256_file(p)} for p in tracked_files(folder)}
    _write_manifest(folder, files)


def _write_manifest(folder: Path, files: dict) -> None:
    atomic_write_text(folder / MANIFEST, json.dumps({"files": files}, indent=1) + "\n")


def has_manifest(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def damaged(folder: Path, rel: str, problem: str, hint: str = REPAIR) -> ModelFolderError:
    what = PARTS.get(rel.split("/")[0])
    return ModelFolderError(f"damaged model folder{f' ({what})' if what else ''}: {problem}; {hint}", folder / rel)


def verify_files(folder: str | Path, full: bool = False) -> None:
    """Compare the folder with its manifest (if any): missing, resized or changed files are
    damage. full=True hashes every file; otherwise only those whose time changed."""
    folder = Path(folder)
    try:
        files = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"]
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelFolderError(f"unreadable file list ({first_line(e)}); {REPAIR}", folder / MANIFEST) from None
    refreshed = False
    for rel, want in files.items():
        path = folder / rel
        try:
            got = stamp(path)
        except OSError:
            raise damaged(folder, rel, "the file is missing") from None
        if got["size"] != want["size"]:
            raise damaged(folder, rel, f"{got['size']} bytes, but {want['size']} were installed")
        if full or got["mtime_ns"] != want["mtime_ns"]:
            if sha256_file(path) != want["sha256"]:
                raise damaged(folder, rel, "its contents changed since it was installed (sha256 differs)")
            refreshed |= got["mtime_ns"] != want["mtime_ns"]
            want["mtime_ns"] = got["mtime_ns"]
    if refreshed:  # same bytes, new time (a copy): hash it once, not on every load
        try:
            _write_manifest(folder, files)
        except OSError:
            pass  # a read-only folder: it is hashed again next time, which is only slower


def check_safetensors(path: Path, folder: Path | None = None) -> None:
    """A safetensors file must hold a readable header and exactly the bytes it declares."""
    folder = folder or path.parent
    rel = path.relative_to(folder).as_posix()
    try:
        size = path.stat().st_size
        if size == 0:
            raise ValueError("the file is empty")
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if size < 8 or not 1 < n <= size - 8:
                raise ValueError("no safetensors header")
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        raise damaged(folder, rel, f"unreadable weights file ({first_line(e)})") from None
    if 8 + n + end != size:
        raise damaged(folder, rel, f"weights file is {size} bytes, its header says {8 + n + end} (truncated?)")


def check_integrity(folder: str | Path, full: bool = False) -> None:
    """Every weights file whole, and (installed models) every file as installed."""
    folder = Path(folder)
    verify_files(folder, full)
    for path in sorted(folder.rglob("*.safetensors")):
        if not _hidden(path.relative_to(folder).as_posix()):
            check_safetensors(path, folder)


def without_hint(problem: str) -> str:
    """A damage message for `steno setup` itself, which is about to repair it."""
    return problem.replace(f"; {REPAIR}", "")
