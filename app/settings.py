"""The app's own settings, kept as a small JSON file beside the user's models and projects.

A JSON file under steno_home() (not QSettings) so that everything Steno keeps about a user
lives in one folder they can back up, and tests with their own STENO_HOME never touch it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from engine.files import atomic_write_text
from engine.models import steno_home

log = logging.getLogger(__name__)

SETTINGS_NAME = "app_settings.json"


@dataclass
class AppSettings:
    model: str | None = None  # folder or installed name; None = the best installed model
    adapter: str | None = None  # adapter folder; None = the base model
    device: str = "auto"  # auto | cpu | cuda
    beam_size: int = 1
    hints: list[str] = field(default_factory=list)  # words that may occur (drug names, people...)
    theme: str = "system"  # system | light | dark
    input_device: int | None = None  # sounddevice index; None = the system default
    live_dictation: bool = True  # transcribe each pause while recording
    push_to_talk: bool = False
    last_folder: str | None = None  # where the last file dialog was

    @classmethod
    def load(cls, path: Path | None = None) -> "AppSettings":
        """Read the settings; a damaged file gives the defaults (and a log line), never a crash."""
        path = path or settings_path()
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (OSError, ValueError, TypeError) as e:
            log.warning("settings file %s unreadable (%s): using defaults", path, e)
            return cls()

    def save(self, path: Path | None = None) -> None:
        atomic_write_text(path or settings_path(), json.dumps(dataclasses.asdict(self), indent=2) + "\n")


def settings_path() -> Path:
    return steno_home() / SETTINGS_NAME
