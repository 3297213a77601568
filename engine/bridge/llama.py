"""A Llama causal LM in plain PyTorch (SmolLM2 and the like), for decoding with a KV cache.

Why not transformers' `LlamaForCausalLM`: importing transformers' model code pulls in
torch's compiler, sympy and scipy, 136 MB of memory and 1-3 s before any weight is read
(docs/startup.md). This module holds the same layers under the same parameter names
(`model.layers.N.self_attn.q_proj`, `lm_head`), so it reads the same safetensors file
(memory-mapped: untouched weights stay on disk) and the same int8 cache. Training keeps
transformers and peft; a LoRA adapter trained there is merged into a copy of the weights
here (`merge_lora`). tests/engine/test_llama.py checks its logits against transformers'.

    RMSNorm -> attention (rotary positions, grouped-query heads) -> RMSNorm -> SiLU MLP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from engine.errors import ModelFolderError, first_line


@dataclass
class LlamaDims:
    vocab: int
    d_model: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    eps: float
    rope_theta: float
    tied: bool
    attention_bias: bool = False
    mlp_bias: bool = False

    @classmethod
    def from_hf_config(cls, c: dict) -> "LlamaDims":
        """The dims of a transformers Llama config.json; ValueError for what this module does
        not compute (another architecture, scaled rotary positions, another activation)."""
        if c.get("model_type") != "llama":
            raise ValueError(f"not a Llama model ({c.get('model_type')!r})")
        rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
        if rope.get("rope_type", rope.get("type", "default")) != "default":
            raise ValueError(f"rotary scaling {rope.get('rope_type', rope.get('type'))!r} is not supported")
        if c.get("hidden_act", "silu") != "silu" or c.get("pretraining_tp", 1) != 1:
            raise ValueError("unsupported Llama variant (activation or tensor-parallel split)")
        heads = c["num_attention_heads"]
        return cls(vocab=c["vocab_size"], d_model=c["hidden_size"], layers=c["num_hidden_layers"], heads=heads,
                   kv_heads=c.get("num_key_value_heads") or heads,
                   head_dim=c.get("head_dim") or c["hidden_size"] // heads, ffn=c["intermediate_size"],
                   eps=c.get("rms_norm_eps", 1e-6), rope_theta=rope.get("rope_theta", c.get("rope_theta", 10000.0)),
                   tied=c.get("tie_word_embeddings", False), attention_bias=c.get("attention_bias", False),
                   mlp_bias=c.get("mlp_bias", False))


@dataclass
class KVCache:
    """Keys and values per layer, (rows, kv_heads, length, head_dim), grown a step at a time.
    Its two reordering methods are named as transformers' Cache's, which CausalLMStep calls."""

    kv: list[tuple[torch.Tensor, torch.Tensor] | None]

    @property
    def length(self) -> int:
        return 0 if self.kv[0] is None else self.kv[0][0].shape[2]

    def batch_repeat_interleave(self, n: int) -> None:
        self.kv = [None if x is None else (x[0].repeat_interleave(n, 0), x[1].repeat_interleave(n, 0))
                   for x in self.kv]

    def reorder_cache(self, index: torch.Tensor) -> None:
        self.kv = [None if x is None else (x[0][index.to(x[0].device)], x[1][index.to(x[1].device)])
                   for x in self.kv]


@dataclass
class LMOutput:
    logits: torch.Tensor  # (rows, length, vocab)
    cache: KVCache | None


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary positions: each head's two halves turned by their position's angles."""
    half = x.shape[-1] // 2
    turned = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + turned * sin


class Attention(nn.Module):
    def __init__(self, dims: LlamaDims):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = dims.heads, dims.kv_heads, dims.head_dim
        bias = dims.attention_bias
        self.q_proj = nn.Linear(dims.d_model, dims.heads * dims.head_dim, bias=bias)
        self.k_proj = nn.Linear(dims.d_model, dims.kv_heads * dims.head_dim, bias=bias)
        self.v_proj = nn.Linear(dims.d_model, dims.kv_heads * dims.head_dim, bias=bias)
        self.o_proj = nn.Linear(dims.heads * dims.head_dim, dims.d_model, bias=bias)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                past: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, tuple]:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=self.heads != self.kv_heads)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1)), (k, v)


class MLP(nn.Module):
    def __init__(self, dims: LlamaDims):
        super().__init__()
        self.gate_proj = nn.Linear(dims.d_model, dims.ffn, bias=dims.mlp_bias)
        self.up_proj = nn.Linear(dims.d_model, dims.ffn, bias=dims.mlp_bias)
        self.down_proj = nn.Linear(dims.ffn, dims.d_model, bias=dims.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, dims: LlamaDims):
        super().__init__()
        self.self_attn = Attention(dims)
        self.mlp = MLP(dims)
        self.input_layernorm = RMSNorm(dims.d_model, dims.eps)
        self.post_attention_layernorm = RMSNorm(dims.d_model, dims.eps)

    def forward(self, x, cos, sin, mask, past):
        h, kv = self.self_attn(self.input_layernorm(x), cos, sin, mask, past)
        x = x + h
        return x + self.mlp(self.post_attention_layernorm(x)), kv


class Llama(nn.Module):
    """`model` (embeddings, layers, final norm) + `lm_head`, named as in transformers, called
    as CausalLMStep calls transformers' LMs: input embeddings in, logits and cache out."""

    def __init__(self, dims: LlamaDims):
        super().__init__()
        self.dims = dims
        self.model = nn.Module()
        # built without nn.Embedding's random fill, which on the meta device imports torch's compiler
        self.model.embed_tokens = nn.Embedding.from_pretrained(torch.empty(dims.vocab, dims.d_model), freeze=False)
        self.model.layers = nn.ModuleList(Layer(dims) for _ in range(dims.layers))
        self.model.norm = RMSNorm(dims.d_model, dims.eps)
        self.lm_head = nn.Linear(dims.d_model, dims.vocab, bias=False)
        if dims.tied:
            self.lm_head.weight = self.model.embed_tokens.weight

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def rotary(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin (rows, 1, length, head_dim) of each position's angles."""
        d = self.dims.head_dim
        inv_freq = 1.0 / (self.dims.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64,
                                                                 device=positions.device).float() / d))
        angles = positions[..., None].float() * inv_freq
        angles = torch.cat((angles, angles), dim=-1)[:, None]
        return angles.cos().to(dtype), angles.sin().to(dtype)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cache: KVCache | None = None,
                use_cache: bool = False) -> LMOutput:
        """Logits (rows, length, vocab) for `inputs_embeds` (rows, length, d) following what
        `cache` holds. attention_mask: (rows, past + length) of 1 (a token) and 0 (left
        padding); position_ids: (rows, length)."""
        b, t, _ = inputs_embeds.shape
        past = cache.length if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + t, device=inputs_embeds.device).expand(b, -1)
        cos, sin = self.rotary(position_ids, inputs_embeds.dtype)
        mask = attention_bias(attention_mask, past, t, inputs_embeds.device)
        x = inputs_embeds
        new_kv = []
        for i, layer in enumerate(self.model.layers):
            x, kv = layer(x, cos, sin, mask, cache.kv[i] if cache is not None else None)
            new_kv.append(kv)
        logits = self.lm_head(self.model.norm(x))
        return LMOutput(logits, KVCache(new_kv) if use_cache else None)


def attention_bias(attention_mask: torch.Tensor | None, past: int, length: int,
                   device: torch.device) -> torch.Tensor | None:
    """What each new position may attend to: the tokens up to itself, not the padding. A
    padding position attends to itself alone (a row with nothing to attend to gives NaN,
    which would reach the real rows through the next layer's values). None where that is
    everything (one new token, no padding), the fastest path."""
    total = past + length
    if attention_mask is not None and attention_mask.shape[-1] != total:
        raise ValueError(f"attention mask covers {attention_mask.shape[-1]} positions, not {total}")
    if length == 1 and (attention_mask is None or bool(attention_mask.all())):
        return None
    keys = torch.arange(total, device=device)
    queries = torch.arange(past, total, device=device)
    allowed = (keys[None, :] <= queries[:, None])[None]  # (1, length, total)
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool()[:, None, :]
    allowed = allowed | (keys[None, :] == queries[:, None])[None]
    return allowed[:, None]  # (rows, 1, length, total)


# ---------------------------------------------------------------------- loading


def llama_dims(folder: str | Path) -> LlamaDims | None:
    """The dims of the Llama in `folder` (config.json), or None for another architecture
    (which then runs in transformers)."""
    path = Path(folder) / "config.json"
    try:
        return LlamaDims.from_hf_config(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError):
        return None
    except OSError as e:
        raise ModelFolderError(f"unreadable LM config ({first_line(e)})", path) from None


def load_llama(folder: str | Path, dims: LlamaDims) -> Llama:
    """The LM of a transformers Llama folder (config.json + *.safetensors), its weights
    memory-mapped as read (copy on write): what is never touched costs no memory."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    state: dict[str, torch.Tensor] = {}
    try:
        for path in sorted(folder.glob("*.safetensors")):
            state.update(load_file(path))
    except (OSError, SafetensorError) as e:
        raise ModelFolderError(f"cannot read the LM weights ({first_line(e)})", folder) from None
    try:
        return llama_of(dims, state)
    except ValueError as e:
        raise ModelFolderError(f"LM weights do not fit its config.json ({e})", folder) from None


def llama_of(dims: LlamaDims, state: dict[str, torch.Tensor]) -> Llama:
    """A Llama holding the very tensors of `state` (none copied); ValueError where they do
    not fit `dims`."""
    with torch.device("meta"):
        model = Llama(dims)
    if dims.tied:
        state = {k: v for k, v in state.items() if k != "lm_head.weight"}  # the embeddings, stored again by some
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as e:  # a tensor of another shape
        raise ValueError(first_line(e)) from None
    missing = [k for k in missing if not (dims.tied and k == "lm_head.weight")]
    if missing or unexpected:
        raise ValueError(f"{len(missing)} missing and {len(unexpected)} unexpected, first {(missing + unexpected)[0]}")
    if dims.tied:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.eval().requires_grad_(False)


# ---------------------------------------------------------------------- LoRA adapters


def merge_lora(model: Llama, folder: str | Path) -> Llama:
    """A copy of `model` with a peft LoRA adapter's deltas merged into its weights,
    W + scale * B @ A (what peft's merge computes), sharing every other tensor with `model`,
    which stays as it was. ValueError for LoRA settings this does not compute."""
    from safetensors.torch import load_file

    folder = Path(folder)
    settings = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    unsupported = [k for k in ("use_dora", "rank_pattern", "alpha_pattern", "modules_to_save", "fan_in_fan_out")
                   if settings.get(k)]
    if settings.get("peft_type", "LORA") != "LORA" or settings.get("bias", "none") != "none" or unsupported:
        raise ValueError(f"LoRA settings not supported here ({', '.join(unsupported) or 'type or bias'})")
    r, alpha = settings["r"], settings["lora_alpha"]
    scale = alpha / r ** 0.5 if settings.get("use_rslora") else alpha / r
    path = folder / "adapter_model.safetensors"
    lora = load_file(path) if path.is_file() else torch.load(folder / "adapter_model.bin", map_location="cpu",
                                                              weights_only=True)
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in lora.items():
        name, _, part = key.removeprefix("base_model.model.").rpartition(".lora_")
        if part not in ("A.weight", "B.weight"):
            raise ValueError(f"unsupported LoRA tensor {key}")
        pairs.setdefault(name, {})[part[0]] = tensor
    state = model.state_dict()
    for name, ab in pairs.items():
        if set(ab) != {"A", "B"} or f"{name}.weight" not in state:
            raise ValueError(f"LoRA layer {name} does not fit the model")
        weight = state[f"{name}.weight"]
        state[f"{name}.weight"] = weight + scale * (ab["B"].to(weight) @ ab["A"].to(weight))
    if model.dims.tied and "lm_head" in pairs:
        raise ValueError("LoRA on the tied output layer is not supported")
    return llama_of(model.dims, dict(state))
