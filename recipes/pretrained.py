"""The pretrained parts the default model builds on: the frozen Whisper encoder and the
SmolLM2 LM, converted from the pinned packages into `work/pretrained` on first use."""

from __future__ import annotations

from pathlib import Path

import torch


def load_whisper_encoder(name: str, cache: Path):
    """The frozen encoder from the pinned package (converted once into `cache`), in fp32.

    An encoder-only folder (`NAME-encoder`, what recipes/pack_for_gpu.py carries to a GPU
    machine that cannot install the packages) is used when it is there.
    """
    from transformers import WhisperForConditionalGeneration
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from engine.models.importers.whisper import import_whisper

    if (cache / f"{name}-encoder" / "config.json").is_file():
        return WhisperEncoder.from_pretrained(cache / f"{name}-encoder", dtype=torch.float32).eval()
    folder = cache / name
    if not (folder / "config.json").is_file():
        import_whisper(name, folder)
    return WhisperForConditionalGeneration.from_pretrained(folder).model.encoder.eval()


def ensure_lm(work: Path, lm_name: str = "smollm2") -> Path:
    """The LM folder, imported from the pinned package (or a carried GGUF) on first use."""
    from engine.models.importers.smollm2 import import_smollm2

    lm_dir = work / "pretrained" / lm_name
    if not (lm_dir / "config.json").is_file():
        carried = work / "pretrained" / f"{lm_name}.gguf"
        import_smollm2(lm_dir, gguf=carried if carried.is_file() else None)
    return lm_dir
