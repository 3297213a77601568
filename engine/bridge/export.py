"""Export a bridge model's encoder+bridge to one ONNX graph, cached in its model folder
(engine.graph), with a ctc bridge's frame log-probabilities as a second output."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from engine.bridge.folder import graph_fingerprint
from engine.bridge.model import SpeechLM
from engine.files import atomic_write_text
from engine.graph import ONNX_META, ONNX_NAME, ensure_graph, export_graph, graph_intact
from engine.models.folder import BRIDGE_WEIGHTS
from engine.models.integrity import stamp


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


def source_stamps(folder: Path) -> dict:
    """Size and time of every file the graph is made from: the config, the encoder, the
    bridge and the LM (whose embedding rows the ctc bridge's label embeddings are)."""
    paths = [folder / "steno.json", folder / BRIDGE_WEIGHTS, *sorted((folder / "encoder").iterdir()),
             *sorted((folder / "lm").glob("*.safetensors"))]
    return {p.relative_to(folder).as_posix(): stamp(p) for p in paths if p.is_file()}


def fresh_graph(folder: str | Path) -> Path | None:
    """The folder's graph when the files it was made from are the very files that are there
    now (sizes and times, recorded by record_sources), or None. Its fingerprint hashes the
    torch encoder's and bridge's tensors, so checking it meant loading the encoder (150 MB,
    1-2 s) only to let it go once the graph runs; this check reads no weights."""
    folder = Path(folder)
    meta_path = folder / ONNX_META
    try:
        meta = json.loads(meta_path.read_text())
        sources = source_stamps(folder)
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("sources") != sources:
        return None
    return folder / ONNX_NAME if graph_intact(folder / ONNX_NAME, meta_path) else None


def record_sources(folder: str | Path) -> None:
    """Note beside a graph just checked by its fingerprint (ensure_onnx of a model loaded from
    `folder`) which files it was made from, for fresh_graph. A read-only folder only means
    loading the encoder to check the graph next time too."""
    folder = Path(folder)
    meta_path = folder / ONNX_META
    try:
        meta = json.loads(meta_path.read_text())
        atomic_write_text(meta_path, json.dumps({**meta, "sources": source_stamps(folder)}, indent=2))
    except (OSError, ValueError):
        pass
