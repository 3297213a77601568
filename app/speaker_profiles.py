"""Saved voices (engine.speakers.profiles) kept in the project library, encrypted with it.

One JSON file, `speaker-profiles.json` at the library's top (beside the project folders), read
and written through app/vault.py: encrypted whenever the library encrypts its files, and
converted with them when encryption is turned on or off.
"""

from __future__ import annotations

import base64
import json

import numpy as np

from app import vault
from app.projects import projects_root
from engine.errors import StenoError
from engine.speakers.profiles import Profile

FILE = "speaker-profiles.json"


def _path():
    return projects_root() / FILE


def load_profiles() -> list[Profile]:
    """The saved voices, [] when none were saved. StenoError for a damaged file or a locked library."""
    path = _path()
    if not path.is_file():
        return []
    try:
        data = json.loads(vault.read_bytes(path, projects_root()).decode("utf-8"))
        return [Profile(d["name"], np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4").copy(),
                        float(d.get("seconds", 0.0))) for d in data["profiles"]]
    except (ValueError, KeyError, TypeError) as e:
        raise StenoError(f"the saved voices cannot be read ({e})", path) from None


def save_profiles(profiles: list[Profile]) -> None:
    root = projects_root()
    root.mkdir(parents=True, exist_ok=True)
    data = {"format": "steno-speaker-profiles", "version": 1, "profiles": [
        {"name": p.name, "seconds": p.seconds,
         "embedding": base64.b64encode(np.asarray(p.embedding, dtype="<f4").tobytes()).decode("ascii")}
        for p in profiles]}
    vault.write_bytes(_path(), json.dumps(data, indent=1).encode("utf-8"), root)


def add_profile(profile: Profile) -> None:
    """Save a voice; one of the same name is replaced (the user recorded it again)."""
    name = " ".join(profile.name.split())
    if not name:
        raise StenoError("a saved voice needs a name")
    profile.name = name
    save_profiles([p for p in load_profiles() if p.name != name] + [profile])


def remove_profile(name: str) -> None:
    save_profiles([p for p in load_profiles() if p.name != name])
