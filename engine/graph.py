"""ONNX graphs cached in a model folder, rebuilt when what they were made from changes.

A graph takes one clip's encoder input (waveform or log-mel, any length up to 30 s) and
returns the vectors the decoder reads. A fingerprint of the weights it was made from is
stored beside it, so a retrained bridge or a changed encoder never runs stale, with the
graph's size and sha256, so a damaged graph is made again instead of failing to load. Both
families use this: the bridge family for encoder+bridge, the Whisper family for its encoder.
"""

from __future__ import annotations

import errno
import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from engine.errors import ModelFolderError
from engine.files import atomic_path, atomic_write_text
from engine.models.integrity import sha256_file, stamp

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
    outputs (a record without output names is of a graph with only "embeddings"), and is
    still whole (graph_intact)."""
    if not (path.is_file() and meta_path.is_file()):
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, OSError):
        return False
    if not isinstance(meta, dict):
        return False
    return (meta.get("fingerprint") == fingerprint and meta.get("outputs", ["embeddings"]) == list(outputs)
            and graph_intact(path, meta_path, meta))


def graph_intact(path: Path, meta_path: Path, meta: dict | None = None) -> bool:
    """Whether the graph file is the one that was written: its size, and its sha256 when its
    time changed. A record from before sizes were kept is checked by parsing the graph once
    (then its size and sha256 are recorded). A damaged graph is made again, as a missing one is."""
    try:
        meta = meta if meta is not None else json.loads(meta_path.read_text())
        got = stamp(path)
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict):
        return False
    if "sha256" in meta:
        if got["size"] != meta.get("size"):
            return False
        if got["mtime_ns"] == meta.get("mtime_ns"):
            return True
        if sha256_file(path) != meta["sha256"]:
            return False
    elif not _parses(path):
        return False
    try:
        atomic_write_text(meta_path, json.dumps(graph_record(path, meta), indent=2))
    except OSError:
        pass  # read-only: checked the slow way again next time
    return True


def graph_record(path: Path, fields: dict) -> dict:
    """`fields` plus what graph_intact checks: the graph's size, time and sha256."""
    return {**fields, **stamp(path), "sha256": sha256_file(path)}


def _parses(path: Path) -> bool:
    import onnx

    try:
        onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf's DecodeError and onnx's own errors
        return False
    return True


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
        log.info("encoder weights or graph outputs changed, or the graph is damaged: exporting it again")
    try:
        export_graph(module, example, onnx_path, time_axis, outputs)
        fields = {"fingerprint": fingerprint, "outputs": list(outputs), "opset": OPSET, "torch": torch.__version__}
        atomic_write_text(meta_path, json.dumps(graph_record(onnx_path, fields), indent=2))
    except OSError as e:
        raise graph_write_error(e, folder) from None
    return onnx_path


def graph_write_error(e: OSError, folder: Path) -> ModelFolderError:
    """A graph that cannot be written (read-only folder, full disk) is one line, not a traceback."""
    why = "disk full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
    return ModelFolderError(f"cannot write the ONNX graph ({why})", folder)
