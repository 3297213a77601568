"""Adapters on disk: list, delete, merge into a new model folder.

An adapter folder is peft's files (adapter_config.json, adapter_model.safetensors) plus
steno_adapter.json, and `bridge.safetensors` when the bridge was trained too. The
format is read by engine.models.adapters (which also applies it to a loaded model).
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from engine.errors import StenoError
from engine.models.adapters import ADAPTER_META, read_adapter_meta
from trainer.records import AdapterInfo, Scores


def adapters_dir() -> Path:
    from engine.models.registry import steno_home

    return steno_home() / "adapters"


def resolve_adapter(spec: str | Path, root: Path | None = None) -> Path:
    """An adapter folder from a path, or a name under the adapters folder."""
    path = Path(spec).expanduser()
    if path.exists() or "/" in str(spec) or str(spec).startswith("."):
        return path
    candidate = (root or adapters_dir()) / str(spec)
    if candidate.is_dir():
        return candidate
    names = ", ".join(a.name for a in list_adapters(root)) or "none"
    raise StenoError(f"no adapter folder or saved adapter named {str(spec)!r} (saved: {names})")


def adapter_info(folder: Path) -> AdapterInfo:
    meta = read_adapter_meta(folder)
    return AdapterInfo(name=meta.get("name") or folder.name, path=folder, base_model_id=meta["base_model_id"],
                       created=meta.get("created", ""), before=Scores.from_dict(meta.get("before")),
                       after=Scores.from_dict(meta.get("after")), base_model_name=meta.get("base_model_name", ""),
                       meta=meta)


def list_adapters(root: Path | None = None) -> list[AdapterInfo]:
    root = Path(root) if root is not None else adapters_dir()
    found = []
    if root.is_dir():
        for folder in root.iterdir():
            if folder.name.startswith(".") or not (folder / ADAPTER_META).is_file():
                continue  # work folders and half-saved `.tmp` folders are hidden
            try:
                found.append(adapter_info(folder))
            except StenoError:
                continue
    return sorted(found, key=lambda a: (a.created, a.name), reverse=True)


def delete_adapter(path: Path) -> None:
    """Remove an adapter folder and its training work folder; refuse anything else."""
    from trainer.train import work_dir

    path = Path(path)
    read_adapter_meta(path)  # raises unless this really is an adapter
    extra = {p.name for p in path.iterdir()} - {ADAPTER_META, "adapter_config.json", "adapter_model.safetensors",
                                                "adapter_model.bin", "bridge.safetensors", "README.md",
                                                "encoder_bridge.onnx", "encoder_bridge.json"}
    if extra:
        raise StenoError("not deleting: the folder holds files that are not the adapter's "
                         f"({', '.join(sorted(extra))})", path)
    shutil.rmtree(path)
    shutil.rmtree(work_dir(path), ignore_errors=True)


def merge_adapter(adapter: Path, base_model: str | Path, out_model: Path) -> Path:
    """Fold the LoRA (and bridge) weights into a copy of the base model, saved as a model folder."""
    from engine.models.config import CONFIG_NAME, ModelConfig
    from engine.models.registry import model_id, resolve_model
    from trainer.train import check_out_dir

    check_out_dir(Path(out_model), CONFIG_NAME, "a model")
    folder = resolve_model(base_model)
    config = ModelConfig.load(folder)
    base_id = model_id(folder)
    try:
        if config.family == "whisper":
            return _merge_whisper(Path(adapter), folder, config, base_id, Path(out_model))
        return _merge_bridge(Path(adapter), folder, base_id, Path(out_model))
    except OSError as e:
        why = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise StenoError(f"cannot save the merged model ({why}); nothing was replaced", out_model) from None


def _merged_name(config, folder: Path, meta: dict, adapter: Path, base_id: str) -> None:
    name = meta.get("name") or adapter.name
    config.name = f"{config.name or folder.name}+{name}"
    config.metrics = {"merged_adapter": name, "base_model_id": base_id}  # the base's figures no longer hold


def _merge_bridge(adapter: Path, folder: Path, base_id: str, out_model: Path) -> Path:
    from engine.bridge.folder import load_model, save_model
    from engine.models.adapters import apply_adapter

    model = load_model(folder)
    meta = apply_adapter(model, adapter, base_id)  # refuses an adapter made for another model
    if hasattr(model.lm, "merge_and_unload"):
        model.lm = model.lm.merge_and_unload()
    _merged_name(model.config, folder, meta, adapter, base_id)
    return save_model(model, out_model)


def _merge_whisper(adapter: Path, folder: Path, config, base_id: str, out_model: Path) -> Path:
    from peft import PeftModel
    from transformers import WhisperForConditionalGeneration

    from engine.files import atomic_dir
    from engine.models.adapters import check_adapter
    from engine.models.folder import WHISPER_DIR

    meta = check_adapter(adapter, base_id)
    if meta.get("target") != "whisper":
        raise StenoError(f"adapter is for a {meta.get('target', 'lm')!r} model, not a Whisper model", adapter)
    model = WhisperForConditionalGeneration.from_pretrained(folder / WHISPER_DIR)
    model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    _merged_name(config, folder, meta, adapter, base_id)
    with atomic_dir(out_model) as tmp:
        shutil.copytree(folder / WHISPER_DIR, tmp / WHISPER_DIR, ignore=shutil.ignore_patterns("*.safetensors"))
        model.save_pretrained(tmp / WHISPER_DIR)
        config.save(tmp)
    return out_model
