"""The contract between the Transcriber and a model family's backend.

The Transcriber cuts audio into chunks, batches them, asks the VAD about text on silence
and turns results into Segments; a backend only turns clips into text. Both families
(engine.bridge.backend, engine.whisper.backend) implement `Backend`, so the CLI, the app
and the trainer never need to know which one runs.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np


@dataclass
class Span:
    """A timed piece of a chunk's text (seconds from the chunk's start), where the model
    gives times of its own (Whisper's timestamp tokens)."""

    start: float
    end: float
    text: str
    token_texts: list[str]
    logprobs: list[float]


@dataclass
class ChunkResult:
    """One clip's text, its tokens with their log-probabilities (for confidences and the
    hint guard), and flags naming anything a guard removed ("dropped-repetition", ...)."""

    text: str
    tokens: list[int]
    token_texts: list[str]
    logprobs: list[float]
    flags: list[str]
    spans: list[Span] = field(default_factory=list)  # empty: the model has no timing of its own
    # Seconds of the clip the text accounts for; None: all of it. Less where the model
    # stopped early: Whisper's sign of a segment it heard begin but not end (a lone opening
    # timestamp), or the length limit or a loop cut before the clip's end. The Transcriber
    # decodes the rest of the clip again, as Whisper's own long-form loop seeks on.
    covered: float | None = None
    # Text a guard took out (a loop's repeats, text heard on silence), named by `flags`: kept
    # so the log can say what went and the editor can offer it back.
    removed: str = ""
    # The model's own probability that the clip holds speech, where it has one (Whisper's
    # 1 - no-speech probability): the witness for speech the VAD hears only faintly.
    speech_prob: float | None = None
    # Draft words the term pass replaced with a listed term ("big summer -> apixaban"),
    # flagged "term-replaced" (engine.decoding.term_pass).
    replaced: str = ""


@dataclass
class Timing:
    """Where the time went, summed over calls: the real-time factor the CLI and benches print."""

    audio_seconds: float = 0.0
    encoder_seconds: float = 0.0
    decoder_seconds: float = 0.0
    tokens: int = 0

    @property
    def rtf(self) -> float:
        return (self.encoder_seconds + self.decoder_seconds) / max(self.audio_seconds, 1e-9)


class Backend(Protocol):
    """A loaded model of one family, ready to decode clips of at most ~30 s."""

    device_text: str  # what runs where, in words

    bias_bonus: float  # the log-prob bonus per token of a boosted term (engine.decoding.biasing)

    def transcribe_batch(self, clips: list[np.ndarray], *, hints: list[str] | None, beam_size: int,
                         timing: Timing, context: str | None = None,
                         bias_terms: list[str] | None = None) -> list[ChunkResult]:
        """One result per clip (16 kHz mono float32), in order; adds its time to `timing`.
        `context`: the text said just before the clips, where the model can use it;
        `bias_terms`: terms boosted while decoding (engine.decoding.biasing)."""

    def set_adapter(self, adapter: str | Path | None, base_model_id: str) -> dict | None:
        """Apply a LoRA adapter folder in place (None restores the base model); its metadata."""

    def term_tokens(self, text: str) -> list[int]:
        """`text`'s tokens as they would follow other text (a leading space kept)."""

    def decode_tokens(self, tokens: list[int]) -> str:
        """Text tokens back to text."""

    def score_tokens(self, clip: np.ndarray, sequences: list[list[int]], context: str | None = None,
                     hints: list[str] | None = None) -> list[tuple[float, list[float]]]:
        """Teacher-forced, on `clip`'s audio with `hints` in the prompt: each sequence's score
        as the model's search ranks it (the end token included) and the log-prob of each of
        its tokens (engine.decoding.term_pass)."""


class RecentEncodings:
    """The encoder outputs of the last few clips, by their samples. Why: with a word list a
    clip is decoded twice (a draft, then with the terms), and the encoder, the larger part of
    a Whisper clip's time on a CPU, need not run twice."""

    def __init__(self, size: int = 8):
        self.size = size
        self.items: OrderedDict[bytes, object] = OrderedDict()

    def get(self, audio: np.ndarray, compute: Callable[[np.ndarray], object]) -> object:
        import hashlib

        key = hashlib.blake2b(np.ascontiguousarray(audio, dtype=np.float32).tobytes(), digest_size=16).digest()
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = compute(audio)
        self.items[key] = value
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return value

    def clear(self) -> None:
        self.items.clear()
