"""The trainer's plain records: what `trainer.api` takes and returns, and what the trainer's
modules hand each other. Here so that every trainer module can use them without importing
the API facade, which imports those modules: this module imports no other trainer module.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import StenoError

MIN_PAIRS = 10  # fewer recordings than this teach noise, and leave nothing to measure on


@dataclass
class Pair:
    audio: Path
    text: str
    seconds: float = 0.0  # length of the audio
    source: str = ""  # where it came from: the audio file, or manifest:line


@dataclass
class DataReport:
    pairs: list[Pair]  # training pairs
    texts: list[str]  # text-only training sentences (documents, and the word list's terms)
    terms: list[str]  # the vocabulary scored by term recall
    rejected: list[tuple[str, str]]  # (item, reason)
    eval_pairs: list[Pair]  # held-out part (auto split or explicit)
    sources: list[str] = field(default_factory=list)  # the --data paths
    text_sources: list[str] = field(default_factory=list)  # documents actually read
    terms_source: str = ""  # "word list X" or "rare words of the training text"
    eval_source: str | None = None  # the explicit eval set; None = split off automatically
    eval_fraction: float = 0.15
    seed: int = 0

    @property
    def audio_seconds(self) -> float:
        return sum(p.seconds for p in self.pairs)

    def problem(self, family: str | None = None) -> str | None:
        """Why this cannot train an adapter (for a model of `family`, where known), in one line
        that says what to add; None if it can. The app's *Check data* shows it, and training
        refuses with it: they always agree."""
        why = ""
        if self.rejected:
            first = self.rejected[0]
            why = f"; {len(self.rejected)} item(s) rejected, e.g. {first[0]}: {first[1]}"
        n_pairs = len(self.pairs) + (len(self.eval_pairs) if self.eval_source is None else 0)
        if not self.pairs and not self.texts:
            return (f"no usable training data: add at least {MIN_PAIRS} recordings with their corrected "
                    "transcripts (projects saved with “Use as training data”, or a folder of audio files with "
                    f"same-named .txt files), or documents or a word list of your terms{why}")
        if self.pairs and n_pairs < MIN_PAIRS:
            return (f"only {n_pairs} usable audio+transcript pair(s); at least {MIN_PAIRS} are needed to train and "
                    f"measure an adapter: add {MIN_PAIRS - n_pairs} more recording(s) with transcripts{why}")
        if family == "whisper" and not self.pairs:
            return ("text-only adaptation needs a bridge model: a Whisper-family model learns from recordings "
                    f"with transcripts; add at least {MIN_PAIRS}, have your terms spoken by TTS voices (needs "
                    "espeak-ng: Settings → Teach these words, or steno train --words without --spoken 0), or "
                    f"choose a bridge model{why}")
        return None

    def check(self, family: str | None = None) -> None:
        """Raise StenoError (one line, with the reason) if this cannot train an adapter."""
        problem = self.problem(family)
        if problem:
            raise StenoError(problem, self.sources[0] if len(self.sources) == 1 else None)

    def summary(self) -> str:
        lines = [f"training pairs   {len(self.pairs)} ({self.audio_seconds / 60:.1f} min of audio)"]
        if self.eval_source:
            lines.append(f"held-out pairs   {len(self.eval_pairs)} (from {self.eval_source})")
        elif self.eval_pairs:
            lines.append(f"held-out pairs   {len(self.eval_pairs)} (split off at random, seed {self.seed})")
        else:
            lines.append("held-out pairs   0 (nothing to measure before/after on)")
        docs = f" from {len(self.text_sources)} document(s)" if self.text_sources else ""
        lines.append(f"text sentences   {len(self.texts)}{docs}")
        lines.append(f"terms            {len(self.terms)} ({self.terms_source or 'none'})"
                     + (f": {', '.join(self.terms[:8])}{', ...' if len(self.terms) > 8 else ''}" if self.terms else ""))
        lines.append(f"rejected         {len(self.rejected)}")
        for item, reason in self.rejected[:50]:
            lines.append(f"  {item}: {reason}")
        if len(self.rejected) > 50:
            lines.append(f"  ... and {len(self.rejected) - 50} more")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """What goes into the adapter's JSON: counts and sources, not the data itself."""
        return {"train_pairs": len(self.pairs), "train_audio_seconds": round(self.audio_seconds, 1),
                "eval_pairs": len(self.eval_pairs), "eval_source": self.eval_source or "random split",
                "text_sentences": len(self.texts), "sources": self.sources, "text_sources": self.text_sources,
                "terms": len(self.terms), "terms_source": self.terms_source, "rejected": len(self.rejected)}


@dataclass
class TrainSettings:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] | None = None  # None = the LM family's attention (see trainer.train)
    train_mlp: bool = False
    bridge: str = "frozen"  # "frozen" | "lora" | "full" (bridge models only)
    cross_attention: bool = False  # Whisper family: LoRA on the decoder's cross-attention too
    epochs: int = 3
    learning_rate: float = 5e-4
    batch_size: int = 4
    grad_accum: int = 1
    warmup_steps: int = 10
    patience: int = 2  # epochs without a better held-out loss before stopping
    seed: int = 0
    device: str = "auto"
    text_weight: float = 0.5
    anchor: float = 1.0  # Whisper family: weight of a KL term keeping the decoder near the base model
    rehearsal: int = 96  # everyday sentences spoken by espeak-ng and trained on beside the data (0 = off)
    rehearsal_weight: float = 1.0  # weight of their loss; half a batch of them beside each batch
    hint_share: float = 0.25  # share of clips whose prompt carries some of the terms (said ones among others)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    checkpoint_every: int = 50  # optimizer steps between checkpoints (also at each epoch end and on cancel)
    evaluate: bool = True  # transcribe the held-out pairs before and after (WER/CER/term recall)
    frames_cache: Path | None = None  # keep encoder frames here across runs (default: the work folder, removed)


@dataclass
class Scores:
    wer: float  # nan when there was nothing to measure on
    cer: float
    term_recall: float | None  # None when no term occurs in the held-out references

    def to_dict(self) -> dict:
        def clean(x):
            return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else round(x, 5)

        return {"wer": clean(self.wer), "cer": clean(self.cer), "term_recall": clean(self.term_recall)}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Scores | None":
        if not isinstance(d, dict):
            return None

        def num(x):
            return float("nan") if x is None else float(x)

        tr = d.get("term_recall")
        return cls(num(d.get("wer")), num(d.get("cer")), None if tr is None else float(tr))

    @classmethod
    def unmeasured(cls) -> "Scores":
        return cls(float("nan"), float("nan"), None)


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def scores_table(before: Scores | None, after: Scores | None) -> str:
    """WER, CER and term recall before and after, with the change; '-' where not measured.
    The table `steno train` and `steno adapters show` print."""
    rows = [("", "WER", "CER", "term recall")]
    for label, s in (("before", before), ("after", after)):
        rows.append((label, _pct(s.wer) if s else "-", _pct(s.cer) if s else "-", _pct(s.term_recall) if s else "-"))
    if before and after and math.isfinite(before.wer) and math.isfinite(after.wer):
        def delta(a, b):
            return "-" if a is None or b is None else f"{100 * (b - a):+.1f}"

        rows.append(("change", delta(before.wer, after.wer), delta(before.cer, after.cer),
                     delta(before.term_recall, after.term_recall)))
    return "\n".join(f"{r[0]:8} {r[1]:>8} {r[2]:>8} {r[3]:>12}" for r in rows)


@dataclass
class Progress:
    step: int
    total_steps: int
    epoch: int
    loss: float | None
    eval_loss: float | None
    eta_seconds: float | None
    message: str

    def count(self) -> tuple[int, int] | None:
        """(n, of) while a counted stage works on its n-th item ("encoding audio 19/96"): the
        trainer's stages before and after the steps say their count at the end of the message."""
        m = re.search(r"(\d+)/(\d+)$", self.message or "")
        return (int(m[1]), int(m[2])) if m and 0 < int(m[1]) <= int(m[2]) else None

    @property
    def fraction(self) -> float:
        """How far the current stage is: its items done while one is counted, else the steps."""
        count = self.count()
        if count is not None:
            return (count[0] - 1) / count[1]
        return self.step / self.total_steps if self.total_steps else 0.0


@dataclass
class AdapterResult:
    path: Path
    before: Scores
    after: Scores  # unmeasured (nan) when cancelled
    stopped_early: bool
    cancelled: bool
    steps: int = 0
    seconds: float = 0.0  # training time, summed over a resumed run's sessions (evaluation not counted)

    def table(self) -> str:
        return scores_table(self.before, self.after)


@dataclass
class AdapterInfo:
    name: str
    path: Path
    base_model_id: str
    created: str
    before: Scores | None
    after: Scores | None
    base_model_name: str = ""
    meta: dict = field(default_factory=dict)  # the whole steno_adapter.json
