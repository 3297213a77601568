"""Models in the format rinna released with the paper (nue-asr) as Steno model folders.

The nue-asr folder: `config.json` with `model_type: "nue_asr"` wrapping a HubertConfig
(`audio_encoder_config`) and a GPTNeoXConfig (`llm_config`) plus `bridge_conv_kernel_size`
and `bridge_conv_stride`; one weight file with the modules `audio_encoder.*`, `llm.*`,
`bridge_convs.N.*` (Conv1d, no padding, GELU after each) and `bridge_proj.*` (Linear);
a SentencePiece tokenizer loaded with `use_fast=False, legacy=True`. The LM reads
embed(`<s>`) + audio + embed(`[SEP]`) and decodes greedily with
`max_new_tokens = int(4 * seconds + 20 + 0.5)` and `min_new_tokens = 2`.

That is exactly a Steno conv-bridge model with prompt prefix "<s>" and separator "[SEP]",
so the importer only renames weights; ONNX export and decoding are the usual ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM, HubertConfig, HubertModel

from engine.bridge.bridge import ConvBridge
from engine.bridge.encoder import SpeechEncoder
from engine.bridge.model import SpeechLM
from engine.errors import ModelFolderError
from engine.models.config import BridgeConfig, DecodeConfig, EncoderConfig, ModelConfig, PromptConfig

TOKENIZER_KWARGS = {"use_fast": False, "legacy": True}
TRAINED_SECONDS = 16.0  # nue-asr warns beyond this; Steno segments audio to it instead


def read_nue_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise ModelFolderError("no config.json: not a nue-asr model folder", folder)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"unreadable config ({e})", path) from None
    if config.get("model_type") != "nue_asr":
        raise ModelFolderError(f"model_type is {config.get('model_type')!r}, not 'nue_asr'", path)
    for key in ("audio_encoder_config", "llm_config"):
        if not isinstance(config.get(key), dict):
            raise ModelFolderError(f"config has no {key}", path)
    return config


def read_nue_weights(folder: Path) -> dict[str, torch.Tensor]:
    st, pt = folder / "model.safetensors", folder / "pytorch_model.bin"
    try:
        if st.is_file():
            from safetensors.torch import load_file

            return load_file(st)
        if pt.is_file():
            return torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file: safetensors and torch raise their own types
        raise ModelFolderError(f"unreadable weights ({str(e).splitlines()[0] if str(e) else type(e).__name__})",
                               folder) from None
    raise ModelFolderError("no model.safetensors or pytorch_model.bin", folder)


def _sub(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str, folder: Path) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or mismatched:
        detail = (f"missing {missing[0]}" if missing else
                  f"{mismatched[0]} is {tuple(state[mismatched[0]].shape)}, config says {tuple(own[mismatched[0]].shape)}")
        raise ModelFolderError(f"{what} weights do not match its config ({detail})", folder)
    module.load_state_dict({k: v for k, v in state.items() if k not in unexpected}, strict=False)


def load_nue_asr(folder: str | Path) -> SpeechLM:
    """A nue-asr format folder as a Steno SpeechLM (conv bridge), weights mapped one to one."""
    folder = Path(folder)
    config = read_nue_config(folder)
    state = read_nue_weights(folder)
    kernels = list(config.get("bridge_conv_kernel_size", [4, 4]))
    strides = list(config.get("bridge_conv_stride", [2, 2]))
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **TOKENIZER_KWARGS)
    except (OSError, ValueError) as e:
        raise ModelFolderError(f"cannot load the SentencePiece tokenizer ({str(e).splitlines()[0]})", folder) from None
    for token in ("<s>", "[SEP]"):
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
            raise ModelFolderError(f"the tokenizer has no {token} token, which the nue-asr prompt needs", folder)

    encoder = SpeechEncoder(EncoderConfig(kind="hubert"), HubertModel(HubertConfig(**config["audio_encoder_config"])))
    _load_strict(encoder.model, _sub(state, "audio_encoder."), "audio encoder", folder)
    lm = GPTNeoXForCausalLM(GPTNeoXConfig(**config["llm_config"]))
    _load_strict(lm, _sub(state, "llm."), "LLM", folder)

    bridge_config = BridgeConfig(kind="conv", kernel_sizes=kernels, strides=strides, channels=None, padding=False)
    bridge = ConvBridge(bridge_config, encoder.hidden_size, lm.config.hidden_size)
    bridge_state = {}
    for i in range(len(kernels)):
        for p in ("weight", "bias"):
            bridge_state[f"convs.{i}.{p}"] = state.get(f"bridge_convs.{i}.{p}")
    for p in ("weight", "bias"):
        bridge_state[f"proj.{p}"] = state.get(f"bridge_proj.{p}")
    if any(v is None for v in bridge_state.values()):
        missing = next(k for k, v in bridge_state.items() if v is None)
        raise ModelFolderError(f"bridge weights missing (bridge_{missing})", folder)
    _load_strict(bridge, bridge_state, "bridge", folder)

    model_config = ModelConfig(
        encoder=EncoderConfig(kind="hubert"), bridge=bridge_config,
        prompt=PromptConfig(prefix="<s>", separator="[SEP]", add_bos=False),
        decode=DecodeConfig(tokens_per_second=4.0, extra_tokens=20, min_new_tokens=2, beam_size=1),
        max_segment_seconds=TRAINED_SECONDS, name=folder.name, language="ja",
        tokenizer_kwargs=dict(TOKENIZER_KWARGS), source={"format": "nue_asr", "from": str(folder)})
    return SpeechLM(model_config, encoder.eval(), bridge.eval(), lm.eval(), tokenizer)


def import_nue_asr(folder: str | Path, out_dir: str | Path) -> Path:
    """Convert a nue-asr folder into a Steno model folder (written atomically)."""
    from engine.bridge.folder import save_model

    return save_model(load_nue_asr(folder), out_dir)
