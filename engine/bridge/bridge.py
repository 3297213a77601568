"""Bridges from encoder frames (~50 per second) to a short sequence of LM input vectors.

Two kinds, as in arXiv 2312.03668:
- conv: strided 1-D convolutions (GELU after each) then a linear projection to the LM
  width; the total stride fixes how many LM positions a second of speech costs.
- ctc:  a CTC head labels every frame with an LM token or blank; blank frames are dropped
  and runs of the same label merged (their vectors averaged), so the LM reads about one
  position per token spoken. The projection is linear, or ("posterior") starts from the
  LM's own embeddings weighted by the CTC posteriors so the LM reads near-text at once.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.config import BridgeConfig


class ConvBridge(nn.Module):
    def __init__(self, config: BridgeConfig, in_dim: int, lm_dim: int):
        super().__init__()
        channels = config.channels or in_dim
        self.convs = nn.ModuleList()
        dim = in_dim
        for k, s in zip(config.kernel_sizes, config.strides, strict=True):
            pad = (k - s + 1) // 2 if config.padding else 0
            self.convs.append(nn.Conv1d(dim, channels, kernel_size=k, stride=s, padding=pad))
            dim = channels
        self.proj = nn.Linear(dim, lm_dim)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, in_dim) -> (B, T', lm_dim)."""
        x = frames.transpose(1, 2)
        for conv in self.convs:
            x = nn.functional.gelu(conv(x))
        return self.proj(x.transpose(1, 2))

    def output_length(self, frames: int) -> int:
        for conv in self.convs:
            k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
            frames = max(0, (frames + 2 * p - k) // s + 1)
        return frames


class CTCBridge(nn.Module):
    def __init__(self, config: BridgeConfig, in_dim: int, lm_dim: int, lm_vocab_size: int):
        super().__init__()
        self.config = config
        n_labels = len(config.ctc_token_ids) if config.ctc_token_ids is not None else lm_vocab_size
        self.n_labels = n_labels + 1  # label 0 is blank
        self.downsample = nn.ModuleList()
        dim = in_dim
        for k, s in zip(config.kernel_sizes, config.strides, strict=True):
            self.downsample.append(nn.Conv1d(dim, config.ctc_dim, kernel_size=k, stride=s, padding=(k - s + 1) // 2))
            dim = config.ctc_dim
        if not self.downsample:
            self.inp = nn.Linear(dim, config.ctc_dim)
        self.norm = nn.LayerNorm(config.ctc_dim)
        self.layers = nn.ModuleList([Block(config.ctc_dim, config.ctc_heads) for _ in range(config.ctc_layers)])
        self.head = nn.Linear(config.ctc_dim, self.n_labels)
        self.proj = nn.Linear(config.ctc_dim, lm_dim)
        # LM embedding rows of the CTC labels; filled from the LM by the model, not saved.
        self.register_buffer("label_embeddings", torch.zeros(n_labels, lm_dim), persistent=False)
        ids = config.ctc_token_ids if config.ctc_token_ids is not None else range(lm_vocab_size)
        token_to_label = torch.full((lm_vocab_size,), -1, dtype=torch.long)
        token_to_label[torch.as_tensor(list(ids), dtype=torch.long)] = torch.arange(1, n_labels + 1)
        self.register_buffer("token_to_label", token_to_label, persistent=False)

    def frame_states(self, frames: torch.Tensor, lengths: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, in_dim) -> head states (B, T', ctc_dim) and CTC logits (B, T', labels).

        With `lengths` (frames per item of a padded batch) the padding is zeroed after each
        convolution and masked out of attention, so a batch gives what each clip alone gives
        (as at inference, where the ONNX graph sees one clip).
        """
        x = frames
        if self.downsample:
            x = x.transpose(1, 2)
            n = torch.as_tensor(lengths, device=x.device) if lengths is not None and len(lengths) > 1 else None
            for conv in self.downsample:
                x = nn.functional.gelu(conv(x))
                if n is not None:  # zero what lies past each clip's end, as a clip alone is zero-padded
                    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
                    n = torch.clamp((n + 2 * p - k) // s + 1, min=0)
                    x = x * (torch.arange(x.shape[2], device=x.device)[None, :] < n[:, None])[:, None, :]
            x = x.transpose(1, 2)
        else:
            x = self.inp(x)
        mask = None
        if lengths is not None and len(lengths) > 1:
            out = torch.as_tensor([self.output_length(n) for n in lengths], device=x.device)
            mask = (torch.arange(x.shape[1], device=x.device)[None, :] < out[:, None])[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        x = self.norm(x)
        return x, self.head(x)

    def project(self, states: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        out = self.proj(states)
        if self.config.ctc_projection == "posterior":
            posterior = logits.softmax(-1)[..., 1:]
            out = out + posterior @ self.label_embeddings
        return out

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One clip (1, T, in_dim) -> compressed LM inputs (1, N, lm_dim) and the frame logits.

        Export-friendly: the segment assignment is a (N, T) 0/1 matrix built from the argmax
        labels, so the whole compression is one matmul with a data-dependent N.
        """
        states, logits = self.frame_states(frames)
        assign = compression_matrix(logits[0].argmax(-1), logits[0, :, 0])
        vectors = self.project(states, logits)[0]
        pooled = (assign @ vectors) / assign.sum(-1, keepdim=True)
        return pooled[None], logits

    def compress_batch(self, states, logits, lengths) -> list[torch.Tensor]:
        """Training path: `compression_matrix` for a whole padded batch at once (one host
        sync, not one per clip: on a GPU the per-clip loop was most of a training step)."""
        vectors = self.project(states, logits)
        b, t, _ = vectors.shape
        n = torch.as_tensor(lengths, device=logits.device)
        valid = torch.arange(t, device=logits.device)[None, :] < n[:, None]
        labels = logits.argmax(-1)
        keep = (labels != 0) & valid
        prev = torch.cat([labels.new_zeros(b, 1), labels[:, :-1]], dim=1)
        run = torch.cumsum((keep & (labels != prev)).long(), dim=1) - 1
        n_runs = run.max(dim=1).values + 1
        empty = ~keep.any(dim=1)  # all blank: the least-blank frame is the one row
        least_blank = logits[..., 0].float().masked_fill(~valid, float("inf")).argmin(dim=1)
        fallback = empty[:, None] & (torch.arange(t, device=logits.device)[None, :] == least_blank[:, None])
        keep = keep | fallback
        run = torch.where(fallback, torch.zeros_like(run), run)
        n_runs = torch.where(empty, torch.ones_like(n_runs), n_runs)
        counts = n_runs.tolist()
        rows = torch.arange(max(counts), device=logits.device)
        assign = ((run[:, None, :] == rows[None, :, None]) & keep[:, None, :]).to(vectors.dtype)
        pooled = (assign @ vectors) / assign.sum(-1, keepdim=True).clamp(min=1)
        return [pooled[i, :c] for i, c in enumerate(counts)]

    def output_length(self, frames: int) -> int:
        for conv in self.downsample:
            k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
            frames = max(0, (frames + 2 * p - k) // s + 1)
        return frames

    def labels_for(self, token_ids: torch.Tensor) -> torch.Tensor:
        """LM token ids -> CTC labels; tokens outside the head's vocabulary are dropped."""
        labels = self.token_to_label[token_ids]
        return labels[labels > 0]


def compression_matrix(labels: torch.Tensor, blank_logit: torch.Tensor) -> torch.Tensor:
    """(N, T) matrix whose row n averages the frames of the n-th non-blank run of labels.

    A clip whose every frame is blank still yields one row (its least-blank frame), so the
    LM always has something to read and the ONNX graph never produces an empty tensor.
    """
    keep = labels != 0
    prev = torch.cat([labels.new_zeros(1), labels[:-1]])
    starts = keep & (labels != prev)
    run = torch.cumsum(starts.long(), 0) - 1
    n_runs = starts.long().sum()
    fallback = (~keep.any()).long()
    keep = keep | (fallback.bool() & (torch.arange(labels.shape[0], device=labels.device) == blank_logit.argmin()))
    run = torch.where(keep & (run < 0), torch.zeros_like(run), run)
    rows = torch.arange(n_runs + fallback, device=labels.device)
    return ((run[None, :] == rows[:, None]) & keep[None, :]).to(torch.float32)


class Block(nn.Module):
    """Pre-norm transformer block; written out so its shapes stay dynamic in the ONNX graph."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.1):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """mask: (B, 1, 1, T), True where a key may be attended to; None attends to all."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, -1, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.dropout(self.out(att.transpose(1, 2).reshape(b, -1, d)))
        return x + self.dropout(self.mlp(self.norm2(x)))


def build_bridge(config: BridgeConfig, in_dim: int, lm_dim: int, lm_vocab_size: int) -> nn.Module:
    if config.kind == "conv":
        return ConvBridge(config, in_dim, lm_dim)
    if config.kind == "ctc":
        return CTCBridge(config, in_dim, lm_dim, lm_vocab_size)
    raise ValueError(f"unknown bridge kind {config.kind!r}")
