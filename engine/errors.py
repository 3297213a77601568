"""Errors a user can act on.

Every failure that reaches the user is a `StenoError` whose message names the file (or
model folder) and the problem in one line; the CLI prints it and exits non-zero, the GUI
shows it in a dialog. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class StenoError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    def __init__(self, problem: str, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class AudioError(StenoError):
    """Audio that cannot be read, is empty, or is otherwise unusable."""


class ModelFolderError(StenoError):
    """A model folder that is missing parts or comes from an incompatible version."""


class ExportError(StenoError):
    """A transcript that cannot be written in the requested format or place."""


def first_line(e: Exception) -> str:
    """The first line of a library's error message, for a one-line StenoError."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
