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
from engine.models.registry import steno_home

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
    window_geometry: str | None = None  # the main window's size and place (Qt's saveGeometry, base64)
    last_project: str | None = None  # the project folder open when the app was closed, reopened at start
    speakers: str = "off"  # label speakers in files: off | auto | a number (engine.speakers)

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


def privacy_statement() -> str:
    """What Steno keeps, where, and what encryption covers: shown in the Settings tab (the
    longer version is docs/privacy.md). Built from the real paths so it is never stale."""
    from app.projects import library_status, projects_root
    from engine.models.registry import models_dir

    home = steno_home()
    try:
        state = library_status()
    except Exception as e:  # noqa: BLE001 - a damaged key file must not hide the statement
        state = f"unknown ({e})"
    encrypted = {"plain": "not encrypted", "encrypted": "encrypted with your passphrase"}.get(
        state, f"encryption state: {state} (finished after the next unlock)")
    return "\n".join([
        "Nothing leaves this computer. Steno opens no network connection while it runs: models are read "
        "from local folders, and the microphone, your files and your text are processed here.",
        "",
        f"Everything Steno keeps is under {home}:",
        f"• projects: {projects_root()} — each recording's or opened file's audio, transcript, the model's "
        f"original transcript, the edit journal and training clips ({encrypted}).",
        f"• models: {models_dir()} — speech models (not personal data, never encrypted).",
        f"• adapters: {home / 'adapters'} — vocabulary adapters you trained; they can hold words, example "
        "sentences and audio features from your training data, and are not encrypted.",
        f"• settings: {settings_path()} — including your vocabulary hints (not encrypted).",
        f"• logs: {home / 'logs'} — errors and file paths, which may show project folder names (not encrypted).",
        f"• {home / 'app.lock'} — which project is open, for crash recovery.",
        "",
        "Encryption (Settings → Privacy) covers every file in the projects folder: AES-256-GCM with a key "
        "unlocked by your passphrase (scrypt). A recording is written plain while it is being made, so a "
        "crash cannot lose it, and is encrypted when it stops. While Steno runs, audio being played, "
        "transcribed or trained on is decrypted into a private folder in memory that is deleted on exit. "
        "Not covered: exported files and copied text (they go where you put them), models, adapters, "
        "settings and logs, and the folder names of projects made before encryption was turned on.",
        "If you forget the passphrase, the projects cannot be recovered.",
    ])
