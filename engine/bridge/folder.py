"""A bridge model's folder: load and save the whole SpeechLM, and fingerprint its graph.

    steno.json              ModelConfig: family, encoder/bridge kinds and sizes, prompt, versions
    encoder/                the speech encoder in transformers' format
    lm/                     the causal LM and its tokenizer in transformers' format
    bridge.safetensors      the bridge weights (what we train)
    encoder_bridge.onnx     encoder+bridge graph for ONNX Runtime, rebuilt when stale
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from engine.bridge.bridge import build_bridge
from engine.bridge.encoder import SpeechEncoder, encoder_hidden_size
from engine.bridge.llama import llama_dims, load_llama
from engine.bridge.model import SpeechLM
from engine.bridge.tokenizer import plain_tokenizer
from engine.errors import ModelFolderError, first_line
from engine.files import atomic_dir
from engine.models.folder import BRIDGE_WEIGHTS, check_folder


def save_model(model: SpeechLM, folder: str | Path) -> Path:
    """Write the whole model folder atomically: a killed save never leaves a half folder."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        model.encoder.save(tmp / "encoder")
        model.lm.save_pretrained(tmp / "lm")
        model.tokenizer.save_pretrained(tmp / "lm")
        save_file({k: v.contiguous() for k, v in model.bridge.state_dict().items()}, tmp / BRIDGE_WEIGHTS)
        model.config.save(tmp)
    return folder


def load_model(folder: str | Path, device: str | torch.device = "cpu", speech: bool = True,
               plain_lm: bool = False) -> SpeechLM:
    """The whole model; with `speech=False`, without the torch speech encoder and with the
    bridge's label embeddings left unsynced (what only its ONNX graph computes with): what
    runs beside a fresh graph, 250 MB smaller. SpeechEncoder.load and
    SpeechLM.sync_label_embeddings make it whole again. With `plain_lm`, a Llama LM is read
    into engine.bridge.llama (decoding only, no transformers model code: 136 MB and 1-3 s
    less), and its tokenizer by `tokenizers` alone where transformers only wraps it (2-4 s,
    130 MB less); any other LM or tokenizer, and every one for training, by transformers."""
    folder = Path(folder)
    config = check_folder(folder)
    if config.family != "bridge":
        raise ModelFolderError(f"a {config.family!r} model, not a bridge model", folder)
    try:
        encoder = SpeechEncoder.load(config.encoder, folder / "encoder") if speech else None
        hidden_size = encoder.hidden_size if speech else encoder_hidden_size(config.encoder, folder / "encoder")
        dims = llama_dims(folder / "lm") if plain_lm else None
        lm = load_llama(folder / "lm", dims) if dims is not None else _transformers_lm(folder / "lm")
        tokenizer = plain_tokenizer(folder / "lm", config.tokenizer_kwargs) if plain_lm else None
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(folder / "lm", **config.tokenizer_kwargs)
    except (OSError, ValueError, SafetensorError) as e:
        raise ModelFolderError(f"cannot load model parts ({first_line(e)})", folder) from None
    bridge = build_bridge(config.bridge, hidden_size, lm.get_input_embeddings().embedding_dim,
                          lm.get_input_embeddings().num_embeddings)
    try:
        state = load_file(folder / BRIDGE_WEIGHTS)
        # without the speech encoder nothing but the ONNX graph runs the bridge: its weights are
        # taken as read (memory-mapped, copy on write) and stay on disk, 50 MB
        bridge.load_state_dict(state, assign=not speech)
    except Exception as e:  # safetensors raises its own types for corrupt files
        raise ModelFolderError(f"bridge weights do not match the config ({first_line(e)})", folder) from None
    model = SpeechLM(config, encoder, bridge.eval(), lm, tokenizer, sync_labels=speech)
    return model.to(device)


def _transformers_lm(folder: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).eval()


def graph_fingerprint(model: SpeechLM) -> str:
    """Hash of everything the encoder+bridge graph depends on: weights, buffers and config."""
    h = hashlib.sha256()
    h.update(json.dumps({"encoder": model.config.encoder.__dict__, "bridge": model.config.bridge.__dict__},
                        sort_keys=True, default=str).encode())
    for prefix, module in (("encoder", model.encoder), ("bridge", model.bridge)):
        for name, t in sorted(module.state_dict(keep_vars=False).items()):
            h.update(f"{prefix}.{name}{tuple(t.shape)}".encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        for name, buf in sorted(module.named_buffers()):
            h.update(name.encode())
            h.update(buf.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()

