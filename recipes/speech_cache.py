"""What a frozen CTC bridge hands the LM, for a whole corpus, small enough to carry.

Stage 3 with the bridge frozen needs neither the encoder nor the bridge's layers: only the
LM input vectors. For each non-blank run of labels the bridge hands the LM
`proj(state) + posterior @ label_embeddings`, averaged over the run's frames; `proj` is
affine, so that equals the same formula on the run's mean state and mean posterior. The
cache keeps those two means per LM position: the state as int8 with a scale per row, the
posterior as its top-8 labels (the rest of its mass stands in as the labels' mean
embedding). About 300 bytes per LM position (~4 a second of speech) against ~50 kB of
encoder frames per second, so a corpus travels to a lent GPU machine in one or two calls
(`python -m recipes.pack_for_gpu --lora`).

The file is one .npz that also holds the bridge's `proj` and its label -> LM token ids, so
the LM side can rebuild the vectors with nothing but the LM.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from engine.bridge.bridge import CTCBridge, compression_matrix


@dataclass
class SpeechCache:
    proj_weight: torch.Tensor  # (lm_dim, ctc_dim)
    proj_bias: torch.Tensor  # (lm_dim,)
    token_ids: list[int]  # label l (1-based) is LM token token_ids[l - 1]
    states: torch.Tensor  # (positions, ctc_dim) int8
    scales: torch.Tensor  # (positions,) per-row scale of `states`
    labels: torch.Tensor  # (positions, k) 1-based labels, 0 = unused slot
    probs: torch.Tensor  # (positions, k) their mean posterior
    offsets: list[int]  # clip i owns positions offsets[i]:offsets[i + 1]
    frames: list[int]  # encoder frames (50 a second) of each clip
    texts: list[str]

    def __len__(self) -> int:
        return len(self.texts)


@torch.no_grad()
def summarise(bridge: CTCBridge, frames: list[torch.Tensor], top_k: int = 8
              ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per clip: the mean head state (N, ctc_dim) and the top-k labels and mean posteriors
    (N, k) of each run, exactly as `CTCBridge.forward` groups the frames."""
    bridge.eval()
    lengths = [f.shape[0] for f in frames]
    states, logits = bridge.frame_states(torch.nn.utils.rnn.pad_sequence([f.float() for f in frames], batch_first=True),
                                         lengths)
    out = []
    for i, n in enumerate(lengths):
        t = bridge.output_length(n)
        lg = logits[i, :t]
        assign = compression_matrix(lg.argmax(-1), lg[:, 0])
        count = assign.sum(-1, keepdim=True)
        mean_state = (assign @ states[i, :t]) / count
        posterior = (assign @ lg.softmax(-1)[:, 1:]) / count
        probs, labels = posterior.topk(min(top_k, posterior.shape[1]), dim=-1)
        out.append((mean_state, labels + 1, probs))
    return out


def build_cache(bridge: CTCBridge, items: list[tuple[torch.Tensor, str]], path: Path, top_k: int = 8,
                batch_size: int = 32, progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the cache of `items` (encoder frames, one-line transcript) to `path` (temp file, then rename)."""
    if any("\n" in t for _, t in items):
        raise ValueError("a transcript with a line break cannot be cached")
    states, scales, labels, probs, lengths = [], [], [], [], []
    for s in range(0, len(items), batch_size):
        for mean_state, lab, pr in summarise(bridge, [f for f, _ in items[s:s + batch_size]], top_k):
            scale = mean_state.abs().amax(-1).clamp(min=1e-8) / 127
            states.append(torch.round(mean_state / scale[:, None]).to(torch.int8).numpy())
            scales.append(scale.half().numpy())
            labels.append(lab.numpy().astype(np.uint16))
            probs.append(pr.half().numpy())
            lengths.append(mean_state.shape[0])
        if progress:
            progress(min(s + batch_size, len(items)), len(items))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, proj_weight=bridge.proj.weight.detach().float().numpy(), proj_bias=bridge.proj.bias.detach().float().numpy(),
             token_ids=np.asarray(bridge.config.ctc_token_ids, dtype=np.int64), states=np.concatenate(states),
             scales=np.concatenate(scales), labels=np.concatenate(labels), probs=np.concatenate(probs),
             lengths=np.asarray(lengths, dtype=np.int64), frames=np.asarray([f.shape[0] for f, _ in items]), texts=np.frombuffer("\n".join(t for _, t in items).encode(), dtype=np.uint8))
    tmp.replace(path)
    return path


def load_cache(path: Path) -> SpeechCache:
    with np.load(path) as data:
        d = {k: data[k] for k in data.files}
    offsets = np.concatenate([[0], np.cumsum(d["lengths"])]).tolist()
    return SpeechCache(torch.from_numpy(d["proj_weight"]), torch.from_numpy(d["proj_bias"]), d["token_ids"].tolist(),
                       torch.from_numpy(d["states"]), torch.from_numpy(d["scales"].astype(np.float32)),
                       torch.from_numpy(d["labels"].astype(np.int64)), torch.from_numpy(d["probs"].astype(np.float32)),
                       offsets, d["frames"].tolist(), d["texts"].tobytes().decode().split("\n"))


def to_device(cache: SpeechCache, device: str) -> SpeechCache:
    """The tensors on `device` (a GPU keeps the whole cache: it is small)."""
    moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(cache).items()}
    return SpeechCache(**moved)


def speech_vectors(cache: SpeechCache, indices: list[int], embeddings: torch.Tensor) -> list[torch.Tensor]:
    """The LM input vectors of clips `indices`, rebuilt with the LM's embedding table
    (V, lm_dim); one matmul for the whole batch."""
    spans = [(cache.offsets[i], cache.offsets[i + 1]) for i in indices]
    rows = torch.cat([torch.arange(a, b) for a, b in spans]).to(cache.states.device)
    states = cache.states[rows].float() * cache.scales[rows, None]
    labels, probs = cache.labels[rows], cache.probs[rows]
    token_ids = torch.as_tensor(cache.token_ids, device=embeddings.device)
    table = embeddings[token_ids[(labels - 1).clamp(min=0)]]  # (P, k, lm_dim)
    weights = (probs * (labels > 0)).to(embeddings.dtype)
    # the posterior mass beyond the top k is spread thin over many labels: their mean embedding
    # stands in for it (halves the largest error against the bridge's own output)
    tail = (1 - weights.sum(-1, keepdim=True)).clamp(min=0)
    vectors = states.to(embeddings.dtype) @ cache.proj_weight.to(embeddings).T + cache.proj_bias.to(embeddings)
    vectors = vectors + (weights[..., None] * table).sum(1) + tail * embeddings[token_ids].mean(0)
    return list(vectors.split([b - a for a, b in spans]))
