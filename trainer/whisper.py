"""The Whisper family as the training loop sees it: LoRA on Whisper's decoder.

The encoder runs from its ONNX graph at transcription time, so it stays frozen here (its
frames are computed once and cached, like a bridge model's). The decoder learns to write
the transcript in the form the Whisper backend decodes: start-of-transcript prefix, a
`<|0.00|>` timestamp, the text, the closing timestamp at the end of the clip, end of text.
Text-only data cannot teach a decoder that always reads audio, so it is not used.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from torch import nn

from engine.errors import StenoError
from trainer.records import TrainSettings

SECONDS_PER_FRAME = 0.02  # one encoder frame, and one timestamp step


class WhisperTrainee:
    family, target = "whisper", "whisper"
    cache_dtype = torch.float16  # a 30 s window is 1500 frames per clip: halve the cache

    def __init__(self, folder: Path, config):
        from transformers import WhisperForConditionalGeneration, WhisperTokenizer

        from engine.models.folder import WHISPER_DIR, check_whisper_folder
        from engine.whisper.backend import Vocab

        check_whisper_folder(folder)
        self.config = config
        sub = Path(folder) / WHISPER_DIR
        self.whisper = WhisperForConditionalGeneration.from_pretrained(sub).eval()
        self.tokenizer = WhisperTokenizer.from_pretrained(sub)
        self.vocab = Vocab.from_tokenizer(self.tokenizer, self.whisper.generation_config)
        self.n_mels = self.whisper.config.num_mel_bins
        self.max_positions = self.whisper.config.max_target_positions
        self.anchor = 0.0

    def encode(self, audio, device: str) -> torch.Tensor:
        """(frames, d): what the backend's encoder graph computes for this clip, fed the
        same window (the backend's default: the clip padded to 30 s)."""
        from engine.whisper.encoder import log_mel, whisper_forward

        encoder = self.whisper.model.encoder.to(device)
        mel = torch.from_numpy(log_mel(audio, self.n_mels)).to(device)
        return whisper_forward(encoder, mel, None)[0]

    def target_modules(self, s: TrainSettings) -> str:
        """A regex over the decoder's modules only: the backend refuses encoder LoRA."""
        if s.target_modules:
            inner = "|".join(re.escape(t) for t in s.target_modules)
        else:
            blocks = "self_attn|encoder_attn" if s.cross_attention else "self_attn"
            inner = rf"(?:{blocks})\.(?:q_proj|v_proj)" + ("|fc1|fc2" if s.train_mlp else "")
        return rf"model\.decoder\.layers\.\d+\.(?:{inner})"

    def prepare(self, s: TrainSettings) -> list[tuple[str, nn.Parameter]]:
        from peft import LoraConfig, get_peft_model

        self.anchor = s.anchor
        self.whisper.model.encoder = None  # frames are cached; the encoder is never trained
        for p in self.whisper.parameters():
            p.requires_grad_(False)
        torch.manual_seed(s.seed)
        config = LoraConfig(r=s.rank, lora_alpha=s.alpha, lora_dropout=s.dropout,
                            target_modules=self.target_modules(s), bias="none")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                self.whisper = get_peft_model(self.whisper, config)
        except ValueError as e:
            raise StenoError(f"cannot put LoRA on the Whisper decoder ({str(e).splitlines()[0]})") from None
        return [(n, p) for n, p in self.whisper.named_parameters() if p.requires_grad]

    def to(self, device: str) -> None:
        self.whisper.to(device)

    def train_mode(self) -> None:
        self.whisper.train()

    def eval(self) -> None:
        self.whisper.eval()

    def target_ids(self, text: str, seconds: float, prompt_len: int) -> list[int]:
        """The transcript in the backend's form, cut to what fits after a prompt of `prompt_len`."""
        ts = self.vocab.timestamp_begin
        end = ts + min(round(seconds / SECONDS_PER_FRAME), 1500)
        words = self.tokenizer.encode(" " + text.strip(), add_special_tokens=False)
        room = self.max_positions - prompt_len - 3
        return [ts] + words[:room] + [end, self.vocab.eot]

    def speech_loss(self, frames: list[torch.Tensor], texts: list[str], seconds: list[float],
                    hints: list[list[str] | None] | None = None) -> torch.Tensor:
        """Cross-entropy on the transcript tokens, the decoder reading each clip's frames
        (after the clip's hint prompt, if it has one)."""
        from engine.whisper.backend import prompt_tokens
        from engine.whisper.model import pad_batch

        model = self.whisper.get_base_model() if hasattr(self.whisper, "get_base_model") else self.whisper
        dec = model.model.decoder
        device = frames[0].device
        prompts = [prompt_tokens(self.tokenizer, self.vocab, h) for h in (hints or [None] * len(texts))]
        rows = [p + self.target_ids(t, sec, len(p)) for p, t, sec in zip(prompts, texts, seconds)]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.vocab.eot, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, (p, r) in enumerate(zip(prompts, rows)):
            ids[i, :len(r)] = torch.as_tensor(r)
            labels[i, len(p):len(r)] = torch.as_tensor(r[len(p):])
        ids, labels = ids.to(device), labels.to(device)
        enc, enc_mask = pad_batch([f[None].to(dec.embed_tokens.weight.dtype) for f in frames])
        logits = self._logits(model, ids, enc, enc_mask)[:, :-1].flatten(0, 1).float()
        targets = labels[:, 1:].flatten()
        loss = nn.functional.cross_entropy(logits, targets, ignore_index=-100)
        if self.anchor and torch.is_grad_enabled():
            # keep the next-token distribution near the base model's wherever the base model
            # already reads the transcript right (ordinary words): what stops the decoder from
            # spelling new words everywhere, while the words it got wrong are free to change
            with torch.no_grad(), self.whisper.disable_adapter():
                base = self._logits(model, ids, enc, enc_mask)[:, :-1].flatten(0, 1).float()
            keep = (targets != -100) & (base.argmax(-1) == targets)
            if keep.any():
                kl = nn.functional.kl_div(logits[keep].log_softmax(-1), base[keep].log_softmax(-1),
                                          log_target=True, reduction="batchmean")
                loss = loss + self.anchor * kl
        return loss

    @staticmethod
    def _logits(model, ids: torch.Tensor, enc: torch.Tensor, enc_mask: torch.Tensor | None) -> torch.Tensor:
        dec = model.model.decoder
        width = ids.shape[1]
        x = dec.embed_tokens(ids) + dec.embed_positions.weight[:width]
        causal = torch.full((width, width), float("-inf"), device=ids.device).triu(1)[None, None]
        for layer in dec.layers:
            x = layer(x, causal, enc, encoder_attention_mask=enc_mask, use_cache=False)
        return model.proj_out(dec.layer_norm(x))

    def text_ids(self, text: str) -> list[int]:
        raise StenoError("a Whisper-family model cannot learn from text alone")

    def text_loss(self, batch, device):
        raise StenoError("a Whisper-family model cannot learn from text alone")

    def lora_config(self):
        return self.whisper.peft_config["default"]

    def save(self, folder: Path) -> None:
        self.whisper.save_pretrained(str(folder))
