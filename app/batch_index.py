"""The index of a `steno batch` output folder: one JSON row per input, the run's memory.

Each finished file appends its row (flushed and synced) the moment its outputs are on disk,
so a run killed at any point loses only the files in flight; a row torn by that kill is
skipped when read. The last row for a path wins; at the start and end of a run the file is
rewritten (atomically) with one row per input, ready to load for search:
`pandas.read_json("index.jsonl", lines=True)`.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from engine.errors import StenoError
from engine.files import atomic_write_text

INDEX_NAME = "index.jsonl"
LOCK_NAME = ".steno-batch.lock"


def load_index(out_dir: Path) -> dict[str, dict]:
    """The latest row per input path; lines that are not whole JSON objects are ignored."""
    rows: dict[str, dict] = {}
    path = out_dir / INDEX_NAME
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return rows
    except OSError as e:
        raise StenoError(f"cannot read the index ({e.strerror or e})", path) from None
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("path"), str):
            rows[row["path"]] = row
    return rows


def is_done(row: dict | None, size: int, mtime: float, model: str, outputs: list[Path]) -> bool:
    """A row that still stands for the file: same size, time and model, and every output there."""
    return (row is not None and row.get("status") == "done" and row.get("size") == size
            and row.get("mtime") == mtime and row.get("model") == model and all(p.is_file() for p in outputs))


class Index:
    """The open index of one run; holds the output folder's lock so two runs cannot interleave."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.path = out_dir / INDEX_NAME
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            self._lock = open(out_dir / LOCK_NAME, "a")
        except OSError as e:
            raise StenoError(f"cannot write the output folder ({e.strerror or e})", out_dir) from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise StenoError("another `steno batch` is writing to this folder; wait for it or choose another",
                             out_dir) from None
        self.rows = load_index(out_dir)
        self.compact()
        self._file = open(self.path, "a", encoding="utf-8")

    def add(self, row: dict) -> None:
        self.rows[row["path"]] = row
        try:
            self._file.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:  # a full disk: the run stops with one line; what was written stays
            raise StenoError(f"cannot write the index ({e.strerror or e})", self.path) from None

    def compact(self) -> None:
        """One row per input, replacing the file atomically: a crash keeps the old one whole."""
        text = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in self.rows.values())
        try:
            atomic_write_text(self.path, text)
        except OSError as e:
            raise StenoError(f"cannot write the index ({e.strerror or e})", self.path) from None

    def close(self) -> None:
        self._file.close()
        self.compact()
        self._lock.close()
