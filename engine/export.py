"""Export encoder+bridge to one ONNX graph, cached in the model folder.

The graph takes one clip's encoder input (waveform or log-mel, any length up to 30 s) and
returns the LM input vectors. It is rebuilt whenever the weights it was made from change
(a fingerprint of them is stored beside it), so a retrained bridge never runs stale.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from engine.files import atomic_path, atomic_write_text
from engine.folder import ONNX_META, ONNX_NAME, graph_fingerprint
from engine.model import SpeechLM

log = logging.getLogger(__name__)
OPSET = 18


class EncoderBridgeGraph(nn.Module):
    def __init__(self, model: SpeechLM):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model.speech_embeddings(inputs)


def export_onnx(model: SpeechLM, path: str | Path, example: torch.Tensor | None = None) -> Path:
    """Write the encoder+bridge graph with a dynamic time axis (atomically)."""
    path = Path(path)
    if example is None:
        example = _example_input(model)
    graph = EncoderBridgeGraph(model).eval().cpu()
    time_axis = 2 if model.config.encoder.kind == "whisper" else 1
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused kernel has no ONNX form
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (example.cpu(),), str(tmp), input_names=["inputs"], output_names=["embeddings"],
                          dynamic_axes={"inputs": {time_axis: "time"}, "embeddings": {1: "tokens"}},
                          opset_version=OPSET, dynamo=False)
    torch.backends.mha.set_fastpath_enabled(fastpath)
    return path


def ensure_onnx(model: SpeechLM, folder: str | Path) -> Path:
    """The folder's ONNX graph, exported again if missing or made from other weights."""
    folder = Path(folder)
    onnx_path, meta_path = folder / ONNX_NAME, folder / ONNX_META
    fingerprint = graph_fingerprint(model)
    if onnx_path.is_file() and meta_path.is_file():
        try:
            if json.loads(meta_path.read_text()).get("fingerprint") == fingerprint:
                return onnx_path
        except (json.JSONDecodeError, OSError):
            pass
        log.info("encoder+bridge weights changed: exporting the ONNX graph again")
    export_onnx(model, onnx_path)
    atomic_write_text(meta_path, json.dumps({"fingerprint": fingerprint, "opset": OPSET,
                                             "torch": torch.__version__}, indent=2))
    return onnx_path


def _example_input(model: SpeechLM) -> torch.Tensor:
    seconds = 4
    if model.config.encoder.kind == "whisper":
        return torch.randn(1, model.config.encoder.n_mels, seconds * 100)
    return torch.randn(1, seconds * 16000) * 0.1
