"""Pretrained speech encoders: the HuBERT family (raw waveform in) and Whisper's (log-mel in).

Both become one `SpeechEncoder` that maps a batch of inputs to frame vectors (B, T, D) at
about 50 frames per second, so the bridge never needs to know which one it reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from engine.features import whisper_log_mel
from engine.models.config import EncoderConfig
from engine.whisper.encoder import whisper_forward

if TYPE_CHECKING:  # transformers' model code (136 MB) only where an encoder is built in torch
    from transformers import PreTrainedModel


class SpeechEncoder(nn.Module):
    def __init__(self, config: EncoderConfig, model: PreTrainedModel):
        super().__init__()
        self.config = config
        self.model = model

    @property
    def hidden_size(self) -> int:
        return self.model.config.d_model if self.config.kind == "whisper" else self.model.config.hidden_size

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs: waveform (B, samples) for HuBERT-like encoders, log-mel (B, n_mels, frames) for Whisper."""
        if self.config.kind == "whisper":
            return whisper_forward(self.model, inputs, self.config.layer)
        out = self.model(inputs, output_hidden_states=self.config.layer is not None)
        return out.last_hidden_state if self.config.layer is None else out.hidden_states[self.config.layer]

    def frozen_front_end(self) -> list[nn.Parameter]:
        """The convolutional front end, which the paper keeps frozen in every recipe."""
        if self.config.kind == "whisper":
            mods = [self.model.conv1, self.model.conv2]
        else:
            mods = [self.model.feature_extractor]
        return [p for m in mods for p in m.parameters()]

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(folder)

    @classmethod
    def load(cls, config: EncoderConfig, folder: Path) -> "SpeechEncoder":
        from transformers import AutoModel
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        if config.kind == "whisper":
            model = WhisperEncoder.from_pretrained(folder)
        else:
            model = AutoModel.from_pretrained(folder)
        return cls(config, model.eval())

    @classmethod
    def from_config(cls, config: EncoderConfig, hf_config) -> "SpeechEncoder":
        """A randomly initialised encoder (tests, and the paper's training from a config)."""
        from transformers import AutoModel
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        if config.kind == "whisper":
            return cls(config, WhisperEncoder(hf_config).eval())
        return cls(config, AutoModel.from_config(hf_config).eval())


def encoder_inputs(config: EncoderConfig, audio: np.ndarray) -> np.ndarray:
    """What the encoder (and its ONNX graph) takes for one clip, with a batch axis of 1."""
    audio = np.asarray(audio, dtype=np.float32)
    if config.kind == "whisper":
        return whisper_log_mel(audio, config.n_mels)[None]
    if config.normalize_waveform:
        audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
    return audio[None]


def min_input_samples(config: EncoderConfig) -> int:
    """Shortest clip the encoder accepts: HuBERT's conv stack needs 400 samples for one frame."""
    return 400 if config.kind != "whisper" else 320


def encoder_hidden_size(config: EncoderConfig, folder: Path) -> int:
    """SpeechEncoder.hidden_size read from the encoder's config.json, its weights left unread
    (and transformers not imported)."""
    hf_config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    size = hf_config.get("d_model" if config.kind == "whisper" else "hidden_size")
    if not isinstance(size, int):
        raise ValueError(f"the encoder's config.json gives no hidden size ({folder / 'config.json'})")
    return size
