"""The bridge model: speech encoder -> bridge -> causal LM, as in arXiv 2312.03668.

The LM reads `[bos] + prefix tokens + speech vectors + separator tokens` as input
embeddings and writes the transcript. Training loss is next-token cross-entropy on the
transcript tokens only (plus the CTC loss for the ctc bridge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from engine.bridge.bridge import CTCBridge, build_bridge
from engine.bridge.encoder import SpeechEncoder
from engine.models.config import ModelConfig

if TYPE_CHECKING:  # transformers' model code is imported where a model is trained, not to decode
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class LMInputs:
    embeds: torch.Tensor  # (B, L, D), left-padded
    attention_mask: torch.Tensor  # (B, L)
    position_ids: torch.Tensor  # (B, L)


class SpeechLM(nn.Module):
    def __init__(self, config: ModelConfig, encoder: SpeechEncoder, bridge: nn.Module,
                 lm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, sync_labels: bool = True):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.bridge = bridge
        self.lm = lm
        self.tokenizer = tokenizer
        if sync_labels:
            self.sync_label_embeddings()

    @classmethod
    def assemble(cls, config: ModelConfig, encoder: SpeechEncoder, lm: PreTrainedModel,
                 tokenizer: PreTrainedTokenizerBase) -> "SpeechLM":
        """A new model from pretrained parts with a freshly initialised bridge."""
        bridge = build_bridge(config.bridge, encoder.hidden_size, lm.get_input_embeddings().embedding_dim,
                              lm.get_input_embeddings().num_embeddings)
        return cls(config, encoder, bridge, lm, tokenizer)

    def sync_label_embeddings(self) -> None:
        """Copy the LM's embedding rows of the CTC labels into the bridge (the posterior projection).
        (It reads the whole embedding table: 110 MB of the default model made resident.)"""
        if isinstance(self.bridge, CTCBridge):
            table = self.lm.get_input_embeddings().weight.detach()
            ids = self.config.bridge.ctc_token_ids
            rows = table if ids is None else table[torch.as_tensor(ids, dtype=torch.long)]
            self.bridge.label_embeddings.copy_(rows.to(self.bridge.label_embeddings))

    # ---- speech side -------------------------------------------------------------------------
    def speech_embeddings(self, inputs: torch.Tensor) -> torch.Tensor:
        """One clip's encoder input (1, ...) -> LM input vectors (1, N, D)."""
        return self.speech_outputs(inputs)[0]

    def speech_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What the exported ONNX graph computes: the LM input vectors (1, N, D), and for a ctc
        bridge also its frame log-probabilities (1, T', labels) for joint CTC decoding."""
        frames = self.encoder(inputs)
        if isinstance(self.bridge, CTCBridge):
            embeddings, logits = self.bridge(frames)
            return embeddings, logits.log_softmax(-1)
        return (self.bridge(frames),)

    # ---- LM side -----------------------------------------------------------------------------
    def prompt_ids(self, hints: str | None = None) -> tuple[list[int], list[int]]:
        """Token ids before and after the speech vectors."""
        tok, p = self.tokenizer, self.config.prompt
        before: list[int] = []
        if p.add_bos and tok.bos_token_id is not None:
            before.append(tok.bos_token_id)
        prefix = p.prefix + (p.hints_template.format(terms=hints) if hints else "")
        before += tok.encode(prefix, add_special_tokens=False) if prefix else []
        after = tok.encode(p.separator, add_special_tokens=False) if p.separator else []
        return before, after

    def embed_tokens(self, ids: list[int] | torch.Tensor) -> torch.Tensor:
        table = self.lm.get_input_embeddings()
        ids = torch.as_tensor(ids, dtype=torch.long, device=table.weight.device)
        return table(ids)

    def lm_inputs(self, speech: list[torch.Tensor], targets: list[list[int]] | None = None,
                  hints: list[str | None] | None = None) -> tuple[LMInputs, torch.Tensor | None]:
        """Build left-padded LM inputs for a batch; with targets, also the label tensor.

        Left padding keeps every item's last prompt position at the same index, which lets
        batched greedy decoding step all items together.
        """
        rows, labels = [], []
        for i, s in enumerate(speech):
            before, after = self.prompt_ids(hints[i] if hints else None)
            parts = [self.embed_tokens(before), s.to(self.lm.get_input_embeddings().weight.dtype), self.embed_tokens(after)]
            n_prompt = len(before) + s.shape[0] + len(after)
            if targets is not None:
                parts.append(self.embed_tokens(targets[i]))
                labels.append([-100] * n_prompt + list(targets[i]))
            rows.append(torch.cat(parts))
        width = max(r.shape[0] for r in rows)
        dim = rows[0].shape[1]
        embeds = rows[0].new_zeros(len(rows), width, dim)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=embeds.device)
        for i, r in enumerate(rows):
            embeds[i, width - r.shape[0]:] = r
            mask[i, width - r.shape[0]:] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        label_tensor = None
        if targets is not None:
            label_tensor = torch.full((len(rows), width), -100, dtype=torch.long, device=embeds.device)
            for i, lab in enumerate(labels):
                label_tensor[i, width - len(lab):] = torch.as_tensor(lab)
        return LMInputs(embeds, mask, positions), label_tensor

    def target_ids(self, text: str) -> list[int]:
        eos = self.tokenizer.eos_token_id
        return self.tokenizer.encode(text, add_special_tokens=False) + ([eos] if eos is not None else [])

    # ---- training ----------------------------------------------------------------------------
    def loss(self, inputs: list[torch.Tensor], texts: list[str], hints: list[str | None] | None = None
             ) -> dict[str, torch.Tensor]:
        """Loss for a batch of clips given as encoder inputs, each with a batch axis of 1.

        `loss_from_frames` takes encoder outputs instead, so a trainer can precompute a
        frozen encoder once.
        """
        frames = [self.encoder(x)[0] for x in inputs]
        return self.loss_from_frames(frames, texts, hints)

    def loss_from_frames(self, frames: list[torch.Tensor], texts: list[str],
                         hints: list[str | None] | None = None) -> dict[str, torch.Tensor]:
        lengths = [f.shape[0] for f in frames]
        padded = nn.utils.rnn.pad_sequence(frames, batch_first=True)
        targets = [self.target_ids(t) for t in texts]
        out: dict[str, torch.Tensor] = {}
        if isinstance(self.bridge, CTCBridge):
            states, logits = self.bridge.frame_states(padded, lengths)
            out_lengths = [self.bridge.output_length(n) for n in lengths]
            speech = self.bridge.compress_batch(states, logits, out_lengths)
            out["ctc"] = self._ctc_loss(logits, out_lengths, targets)
        else:
            embeds = self.bridge(padded)
            speech = [embeds[i, : self.bridge.output_length(n)] for i, n in enumerate(lengths)]
        out["ce"] = self.loss_from_speech(speech, targets, hints)
        out["loss"] = out["ce"] + (self.config.bridge.ctc_loss_weight * out["ctc"] if "ctc" in out else 0)
        return out

    def loss_from_speech(self, speech: list[torch.Tensor], targets: list[list[int]],
                         hints: list[str | None] | None = None) -> torch.Tensor:
        """Next-token cross-entropy on the transcripts, given the bridge's LM input vectors
        (what a trainer with a frozen bridge caches; see recipes/speech_cache.py)."""
        lm_in, labels = self.lm_inputs(speech, targets, hints)
        logits = self.lm(inputs_embeds=lm_in.embeds, attention_mask=lm_in.attention_mask,
                         position_ids=lm_in.position_ids, use_cache=False).logits
        return nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                                           ignore_index=-100)

    def _ctc_loss(self, logits: torch.Tensor, lengths: list[int], targets: list[list[int]]) -> torch.Tensor:
        eos = self.tokenizer.eos_token_id
        labels = [self.bridge.labels_for(torch.as_tensor([t for t in ids if t != eos], dtype=torch.long,
                                                         device=logits.device)) for ids in targets]
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (T, B, C)
        flat = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
        return nn.functional.ctc_loss(log_probs, flat, torch.as_tensor(lengths), torch.as_tensor([len(x) for x in labels]),
                                      blank=0, reduction="mean", zero_infinity=True)
