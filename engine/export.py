"""Export encoder+bridge (or, for the Whisper family, the encoder alone) to one ONNX graph,
cached in the model folder.

The graph takes one clip's encoder input (waveform or log-mel, any length up to 30 s) and
returns the vectors the decoder reads. It is rebuilt whenever the weights it was made from change
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

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model.speech_outputs(inputs)


def graph_outputs(model: SpeechLM) -> list[str]:
    """The graph's output names: the embeddings, and a ctc bridge's frame log-probabilities."""
    return ["embeddings", "ctc_logprobs"] if model.config.bridge.kind == "ctc" else ["embeddings"]


def export_graph(module: nn.Module, example: torch.Tensor, path: str | Path, time_axis: int,
                 outputs: list[str] = ("embeddings",)) -> Path:
    """Write any one-input graph (inputs -> embeddings [, ctc_logprobs]) with a dynamic time
    axis, atomically."""
    path = Path(path)
    module = module.eval().cpu()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused kernel has no ONNX form
    try:
        with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            axes = {"inputs": {time_axis: "time"}, "embeddings": {1: "tokens"}, "ctc_logprobs": {1: "frames"}}
            torch.onnx.export(module, (example.cpu(),), str(tmp), input_names=["inputs"],
                              output_names=list(outputs), dynamic_axes={k: axes[k] for k in ["inputs", *outputs]},
                              opset_version=OPSET, dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return path


def ensure_graph(module: nn.Module, folder: str | Path, fingerprint: str, example: torch.Tensor,
                 time_axis: int, outputs: list[str] = ("embeddings",)) -> Path:
    """The folder's ONNX graph of `module`, exported again if missing or made from other weights.

    `fingerprint` identifies what the graph was made from (a hash of its weights); it is
    stored beside the graph, with the graph's output names, so a changed model is never run
    through a stale graph, nor a graph made before an output was added (graphs without the
    names in their record had only "embeddings").
    """
    folder = Path(folder)
    onnx_path, meta_path = folder / ONNX_NAME, folder / ONNX_META
    if onnx_path.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("fingerprint") == fingerprint and meta.get("outputs", ["embeddings"]) == list(outputs):
                return onnx_path
        except (json.JSONDecodeError, OSError):
            pass
        log.info("encoder weights or graph outputs changed: exporting the ONNX graph again")
    export_graph(module, example, onnx_path, time_axis, outputs)
    atomic_write_text(meta_path, json.dumps({"fingerprint": fingerprint, "outputs": list(outputs), "opset": OPSET,
                                             "torch": torch.__version__}, indent=2))
    return onnx_path


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
