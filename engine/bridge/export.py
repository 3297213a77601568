"""Export a bridge model's encoder+bridge to one ONNX graph, cached in its model folder
(engine.graph), with a ctc bridge's frame log-probabilities as a second output."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from engine.bridge.folder import graph_fingerprint
from engine.bridge.model import SpeechLM
from engine.graph import ensure_graph, export_graph


class EncoderBridgeGraph(nn.Module):
    def __init__(self, model: SpeechLM):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model.speech_outputs(inputs)


def graph_outputs(model: SpeechLM) -> list[str]:
    """The graph's output names: the embeddings, and a ctc bridge's frame log-probabilities."""
    return ["embeddings", "ctc_logprobs"] if model.config.bridge.kind == "ctc" else ["embeddings"]


def export_onnx(model: SpeechLM, path: str | Path, example: torch.Tensor | None = None) -> Path:
    """Write the encoder+bridge graph with a dynamic time axis (atomically)."""
    if example is None:
        example = _example_input(model)
    return export_graph(EncoderBridgeGraph(model), example, path, _time_axis(model), graph_outputs(model))


def ensure_onnx(model: SpeechLM, folder: str | Path) -> Path:
    """The folder's encoder+bridge graph, exported again if missing or made from other weights."""
    return ensure_graph(EncoderBridgeGraph(model), folder, graph_fingerprint(model), _example_input(model),
                        _time_axis(model), graph_outputs(model))


def _time_axis(model: SpeechLM) -> int:
    return 2 if model.config.encoder.kind == "whisper" else 1


def _example_input(model: SpeechLM) -> torch.Tensor:
    seconds = 4
    if model.config.encoder.kind == "whisper":
        return torch.randn(1, model.config.encoder.n_mels, seconds * 100)
    return torch.randn(1, seconds * 16000) * 0.1
