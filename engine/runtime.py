"""Where the work runs: ONNX Runtime for encoder+bridge, torch for the LM.

onnxruntime-gpu lists CUDAExecutionProvider even on machines with no GPU or CUDA
libraries, so the device is decided by the providers a created session actually got.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import onnxruntime.capi.onnxruntime_pybind11_state as ort_errors
import torch

from engine.errors import ModelFolderError, StenoError, first_line

log = logging.getLogger(__name__)


def cpu_threads() -> int:
    """Physical cores are what matter for matmuls; leave hyper-threads alone. OMP_NUM_THREADS,
    where set (a batch worker's share of the machine, as Ray sets it), is the limit."""
    limit = os.environ.get("OMP_NUM_THREADS", "")
    if limit.isdigit() and int(limit) > 0:
        return int(limit)
    n = os.cpu_count() or 1
    return max(1, n // 2) if n > 4 else n


def torch_device(device: str = "auto") -> str:
    if device == "cuda" and not torch.cuda.is_available():
        raise StenoError("--device cuda was asked for, but torch finds no CUDA GPU here (use --device auto or cpu)")
    if device in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


# One decoding step is a chain of small matrix products: a second thread mostly waits on
# the first, and on a busy machine (other processes on the cores) it slowed steps tenfold.
DECODER_THREADS = 1


@contextlib.contextmanager
def decoder_threads(device: str):
    """Run a decoding block on DECODER_THREADS torch threads on a CPU (as it is elsewhere),
    then restore the previous setting."""
    before = torch.get_num_threads()
    n = DECODER_THREADS if device == "cpu" else before
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def create_session(onnx_path: str | Path, device: str = "auto", prepack: bool = True) -> tuple[ort.InferenceSession, str]:
    """An optimised session on CUDA when it really works, else CPU (said in one log line).

    `prepack=False` keeps ONNX Runtime from laying the weight matrices out again for its CPU
    matrix products: the bridge model's 208 MB graph then holds 50 MB less, for an encoder
    about 40% slower, which is 1% of a transcription whose LM decodes for seconds."""
    ort.set_default_logger_severity(4)  # a failed CUDA provider is reported by us, in one line
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = cpu_threads()
    options.inter_op_num_threads = 1
    # Idle worker threads sleep instead of spinning: on a busy machine (the app's GUI, other
    # jobs) spinning threads steal the very cores the work waits for.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    want_cuda = device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers()
    providers = (["CUDAExecutionProvider"] if want_cuda else []) + ["CPUExecutionProvider"]
    try:
        session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=providers)
    except (ort_errors.InvalidProtobuf, ort_errors.InvalidGraph, ort_errors.Fail, ort_errors.NoSuchFile) as e:
        raise ModelFolderError(f"damaged ONNX graph ({first_line(e)}): delete it and Steno exports it again "
                               "from the weights", onnx_path) from None
    got_cuda = session.get_providers()[0] == "CUDAExecutionProvider"
    if want_cuda and not got_cuda:
        _no_cuda_notice()
    if device == "cuda" and not got_cuda:
        raise StenoError("--device cuda was asked for, but ONNX Runtime could not start CUDA here (use --device auto or cpu)")
    return session, "cuda" if got_cuda else "cpu"


_cuda_notice_said = False


def _no_cuda_notice() -> None:
    """Said once per process (every model opens one or two sessions, and the reason is the
    same), and only counted as said when someone listens: `steno -q` silences it."""
    global _cuda_notice_said
    if not _cuda_notice_said and log.isEnabledFor(logging.WARNING):
        _cuda_notice_said = True
        log.warning("ONNX Runtime could not start CUDA (no GPU or CUDA libraries): running on CPU")


def run_session(session: ort.InferenceSession, inputs: np.ndarray) -> np.ndarray:
    """The graph's first output (the embeddings)."""
    return run_outputs(session, inputs)[0]


def run_outputs(session: ort.InferenceSession, inputs: np.ndarray) -> list[np.ndarray]:
    """All of the graph's outputs, in order."""
    return session.run(None, {"inputs": np.ascontiguousarray(inputs, dtype=np.float32)}, _run_options())


@functools.lru_cache(maxsize=1)
def _run_options() -> ort.RunOptions:
    """Give the CPU arena back after each run: the encoder's activations (hundreds of MB for
    a 30 s Whisper window) would otherwise stay held while the decoder runs. Measured on
    Whisper base: peak RSS of a run 393 MB instead of 522 MB, and no slower."""
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options
