"""A model on disk is one folder with `steno.json` beside the weights; this checks any of them.

A folder with a missing part fails here with one line naming it, before anything is loaded.

bridge family                             whisper family
    steno.json          ModelConfig           steno.json          ModelConfig
    encoder/            speech encoder        whisper/            WhisperForConditionalGeneration
    lm/                 causal LM + tokenizer                         + its tokenizer (transformers)
    bridge.safetensors  the bridge weights
    encoder_bridge.onnx encoder+bridge graph  encoder_bridge.onnx the encoder alone as a graph
    encoder_bridge.json its fingerprint       encoder_bridge.json its fingerprint

The graphs are rebuilt when missing, damaged or made from other weights (engine.graph);
damaged weights are found by engine.models.integrity.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import ModelFolderError
from engine.models.config import CONFIG_NAME, ModelConfig
from engine.models.integrity import check_integrity

WHISPER_DIR = "whisper"
BRIDGE_WEIGHTS = "bridge.safetensors"

BRIDGE_PARTS = {
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
        check_whisper_folder(folder)
    elif config.family == "bridge":
        check_bridge_folder(folder)
    check_integrity(folder)
    return config


def check_bridge_folder(folder: Path) -> None:
    """Fail with one clear line if a bridge-family folder is missing a part."""
    for rel, what in BRIDGE_PARTS.items():
        if not (folder / rel).is_file():
            raise ModelFolderError(f"incomplete model folder: {rel} ({what}) is missing", folder)
    for sub in ("encoder", "lm"):
        if not any((folder / sub).glob("*.safetensors")) and not any((folder / sub).glob("*.bin")):
            raise ModelFolderError(f"incomplete model folder: {sub}/ has no weights", folder)
    if not any((folder / "lm").glob("tokenizer*")):
        raise ModelFolderError("incomplete model folder: lm/ has no tokenizer", folder)


def check_whisper_folder(folder: str | Path) -> None:
    """Fail with one clear line if a Whisper-family folder is missing a part."""
    folder = Path(folder)
    sub = folder / WHISPER_DIR
    needs = {"config.json": "the model config", "generation_config.json": "the decoding config",
             "tokenizer.json": "the tokenizer", "tokenizer_config.json": "the tokenizer config"}
    for name, what in needs.items():
        if not (sub / name).is_file():
            raise ModelFolderError(f"incomplete model folder: {WHISPER_DIR}/{name} ({what}) is missing", folder)
    if not any(sub.glob("*.safetensors")):
        raise ModelFolderError(f"incomplete model folder: {WHISPER_DIR}/ has no weights", folder)
