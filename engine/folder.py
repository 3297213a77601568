"""A model on disk: one folder holding everything needed to run (and keep training) a model.

    steno.json              ModelConfig: family, encoder/bridge kinds and sizes, prompt, versions
    encoder/                the speech encoder in transformers' format
    lm/                     the causal LM and its tokenizer in transformers' format
    bridge.safetensors      the bridge weights (what we train)
    encoder_bridge.onnx     encoder+bridge graph for ONNX Runtime, rebuilt when stale
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine.bridge import build_bridge
from engine.config import CONFIG_NAME, ModelConfig
from engine.encoder import SpeechEncoder
from engine.errors import ModelFolderError
from engine.files import atomic_dir
from engine.model import SpeechLM

BRIDGE_WEIGHTS = "bridge.safetensors"
ONNX_NAME = "encoder_bridge.onnx"
ONNX_META = "encoder_bridge.json"

_REQUIRED = {
    CONFIG_NAME: "the model config",
    "encoder/config.json": "the speech encoder",
    "lm/config.json": "the language model",
    BRIDGE_WEIGHTS: "the bridge weights",
}


def check_folder(folder: str | Path) -> ModelConfig:
    """Fail with one clear line if the folder is not a complete model this Steno can read."""
    folder = Path(folder)
    if not folder.exists():
        raise ModelFolderError("model folder does not exist", folder)
    if not folder.is_dir():
        raise ModelFolderError("not a folder (a model is a folder with steno.json inside)", folder)
    config = ModelConfig.load(folder)
    if config.family == "whisper":
        from engine.whisper_backend import check_whisper_folder

        check_whisper_folder(folder)
    if config.family != "bridge":
        return config
    for rel, what in _REQUIRED.items():
        if not (folder / rel).is_file():
            raise ModelFolderError(f"incomplete model folder: {rel} ({what}) is missing", folder)
    for sub in ("encoder", "lm"):
        if not any((folder / sub).glob("*.safetensors")) and not any((folder / sub).glob("*.bin")):
            raise ModelFolderError(f"incomplete model folder: {sub}/ has no weights", folder)
    if not any((folder / "lm").glob("tokenizer*")):
        raise ModelFolderError("incomplete model folder: lm/ has no tokenizer", folder)
    return config


def save_model(model: SpeechLM, folder: str | Path) -> Path:
    """Write the whole model folder atomically: a killed save never leaves a half folder."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        model.encoder.save(tmp / "encoder")
        model.lm.save_pretrained(tmp / "lm")
        model.tokenizer.save_pretrained(tmp / "lm")
        save_file({k: v.contiguous() for k, v in model.bridge.state_dict().items()}, tmp / BRIDGE_WEIGHTS)
        model.config.save(tmp)
    return folder


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> SpeechLM:
    folder = Path(folder)
    config = check_folder(folder)
    if config.family != "bridge":
        raise ModelFolderError(f"a {config.family!r} model, not a bridge model", folder)
    try:
        encoder = SpeechEncoder.load(config.encoder, folder / "encoder")
        lm = AutoModelForCausalLM.from_pretrained(folder / "lm").eval()
        tokenizer = AutoTokenizer.from_pretrained(folder / "lm", **config.tokenizer_kwargs)
    except (OSError, ValueError) as e:
        raise ModelFolderError(f"cannot load model parts ({_first_line(e)})", folder) from None
    bridge = build_bridge(config.bridge, encoder.hidden_size, lm.get_input_embeddings().embedding_dim,
                          lm.get_input_embeddings().num_embeddings)
    try:
        state = load_file(folder / BRIDGE_WEIGHTS)
        bridge.load_state_dict(state)
    except Exception as e:  # safetensors raises its own types for corrupt files
        raise ModelFolderError(f"bridge weights do not match the config ({_first_line(e)})", folder) from None
    model = SpeechLM(config, encoder, bridge.eval(), lm, tokenizer)
    return model.to(device)


def graph_fingerprint(model: SpeechLM) -> str:
    """Hash of everything the encoder+bridge graph depends on: weights, buffers and config."""
    h = hashlib.sha256()
    h.update(json.dumps({"encoder": model.config.encoder.__dict__, "bridge": model.config.bridge.__dict__},
                        sort_keys=True, default=str).encode())
    for prefix, module in (("encoder", model.encoder), ("bridge", model.bridge)):
        for name, t in sorted(module.state_dict(keep_vars=False).items()):
            h.update(f"{prefix}.{name}{tuple(t.shape)}".encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        for name, buf in sorted(module.named_buffers()):
            h.update(name.encode())
            h.update(buf.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
