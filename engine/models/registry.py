"""Where installed models live and how `--model NAME|DIR` is resolved.

Models assembled on first use (from the pinned weight packages) live in the user's model
folder, `$STENO_HOME/models/<name>` (default `~/.local/share/steno/models`). A `--model`
value that is an existing folder is used as is; otherwise it is looked up by name there.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ModelFolderError, StenoError
from engine.models.config import CONFIG_NAME, ModelConfig


def steno_home() -> Path:
    env = os.environ.get("STENO_HOME")
    if env:
        if Path(env).exists() and not Path(env).is_dir():
            raise StenoError("STENO_HOME is not a folder: point it at a folder Steno may write to", env)
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "steno"


def writable_folder(path: Path) -> Path:
    """Create one of Steno's own folders (models, adapters); one line when that cannot be done
    (a file in the way, a read-only or full disk) instead of a traceback on first write."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".steno-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        why = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise StenoError(f"cannot write in this folder ({why}); set STENO_HOME to a folder Steno may write to",
                         path) from None
    return path


def models_dir() -> Path:
    return steno_home() / "models"


@dataclass
class ModelInfo:
    name: str
    path: Path
    family: str
    dev_wer: float | None
    rtf: float | None
    problem: str | None = None  # why the folder cannot be used (damaged, incomplete): `steno models` says so


def list_models(full: bool = False) -> list[ModelInfo]:
    """Installed models (half-built `.tmp` folders are ignored); a damaged or incomplete one
    is listed with its problem, not as if it worked. full=True (`steno models`) hashes every
    file against its manifest; otherwise only files whose size or time changed are read."""
    from engine.models.folder import check_folder
    from engine.models.integrity import check_integrity

    root = models_dir()
    found = []
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or not (folder / CONFIG_NAME).is_file():
                continue
            try:
                config = ModelConfig.load(folder)
            except ModelFolderError as e:
                found.append(ModelInfo(folder.name, folder, "?", None, None, str(e)))
                continue
            try:
                check_folder(folder)
                if full:
                    check_integrity(folder, full=True)
                problem = None
            except ModelFolderError as e:
                problem = str(e)
            found.append(ModelInfo(folder.name, folder, config.family, config.metrics.get("dev_wer"),
                                   config.metrics.get("rtf"), problem))
    return found


def resolve_model(spec: str | Path | None) -> Path:
    """A model folder from a path, an installed name, or (None) the best installed model."""
    if spec is not None:
        path = Path(spec).expanduser()
        if path.exists() or os.sep in str(spec) or str(spec).startswith("."):
            return path
        candidate = models_dir() / str(spec)
        if candidate.is_dir():
            return candidate
        names = ", ".join(m.name for m in list_models()) or "none"
        raise StenoError(f"no model folder or installed model named {spec!r} (installed: {names})")
    found = list_models()
    if not found:
        raise StenoError(f"no model installed in {models_dir()}: run `steno setup` or pass --model DIR")
    models = [m for m in found if m.problem is None]
    if not models:
        raise ModelFolderError(f"{found[0].problem} (no installed model is usable)")
    measured = [m for m in models if m.dev_wer is not None]
    return min(measured, key=lambda m: m.dev_wer).path if measured else models[0].path


def model_id(folder: str | Path) -> str:
    """A cheap identity of a model folder's contents, to tie adapters to their base model.

    Small files are hashed whole; large weight files by size plus their first and last MiB,
    which changes whenever the weights are rewritten without reading gigabytes each time.
    The config's `metrics` (dev WER/RTF, recorded after measuring) are left out, so
    recording them does not orphan the model's adapters.
    """
    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if not path.is_file() or rel.startswith("encoder_bridge") or "/." in f"/{rel}":
            continue
        h.update(rel.encode())
        if rel == CONFIG_NAME:  # measured figures are written later: they do not change the model
            h.update(_config_identity(path))
            continue
        size = path.stat().st_size
        h.update(str(size).encode())
        with open(path, "rb") as f:
            if size <= 4 << 20:
                h.update(f.read())
            else:
                h.update(f.read(1 << 20))
                f.seek(-(1 << 20), os.SEEK_END)
                h.update(f.read())
    return h.hexdigest()[:16]


def _config_identity(path: Path) -> bytes:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return path.read_bytes()
    if isinstance(data, dict):
        data.pop("metrics", None)
    return json.dumps(data, sort_keys=True).encode()
