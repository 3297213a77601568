"""The JSON config that, with the weights beside it, fully describes a Steno model."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.decoding.hints import MAX_PROMPT_TERMS
from engine.errors import ModelFolderError

FORMAT_VERSION = 1  # bump when a model folder written by this code can't be read by older code
CONFIG_NAME = "steno.json"

EncoderKind = Literal["hubert", "wav2vec2", "wavlm", "whisper"]
BridgeKind = Literal["conv", "ctc"]


@dataclass
class EncoderConfig:
    kind: EncoderKind = "hubert"
    layer: int | None = None  # hidden layer fed to the bridge; None = the last
    normalize_waveform: bool = False  # zero-mean/unit-variance input, as wav2vec2-large expects
    n_mels: int = 80  # whisper only


@dataclass
class BridgeConfig:
    kind: BridgeKind = "conv"
    # conv bridge (and the optional downsampling in front of the ctc head)
    kernel_sizes: list[int] = field(default_factory=lambda: [4, 4])
    strides: list[int] = field(default_factory=lambda: [2, 2])
    channels: int | None = None  # conv width; None = the encoder width
    padding: bool = False  # nue-asr uses none
    # ctc bridge
    ctc_dim: int = 256
    ctc_layers: int = 0  # transformer layers in the ctc head
    ctc_heads: int = 4
    ctc_token_ids: list[int] | None = None  # LM tokens the head predicts (blank is label 0); None = all
    ctc_projection: Literal["linear", "posterior"] = "linear"
    ctc_loss_weight: float = 0.3

    @property
    def total_stride(self) -> int:
        total = 1
        for s in self.strides:
            total *= s
        return total


@dataclass
class PromptConfig:
    """LM input = prefix tokens + speech embeddings + separator tokens, then the transcript."""

    prefix: str = ""
    separator: str = ""
    add_bos: bool = True  # put the tokenizer's bos token first when it has one
    hints_template: str = "Some of these words may occur: {terms}.\n"
    max_hint_terms: int = MAX_PROMPT_TERMS  # longer lists are cut per clip to the most relevant


@dataclass
class DecodeConfig:
    tokens_per_second: float = 4.0  # max_new_tokens = tokens_per_second * seconds + extra_tokens
    extra_tokens: int = 20
    min_new_tokens: int = 1
    beam_size: int = 1
    length_penalty: float = 1.0
    max_repeats: int = 4  # an n-gram repeated this often in a row is a loop: cut it
    ctc_weight: float = 0.0  # ctc bridges: weight of the CTC prefix score in greedy decoding (0 = LM alone)
    ctc_blank_penalty: float = 0.0  # nats taken off the CTC blank before scoring (fewer dropped words)
    unknown_word_penalty: float = 0.0  # joint beam search: score off each written word no word list knows
    word_bonus: float = 0.0  # joint decoding: score added per word begun (against dropped unsure words)


@dataclass
class ModelConfig:
    family: Literal["bridge", "whisper"] = "bridge"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    sample_rate: int = 16000
    max_segment_seconds: float = 30.0
    name: str = ""
    language: str = "en"
    metrics: dict[str, Any] = field(default_factory=dict)  # measured dev WER/RTF, for `steno models`
    tokenizer_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. nue-asr's use_fast=False, legacy=True
    source: dict[str, Any] = field(default_factory=dict)  # where the weights came from (importer, versions)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> "ModelConfig":
        version = data.get("format_version")
        if not isinstance(version, int):
            raise ModelFolderError("config has no format_version: not a Steno model folder", path)
        if version > FORMAT_VERSION:
            raise ModelFolderError(
                f"made by a newer Steno (model format {version}; this Steno reads up to {FORMAT_VERSION}): upgrade Steno",
                path,
            )
        for section in ("encoder", "bridge", "prompt", "decode"):
            if not isinstance(data.get(section, {}), dict):
                raise ModelFolderError(f"bad config value {section}: must be a JSON object", path)
        try:
            config = cls(
                family=data.get("family", "bridge"),
                encoder=EncoderConfig(**data.get("encoder", {})),
                bridge=BridgeConfig(**data.get("bridge", {})),
                prompt=PromptConfig(**data.get("prompt", {})),
                decode=DecodeConfig(**data.get("decode", {})),
                sample_rate=data.get("sample_rate", 16000),
                max_segment_seconds=data.get("max_segment_seconds", 30.0),
                name=data.get("name", ""),
                language=data.get("language", "en"),
                metrics=data.get("metrics", {}),
                tokenizer_kwargs=data.get("tokenizer_kwargs", {}),
                source=data.get("source", {}),
                format_version=version,
            )
        except TypeError as e:
            raise ModelFolderError(f"config has unknown or malformed fields ({e})", path) from None
        config.validate(path)
        return config

    def validate(self, path: Path | None = None) -> None:
        """Refuse values the engine cannot run with (a 0 s segment loops forever, a beam of
        0 is silently greedy), naming the key; every model is checked when it is read."""
        for key, ok, rule in RULES:
            value = self
            for part in key.split("."):
                value = getattr(value, part)
            try:
                good = ok(value)
            except TypeError:
                good = False
            if not good:
                raise ModelFolderError(f"bad config value {key} = {json.dumps(value, default=str)}: {rule}", path)
        if len(self.bridge.kernel_sizes) != len(self.bridge.strides):
            raise ModelFolderError("bad config value bridge.strides: must have one stride per kernel size", path)

    def save(self, folder: Path) -> None:
        from engine.files import atomic_write_text

        atomic_write_text(Path(folder) / CONFIG_NAME, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "ModelConfig":
        path = Path(folder) / CONFIG_NAME
        if not path.is_file():
            raise ModelFolderError(f"no {CONFIG_NAME}: not a Steno model folder (or an incomplete one)", folder)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ModelFolderError(f"unreadable config ({e})", path) from None
        if not isinstance(data, dict):
            raise ModelFolderError("config is not a JSON object", path)
        return cls.from_dict(data, path)


MAX_SEGMENT_SECONDS = 30.0  # the encoder graphs (and Whisper's position table) take up to 30 s
MAX_BEAM = 16  # as `--beam` (app/cli.py): wider beams cost memory and time and find nothing more


def _int(v, lo: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _text(v) -> bool:
    return isinstance(v, str)


# (key, test, what a good value is): checked by ModelConfig.validate on every load
RULES = [
    ("family", lambda v: v in ("bridge", "whisper"), "must be bridge or whisper"),
    ("sample_rate", lambda v: v == 16000 and _int(v), "must be 16000 (Steno works at 16 kHz)"),
    ("max_segment_seconds", lambda v: _num(v) and 0 < v <= MAX_SEGMENT_SECONDS,
     f"must be a number of seconds above 0 and at most {MAX_SEGMENT_SECONDS:g}"),
    ("name", _text, "must be a string"),
    ("language", _text, "must be a string"),
    ("metrics", lambda v: isinstance(v, dict), "must be a JSON object"),
    ("tokenizer_kwargs", lambda v: isinstance(v, dict), "must be a JSON object"),
    ("source", lambda v: isinstance(v, dict), "must be a JSON object"),
    ("encoder.kind", lambda v: v in ("hubert", "wav2vec2", "wavlm", "whisper"),
     "must be hubert, wav2vec2, wavlm or whisper"),
    ("encoder.layer", lambda v: v is None or _int(v), "must be null (the last layer) or a layer number >= 0"),
    ("encoder.normalize_waveform", lambda v: isinstance(v, bool), "must be true or false"),
    ("encoder.n_mels", lambda v: _int(v, 1), "must be a whole number above 0"),
    ("bridge.kind", lambda v: v in ("conv", "ctc"), "must be conv or ctc"),
    ("bridge.kernel_sizes", lambda v: isinstance(v, list) and all(_int(k, 1) for k in v),
     "must be a list of whole numbers above 0"),
    ("bridge.strides", lambda v: isinstance(v, list) and all(_int(k, 1) for k in v),
     "must be a list of whole numbers above 0"),
    ("bridge.channels", lambda v: v is None or _int(v, 1), "must be null or a whole number above 0"),
    ("bridge.padding", lambda v: isinstance(v, bool), "must be true or false"),
    ("bridge.ctc_dim", lambda v: _int(v, 1), "must be a whole number above 0"),
    ("bridge.ctc_layers", _int, "must be a whole number >= 0"),
    ("bridge.ctc_heads", lambda v: _int(v, 1), "must be a whole number above 0"),
    ("bridge.ctc_token_ids", lambda v: v is None or (isinstance(v, list) and all(_int(t) for t in v)),
     "must be null or a list of token ids"),
    ("bridge.ctc_projection", lambda v: v in ("linear", "posterior"), "must be linear or posterior"),
    ("bridge.ctc_loss_weight", lambda v: _num(v) and v >= 0, "must be a number >= 0"),
    ("prompt.prefix", _text, "must be a string"),
    ("prompt.separator", _text, "must be a string"),
    ("prompt.add_bos", lambda v: isinstance(v, bool), "must be true or false"),
    ("prompt.hints_template", _text, "must be a string"),
    ("prompt.max_hint_terms", _int, "must be a whole number >= 0"),
    ("decode.tokens_per_second", lambda v: _num(v) and v > 0, "must be a number above 0"),
    ("decode.extra_tokens", _int, "must be a whole number >= 0"),
    ("decode.min_new_tokens", _int, "must be a whole number >= 0"),
    ("decode.beam_size", lambda v: _int(v, 1) and v <= MAX_BEAM, f"must be a whole number from 1 to {MAX_BEAM}"),
    ("decode.length_penalty", _num, "must be a number"),
    ("decode.max_repeats", lambda v: _int(v, 2), "must be a whole number >= 2"),
    ("decode.ctc_weight", lambda v: _num(v) and v >= 0, "must be a number >= 0"),
    ("decode.ctc_blank_penalty", _num, "must be a number"),
    ("decode.unknown_word_penalty", _num, "must be a number"),
    ("decode.word_bonus", _num, "must be a number"),
]
