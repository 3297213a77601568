"""Whisper's encoder as an ONNX graph, and what it is fed.

The graph is exported from the folder's weights once and cached beside them with a
fingerprint of the encoder's tensors (engine.graph), so a transcriber whose graph is fresh
never holds a torch copy of the encoder. Both Whisper-family models and bridge models with
a Whisper encoder run Whisper's encoder through `whisper_forward`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.errors import ModelFolderError, first_line
from engine.features import whisper_log_mel
from engine.files import atomic_write_text
from engine.graph import ONNX_META, ONNX_NAME, ensure_graph, graph_record, graph_write_error, is_fresh
from engine.models.fingerprint import tensors_fingerprint
from engine.models.folder import WHISPER_DIR

GRAPH_NAME, GRAPH_META = ONNX_NAME, ONNX_META
GRAPH_INT8_NAME, GRAPH_INT8_META = "encoder_bridge.int8.onnx", "encoder_bridge.int8.json"
N_SAMPLES_30S = 480_000
N_FRAMES_30S = 3000
# What the encoder is fed (measured in docs/whisper_backend.md):
#   "30s"       the clip's audio padded with silence to a 30 s window, as Whisper was trained
#   "clip"      only the frames that cover the clip: 4-5x cheaper encoder, but the decoder then
#               runs on past the end of the speech (dev WER 22% tiny.en, 52% base, against
#               4.3% and 2.2% at 30 s), so it is not used
#   "30s-zeros" the clip's log-mel padded with zeros to 30 s, which is what faster-whisper
#               does; kept to prove the weights against it frame for frame
WINDOWS = ("30s", "clip", "30s-zeros")
WINDOW = "30s"
# The encoder graph's weights: "fp32" (the default: transcripts equal faster-whisper's fp32
# ones on the dev set) or "int8" (dynamically quantised: RTF 20-30% lower, same dev WER;
# `Transcriber(precision="int8")`, `--precision int8`).
PRECISION = "fp32"


def whisper_forward(encoder, mel: torch.Tensor, layer: int | None) -> torch.Tensor:
    """Whisper's encoder on only the frames given (up to 30 s), not a padded 30 s window.

    transformers insists on exactly 3000 frames; the weights don't: the positional table is
    simply cut to the length we have, which keeps short clips cheap.
    """
    x = nn.functional.gelu(encoder.conv1(mel))
    x = nn.functional.gelu(encoder.conv2(x)).permute(0, 2, 1)
    x = x + encoder.embed_positions.weight[: x.shape[1]]
    stop = len(encoder.layers) if layer is None else layer
    for block in encoder.layers[:stop]:
        x = block(x, None)
    return encoder.layer_norm(x) if layer is None else x


def ensure_encoder_onnx(folder: str | Path, precision: str = "fp32") -> Path:
    """The folder's encoder graph, exported again when the encoder's weights changed or the
    graph (or its int8 copy) is damaged.

    The check hashes the encoder's tensors straight from the weights file: a transcriber
    whose graph is fresh never holds a torch copy of the encoder. precision "int8" gives
    a dynamically quantised copy of the graph (int8 weights), cached beside it.
    """
    folder = Path(folder)
    sub = folder / WHISPER_DIR
    fingerprint = encoder_fingerprint(sub)
    onnx_path = folder / GRAPH_NAME
    if not is_fresh(onnx_path, folder / GRAPH_META, fingerprint):  # load the encoder only to export it
        encoder = load_hf_encoder(sub)
        example = torch.randn(1, encoder.config.num_mel_bins, 400)
        onnx_path = ensure_graph(WhisperEncoderGraph(encoder), folder, fingerprint, example, time_axis=2)
    if precision == "fp32":
        return onnx_path
    if precision != "int8":
        raise ValueError(f"precision must be fp32 or int8, not {precision!r}")
    int8_path = folder / GRAPH_INT8_NAME
    if not is_fresh(int8_path, folder / GRAPH_INT8_META, fingerprint):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from engine.files import atomic_path

        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser's advice to pre-process is for image models
        try:
            with atomic_path(int8_path) as tmp:
                quantize_dynamic(onnx_path, tmp, weight_type=QuantType.QInt8)
            atomic_write_text(folder / GRAPH_INT8_META,
                              json.dumps(graph_record(int8_path, {"fingerprint": fingerprint, "quantized": "int8"})))
        except OSError as e:
            raise graph_write_error(e, folder) from None
        finally:
            root.setLevel(level)
    return int8_path


class WhisperEncoderGraph(torch.nn.Module):
    """Whisper's encoder on the frames given (any length up to 30 s): what goes to ONNX.

    The same computation as whisper_forward, with one change: attention
    is computed for blocks of ATTENTION_BLOCK query frames at a time. Whisper's encoder
    attention is not causal, so the result is the same, but ONNX Runtime then holds one
    block's attention weights instead of all 1500 x 1500 per head: for base, the run's
    memory peak fell from about 200 MB to 60 MB over the session's own, at equal speed.
    """

    ATTENTION_BLOCK = 250

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder
        self.max_frames = encoder.embed_positions.weight.shape[0]  # 1500: a traced loop needs a fixed count

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        gelu = torch.nn.functional.gelu
        e = self.encoder
        x = gelu(e.conv2(gelu(e.conv1(mel)))).permute(0, 2, 1)
        x = x + e.embed_positions.weight[: x.shape[1]]
        for layer in e.layers:
            x = x + self._attention(layer.self_attn, layer.self_attn_layer_norm(x))
            x = x + layer.fc2(gelu(layer.fc1(layer.final_layer_norm(x))))
        return e.layer_norm(x)

    def _attention(self, attn, h: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        heads = attn.num_heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, heads, d // heads).transpose(1, 2)

        q, k, v = split(attn.q_proj(h) * attn.scaling), split(attn.k_proj(h)), split(attn.v_proj(h))
        blocks = [torch.softmax(q[:, :, i:i + self.ATTENTION_BLOCK] @ k.transpose(-1, -2), dim=-1) @ v
                  for i in range(0, self.max_frames, self.ATTENTION_BLOCK)]
        out = torch.cat(blocks, dim=2)
        return attn.out_proj(out.transpose(1, 2).reshape(b, t, d))


def load_hf_encoder(sub: Path):
    """transformers' WhisperEncoder with its weights from the folder (for the export)."""
    from safetensors import safe_open
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    try:
        config = WhisperConfig.from_pretrained(sub)
        with torch.device("meta"):
            encoder = WhisperEncoder(config)
        state = {}
        for path in sorted(sub.glob("*.safetensors")):
            with safe_open(str(path), "pt") as f:
                for key in f.keys():
                    if key.startswith("model.encoder."):
                        state[key[len("model.encoder."):]] = f.get_tensor(key).float()
    except Exception as e:  # OSError, ValueError, safetensors' own errors
        raise ModelFolderError(f"cannot read the Whisper encoder ({first_line(e)})", sub) from None
    missing, _ = encoder.load_state_dict(state, strict=False, assign=True)
    if missing:
        raise ModelFolderError(f"Whisper weights lack model.encoder.{missing[0]}", sub)
    return encoder.eval()


def encoder_fingerprint(sub: Path) -> str:
    """sha256 over the encoder's tensors (names, dtypes, shapes, bytes) in the safetensors files."""
    return tensors_fingerprint(sub, lambda name: name.startswith("model.encoder."),
                               {"graph": "whisper-encoder", "version": 2})  # 2: blocked attention


def log_mel(audio: np.ndarray, n_mels: int, window: str = WINDOW) -> np.ndarray:
    """(1, n_mels, frames): the encoder's input for one clip (see WINDOWS)."""
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, not {window!r}")
    mel = whisper_log_mel(audio, n_mels, pad_to_30s=window == "30s")
    if window == "30s-zeros":
        mel = np.pad(mel, ((0, 0), (0, N_FRAMES_30S - mel.shape[1])))
    return mel[None]
