"""LoRA adapters: separate folders (peft format + steno_adapter.json) applied to a base model.

An adapter is tied to the exact base model it was trained on (its `model_id`): applying
it to another model would silently produce garbage, so that is refused with a clear error.
An adapter may also carry retrained bridge weights (`bridge.safetensors`).
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import StenoError, first_line

ADAPTER_META = "steno_adapter.json"
ADAPTER_BRIDGE = "bridge.safetensors"
LORA_CONFIG = "adapter_config.json"
LORA_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


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
    if not isinstance(meta["base_model_id"], str):
        raise StenoError("bad adapter metadata value base_model_id: must be a string", meta_path)
    if meta.get("target", "lm") not in ("lm", "whisper"):
        raise StenoError(f"bad adapter metadata value target = {json.dumps(meta['target'])}: must be lm or whisper",
                         meta_path)
    return meta


def check_adapter(folder: str | Path, base_model_id: str) -> dict:
    meta = read_adapter_meta(folder)
    if meta["base_model_id"] != base_model_id:
        raise StenoError(
            f"adapter was made for another base model ({meta.get('base_model_name') or meta['base_model_id']}), "
            f"not this one ({base_model_id})", folder)
    check_adapter_files(Path(folder))
    return meta


def check_adapter_files(folder: Path) -> None:
    """Every adapter carries LoRA weights: one without them (or with damaged ones) would
    silently give the base model's output, so it is refused before anything is changed."""
    from engine.models.integrity import check_safetensors

    config = folder / LORA_CONFIG
    if not config.is_file():
        raise StenoError(f"incomplete adapter: {LORA_CONFIG} (the LoRA settings) is missing", folder)
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise StenoError(f"unreadable LoRA settings ({e})", config) from None
    if not isinstance(settings, dict) or not settings.get("peft_type"):
        raise StenoError("not peft LoRA settings (no peft_type)", config)
    weights = [folder / name for name in LORA_WEIGHTS if (folder / name).is_file()]
    if not weights:
        raise StenoError(f"incomplete adapter: {LORA_WEIGHTS[0]} (the LoRA weights) is missing", folder)
    for path in weights + [folder / ADAPTER_BRIDGE]:
        if path.suffix == ".safetensors" and path.is_file():
            check_safetensors(path, folder)


def apply_adapter(model, folder: str | Path, base_model_id: str) -> dict:
    """Wrap the model's decoder LM in the adapter's LoRA weights (and load its bridge, if any);
    an LM of engine.bridge.llama gets a copy with the LoRA merged in (no peft)."""
    from safetensors.torch import load_file

    from engine.bridge.llama import Llama, merge_lora

    folder = Path(folder)
    meta = check_adapter(folder, base_model_id)
    target = meta.get("target", "lm")
    bridge_path = folder / ADAPTER_BRIDGE
    try:
        bridge = load_file(bridge_path) if bridge_path.is_file() and hasattr(model, "bridge") else None
        if target == "whisper":
            from peft import PeftModel

            model.whisper = PeftModel.from_pretrained(model.whisper, folder).eval()
        elif isinstance(model.lm, Llama):
            model.lm = merge_lora(model.lm, folder)
        else:
            from peft import PeftModel

            model.lm = PeftModel.from_pretrained(model.lm, folder).eval()
        if bridge is not None:
            model.bridge.load_state_dict(bridge)
    except MemoryError:
        raise
    except Exception as e:  # peft, safetensors and torch each raise their own types
        raise StenoError(f"adapter does not fit this model or is damaged ({first_line(e)})", folder) from None
    return meta
