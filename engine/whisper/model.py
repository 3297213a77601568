"""Whisper's text decoder in plain PyTorch, for decoding with a KV cache.

Why not transformers' `WhisperForConditionalGeneration`: importing transformers' modeling
code costs about 160 MB of memory before any weight is read (measured), and the encoder
runs from its ONNX graph anyway. This module holds just the decoder, under the same
parameter names as transformers (`model.decoder.layers.N.self_attn.q_proj`, `proj_out`),
so it loads the same safetensors file and the same peft LoRA adapters trained on the
transformers model. tests/engine/test_whisper_backend.py checks its logits against transformers'.

Cross-attention keys/values are computed once per segment and kept in the cache; when
the beams of one segment share them, they are never copied: the beams are folded into
the query length of one attention over the shared keys.

On a CPU the backend decodes from an int8 copy of this module (engine.decoding.int8).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from engine.errors import ModelFolderError


@dataclass
class DecoderDims:
    vocab: int
    d_model: int
    heads: int
    layers: int
    ffn: int
    n_ctx: int  # max_target_positions
    n_mels: int

    @classmethod
    def from_hf_config(cls, c: dict) -> "DecoderDims":
        if c.get("activation_function", "gelu") != "gelu" or c.get("scale_embedding"):
            raise ValueError("unsupported Whisper variant (activation or embedding scale)")
        return cls(vocab=c["vocab_size"], d_model=c["d_model"], heads=c["decoder_attention_heads"],
                   layers=c["decoder_layers"], ffn=c["decoder_ffn_dim"], n_ctx=c["max_target_positions"],
                   n_mels=c["num_mel_bins"])


@dataclass
class Cache:
    """Keys/values per layer: self-attention grows a step at a time, cross-attention is fixed."""

    self_kv: list[tuple[torch.Tensor, torch.Tensor] | None]
    cross_kv: list[tuple[torch.Tensor, torch.Tensor] | None]
    length: int = 0

    @classmethod
    def empty(cls, layers: int) -> "Cache":
        return cls([None] * layers, [None] * layers)

    def reorder(self, index: torch.Tensor) -> None:
        """Keep the self-attention rows `index` (beam search); shared cross keys stay as they are."""
        self.self_kv = [None if kv is None else (kv[0][index], kv[1][index]) for kv in self.self_kv]


class Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d, bias=False)  # Whisper's keys have no bias
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None,
                causal: bool = False) -> torch.Tensor:
        b, t, d = x.shape
        q = self._split(self.q_proj(x))
        k, v = kv
        if k.shape[0] == 1 and b > 1 and (t == 1 or (mask is None and not causal)):
            # rows over shared keys (beams; teacher-forced sentences): fold the rows into time
            h, dh = q.shape[1], q.shape[3]
            folded = q.permute(1, 0, 2, 3).reshape(1, h, b * t, dh)
            out = F.scaled_dot_product_attention(folded, k, v, attn_mask=mask)
            out = out.reshape(h, b, t, dh).permute(1, 0, 2, 3)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))

    def kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._split(self.k_proj(x)), self._split(self.v_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int):
        super().__init__()
        self.self_attn = Attention(d, heads)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.encoder_attn = Attention(d, heads)
        self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ffn)
        self.fc2 = nn.Linear(ffn, d)
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, enc: torch.Tensor, enc_mask: torch.Tensor | None, cache: Cache,
                i: int) -> torch.Tensor:
        h = self.self_attn_layer_norm(x)
        k, v = self.self_attn.kv(h)
        if cache.self_kv[i] is not None:
            k = torch.cat([cache.self_kv[i][0], k], dim=2)
            v = torch.cat([cache.self_kv[i][1], v], dim=2)
        cache.self_kv[i] = (k, v)
        t, total = x.shape[1], k.shape[2]
        mask = None
        if 1 < t < total:  # several tokens after cached ones: each sees the cache and the new ones up to itself
            mask = torch.ones(t, total, dtype=torch.bool, device=x.device).tril(total - t)
        x = x + self.self_attn(h, (k, v), mask, causal=t > 1 and total == t)
        if cache.cross_kv[i] is None:
            cache.cross_kv[i] = self.encoder_attn.kv(enc)
        x = x + self.encoder_attn(self.encoder_attn_layer_norm(x), cache.cross_kv[i], enc_mask)
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class Decoder(nn.Module):
    def __init__(self, dims: DecoderDims):
        super().__init__()
        # Tables made without nn.Embedding's random fill: built on the meta device, that fill
        # alone imports torch's compiler (0.8 s and 75 MB at every start); weights are loaded anyway.
        self.embed_tokens = nn.Embedding.from_pretrained(torch.empty(dims.vocab, dims.d_model), freeze=False)
        self.embed_positions = nn.Embedding.from_pretrained(torch.empty(dims.n_ctx, dims.d_model), freeze=False)
        self.layers = nn.ModuleList(DecoderLayer(dims.d_model, dims.heads, dims.ffn) for _ in range(dims.layers))
        self.layer_norm = nn.LayerNorm(dims.d_model)


class WhisperDecoderModel(nn.Module):
    """`model.decoder` + `proj_out` (tied to the token embeddings), named as in transformers."""

    def __init__(self, dims: DecoderDims):
        super().__init__()
        self.dims = dims
        self.model = nn.Module()
        self.model.decoder = Decoder(dims)
        self.proj_out = nn.Linear(dims.d_model, dims.vocab, bias=False)
        self.proj_out.weight = self.model.decoder.embed_tokens.weight

    def new_cache(self) -> Cache:
        return Cache.empty(self.dims.layers)

    def forward(self, tokens: torch.Tensor, enc: torch.Tensor, cache: Cache, enc_mask: torch.Tensor | None = None,
                keep: list[int] | None = None) -> torch.Tensor:
        """Logits (B, L or len(keep), V) for `tokens` (B, L) following what `cache` holds.

        enc: (B, S, d) encoder output, or (1, S, d) shared by every row; enc_mask: an
        additive (B, 1, 1, S) mask where segments of different lengths share a batch.
        keep: the positions whose logits are wanted (the vocabulary projection is the
        costliest step of the decoder).
        """
        dec = self.model.decoder
        length = tokens.shape[1]
        x = dec.embed_tokens(tokens) + dec.embed_positions.weight[cache.length:cache.length + length]
        for i, layer in enumerate(dec.layers):
            x = layer(x, enc, enc_mask, cache, i)
        cache.length += length
        if keep is not None:
            x = x[:, keep]
        return self.proj_out(dec.layer_norm(x))


def decoder_skeleton(sub: str | Path) -> WhisperDecoderModel:
    """The decoder a Whisper folder's config.json describes, on the meta device: its shape
    without any memory for its weights."""
    sub = Path(sub)
    try:
        dims = DecoderDims.from_hf_config(json.loads((sub / "config.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError) as e:
        raise ModelFolderError(f"unreadable Whisper config ({e})", sub / "config.json") from None
    with torch.device("meta"):
        return WhisperDecoderModel(dims)


def load_decoder(sub: str | Path, dtype: torch.dtype = torch.float32) -> WhisperDecoderModel:
    """The decoder of a transformers Whisper folder (config.json + *.safetensors); the
    encoder's tensors are never read."""
    from safetensors import safe_open

    sub = Path(sub)
    model = decoder_skeleton(sub)
    state = {}
    try:
        for path in sorted(sub.glob("*.safetensors")):
            with safe_open(str(path), "pt") as f:
                for key in f.keys():
                    if is_decoder_tensor(key):
                        # a copy, not a view of the file's memory map: otherwise the whole file
                        # stays resident while any tensor of it (the embeddings) lives on
                        state[key] = f.get_tensor(key).to(dtype, copy=True)
    except Exception as e:  # safetensors raises its own types for corrupt files
        raise ModelFolderError(f"cannot read the Whisper weights ({str(e).splitlines()[0]})", sub) from None
    state.pop("proj_out.weight", None)  # the token embeddings, stored again by some writers
    missing, _ = model.load_state_dict(state, strict=False, assign=True)
    model.proj_out.weight = model.model.decoder.embed_tokens.weight
    missing = [k for k in missing if k != "proj_out.weight"]
    if missing:
        raise ModelFolderError(f"Whisper weights lack {missing[0]} (and {len(missing) - 1} more)", sub)
    return model.eval()


def is_decoder_tensor(name: str) -> bool:
    """Whether a tensor of the folder's weights file belongs to the decoder."""
    return name.startswith("model.decoder.") or name == "proj_out.weight"


__all__ = ["Cache", "DecoderDims", "WhisperDecoderModel", "decoder_skeleton", "is_decoder_tensor", "load_decoder"]


def pad_batch(encoded: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stack (1, T_i, d) encoder outputs into (B, T, d) plus an additive cross-attention mask."""
    lengths = [e.shape[1] for e in encoded]
    if len(set(lengths)) == 1:
        return torch.cat(encoded), None
    longest = max(lengths)
    enc = torch.cat([torch.nn.functional.pad(e, (0, 0, 0, longest - e.shape[1])) for e in encoded])
    mask = torch.zeros(len(encoded), 1, 1, longest, device=enc.device)
    for i, n in enumerate(lengths):
        mask[i, ..., n:] = float("-inf")
    return enc, mask
