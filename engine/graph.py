"""ONNX graphs cached in a model folder, rebuilt when what they were made from changes.

A graph takes one clip's encoder input (waveform or log-mel, any length up to 30 s) and
returns the vectors the decoder reads. A fingerprint of the weights it was made from is
stored beside it, so a retrained bridge or a changed encoder never runs stale. Both
families use this: the bridge family for encoder+bridge, the Whisper family for its encoder.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from engine.files import atomic_path, atomic_write_text

log = logging.getLogger(__name__)
OPSET = 18
ONNX_NAME = "encoder_bridge.onnx"
ONNX_META = "encoder_bridge.json"


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


def is_fresh(path: Path, meta_path: Path, fingerprint: str, outputs: list[str] = ("embeddings",)) -> bool:
    """Whether the graph at `path` was made from weights with this fingerprint, with these
    outputs (a record without output names is of a graph with only "embeddings")."""
    if not (path.is_file() and meta_path.is_file()):
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, OSError):
        return False
    return meta.get("fingerprint") == fingerprint and meta.get("outputs", ["embeddings"]) == list(outputs)


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
    if is_fresh(onnx_path, meta_path, fingerprint, outputs):
        return onnx_path
    if onnx_path.is_file():
        log.info("encoder weights or graph outputs changed: exporting the ONNX graph again")
    export_graph(module, example, onnx_path, time_axis, outputs)
    atomic_write_text(meta_path, json.dumps({"fingerprint": fingerprint, "outputs": list(outputs), "opset": OPSET,
                                             "torch": torch.__version__}, indent=2))
    return onnx_path
