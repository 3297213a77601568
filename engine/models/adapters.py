"""LoRA adapters: separate folders (peft format + steno_adapter.json) applied to a base model.

An adapter is tied to the exact base model it was trained on (its `model_id`): applying
it to another model would silently produce garbage, so that is refused with a clear error.
An adapter may also carry retrained bridge weights (`bridge.safetensors`).
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import StenoError

ADAPTER_META = "steno_adapter.json"
ADAPTER_BRIDGE = "bridge.safetensors"


def read_adapter_meta(folder: str | Path) -> dict:
    folder = Path(folder)
    meta_path = folder / ADAPTER_META
    if not folder.is_dir():
        raise StenoError("adapter folder does not exist", folder)
    if not meta_path.is_file():
        raise StenoError(f"not a Steno adapter ({ADAPTER_META} is missing)", folder)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StenoError(f"unreadable adapter metadata ({e})", meta_path) from None
    if not isinstance(meta, dict) or "base_model_id" not in meta:
        raise StenoError("adapter metadata has no base_model_id", meta_path)
    return meta


def check_adapter(folder: str | Path, base_model_id: str) -> dict:
    meta = read_adapter_meta(folder)
    if meta["base_model_id"] != base_model_id:
        raise StenoError(
            f"adapter was made for another base model ({meta.get('base_model_name') or meta['base_model_id']}), "
            f"not this one ({base_model_id})", folder)
    return meta


def apply_adapter(model, folder: str | Path, base_model_id: str) -> dict:
    """Wrap the model's decoder LM in the adapter's LoRA weights (and load its bridge, if any)."""
    from peft import PeftModel
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = check_adapter(folder, base_model_id)
    target = meta.get("target", "lm")
    if (folder / "adapter_config.json").is_file():
        if target == "whisper":
            model.whisper = PeftModel.from_pretrained(model.whisper, folder).eval()
        else:
            model.lm = PeftModel.from_pretrained(model.lm, folder).eval()
    bridge_path = folder / ADAPTER_BRIDGE
    if bridge_path.is_file() and hasattr(model, "bridge"):
        model.bridge.load_state_dict(load_file(bridge_path))
    return meta
