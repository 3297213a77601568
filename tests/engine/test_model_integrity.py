"""Damaged model folders, graphs, adapters and configs: one line naming the file, never a
traceback or a silently wrong transcript; `steno setup` and the graph cache repair them."""

import json
import os
import shutil

import numpy as np
import pytest

from app.cli import main
from engine.bridge.export import ensure_onnx
from engine.bridge.folder import load_model, save_model
from engine.errors import ModelFolderError, StenoError
from engine.graph import ONNX_META, ONNX_NAME
from engine.models import integrity
from engine.models.adapters import apply_adapter
from engine.models.folder import check_folder
from engine.models.registry import list_models, model_id, models_dir, resolve_model
from engine.models.repair import ensure_graphs
from engine.runtime import create_session, run_session
from tests.helpers import tiny_model


def _copy(src, dest):
    shutil.copytree(src, dest)
    return dest


def _overwrite_middle(path, n=2048):
    """Same size, other bytes: what a bad disk or a stray write leaves."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(b"\x7f" * min(n, size // 4))


def _truncate(path, keep=0.5):
    with open(path, "r+b") as f:
        f.truncate(int(path.stat().st_size * keep))


def _one_line_error(capsys, rc):
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and "Traceback" not in "\n".join(err)
    return err[-1]


# ------------------------------------------------------------------ item 5: adapters


def tiny_adapter(base, out):
    """A real LoRA adapter for the tiny model (peft files plus steno_adapter.json)."""
    from peft import LoraConfig, get_peft_model

    lm = get_peft_model(load_model(base).lm, LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"],
                                                        fan_in_fan_out=True))
    lm.save_pretrained(out)
    (out / "steno_adapter.json").write_text(json.dumps({"base_model_id": model_id(base), "target": "lm"}))
    return out


@pytest.mark.parametrize("damage", ["no adapter_config.json", "no adapter_model.safetensors",
                                    "truncated adapter_model.safetensors", "not JSON adapter_config.json"])
def test_an_adapter_without_or_with_damaged_lora_files_is_refused(tiny_model_dir, tmp_path, damage):
    from peft import PeftModel

    adapter = tiny_adapter(tiny_model_dir, tmp_path / "adapter")
    model = load_model(tiny_model_dir)
    apply_adapter(model, adapter, model_id(tiny_model_dir))  # whole: applied
    assert isinstance(model.lm, PeftModel)
    if damage == "no adapter_config.json":
        (adapter / "adapter_config.json").unlink()
    elif damage == "no adapter_model.safetensors":
        (adapter / "adapter_model.safetensors").unlink()
    elif damage == "truncated adapter_model.safetensors":
        _truncate(adapter / "adapter_model.safetensors")
    else:
        (adapter / "adapter_config.json").write_text("{not json")
    model = load_model(tiny_model_dir)
    with pytest.raises(StenoError) as e:
        apply_adapter(model, adapter, model_id(tiny_model_dir))
    assert str(adapter) in str(e.value) and "\n" not in str(e.value)
    assert damage.split()[-1] in str(e.value)
    assert not isinstance(model.lm, PeftModel)  # refused before the model was touched


@pytest.mark.parametrize("key,value", [("target", "encoder"), ("base_model_id", 7)])
def test_bad_adapter_metadata_values_are_refused_naming_file_and_key(tiny_model_dir, tmp_path, key, value):
    adapter = tiny_adapter(tiny_model_dir, tmp_path / "adapter")
    meta = json.loads((adapter / "steno_adapter.json").read_text())
    meta[key] = value
    (adapter / "steno_adapter.json").write_text(json.dumps(meta))
    with pytest.raises(StenoError) as e:
        apply_adapter(load_model(tiny_model_dir), adapter, model_id(tiny_model_dir))
    assert str(adapter / "steno_adapter.json") in str(e.value) and key in str(e.value)


def test_transcribe_with_an_adapter_missing_its_lora_settings_fails_in_one_line(tiny_model_dir, tmp_path, tone_wav,
                                                                                   capsys):
    adapter = tiny_adapter(tiny_model_dir, tmp_path / "adapter")
    (adapter / "adapter_config.json").unlink()
    out = tmp_path / "out.txt"
    rc = main(["transcribe", str(tone_wav), "--model", str(tiny_model_dir), "--adapter", str(adapter), "-q",
               "--device", "cpu", "-o", str(out)])
    line = _one_line_error(capsys, rc)
    assert "adapter_config.json" in line and str(adapter) in line
    assert not out.exists()


# ------------------------------------------------------------------ item 6: weights that are not what was installed


def test_same_size_overwrite_of_installed_weights_is_found(tiny_model_dir, tmp_path):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    integrity.record_files(folder)  # what `steno setup` does when it installs a model
    check_folder(folder)
    weights = folder / "lm" / "model.safetensors"
    size = weights.stat().st_size
    _overwrite_middle(weights)
    assert weights.stat().st_size == size
    with pytest.raises(ModelFolderError, match="sha256") as e:
        check_folder(folder)
    assert str(weights) in str(e.value) and "\n" not in str(e.value)
    from engine.transcriber import Transcriber

    with pytest.raises(ModelFolderError, match="lm/model.safetensors"):
        Transcriber(folder, device="cpu")


def test_a_load_hashes_only_files_whose_time_changed(tiny_model_dir, tmp_path, monkeypatch):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    integrity.record_files(folder)
    hashed = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: hashed.append(p) or real(p))
    check_folder(folder)
    assert hashed == []  # sizes and times match: nothing read
    weights = folder / "lm" / "model.safetensors"
    os.utime(weights, ns=(1, 1))  # same bytes, new time (a copy without -p)
    check_folder(folder)
    assert hashed == [weights]
    check_folder(folder)
    assert hashed == [weights]  # the new time was recorded: hashed once, not on every load


def test_models_lists_a_model_with_an_empty_weights_file_as_damaged(tiny_model_dir):
    folder = _copy(tiny_model_dir, models_dir() / "tiny")
    (folder / "lm" / "model.safetensors").write_bytes(b"")
    [info] = list_models()
    assert info.problem and "lm/model.safetensors" in info.problem and "empty" in info.problem
    with pytest.raises(ModelFolderError, match="empty"):
        resolve_model(None)  # never picked as if it worked


def test_models_list_in_full_finds_damage_that_kept_size_and_time(tiny_model_dir):
    folder = _copy(tiny_model_dir, models_dir() / "tiny")
    integrity.record_files(folder)
    weights = folder / "lm" / "model.safetensors"
    stat = weights.stat()
    _overwrite_middle(weights)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # bit rot: the same size and time
    assert list_models()[0].problem is None  # a load reads no file whose stamp holds
    assert "sha256" in list_models(full=True)[0].problem


def test_setup_finds_and_repairs_damaged_weights_and_graphs(real_tiny_en, tmp_path):
    from engine.models.whisper_install import install_whisper_model, is_installed
    from engine.transcriber import Transcriber
    from engine.whisper.encoder import GRAPH_INT8_NAME, ensure_encoder_onnx

    folder = _copy(real_tiny_en, tmp_path / "models" / "whisper-tiny.en")  # times kept: as installed
    assert integrity.has_manifest(folder)
    weights = folder / "whisper" / "model.safetensors"
    _overwrite_middle(weights, 2 << 20)
    assert not is_installed(folder)
    with pytest.raises(ModelFolderError, match="steno setup"):
        Transcriber(folder, device="cpu")
    said = []
    install_whisper_model("whisper-tiny.en", folder.parent, say=said.append)
    assert any("damaged" in m and "installing it again" in m for m in said)
    assert is_installed(folder)

    ensure_encoder_onnx(folder, "int8")
    _truncate(folder / ONNX_NAME)
    _truncate(folder / GRAPH_INT8_NAME)
    said = []
    install_whisper_model("whisper-tiny.en", folder.parent, say=said.append)
    assert any("exported it again" in m for m in said) and any("already installed" in m for m in said)
    for name in (ONNX_NAME, GRAPH_INT8_NAME):
        create_session(folder / name, "cpu")

    (folder / integrity.MANIFEST).unlink()  # installed by an older Steno: setup records one
    install_whisper_model("whisper-tiny.en", folder.parent)
    assert integrity.has_manifest(folder)


# ------------------------------------------------------------------ item 8: damaged exported graphs


@pytest.mark.parametrize("damage", ["truncated", "same size", "truncated, recorded by an older Steno"])
def test_a_damaged_bridge_graph_is_exported_again(tmp_path, damage):
    from engine.graph import graph_intact

    folder = save_model(tiny_model("hubert", "conv"), tmp_path / "m")
    path = ensure_onnx(load_model(folder), folder)
    whole = path.read_bytes()
    expected = run_session(create_session(path, "cpu")[0], np.zeros((1, 16000), np.float32))
    if damage == "same size":
        _overwrite_middle(path, 4096)
    else:
        _truncate(path)
        with pytest.raises(ModelFolderError, match="damaged ONNX graph") as e:
            create_session(path, "cpu")  # one line, not InvalidProtobuf's traceback
        assert str(path) in str(e.value) and "\n" not in str(e.value)
    if "older" in damage:
        meta = json.loads((folder / ONNX_META).read_text())
        (folder / ONNX_META).write_text(json.dumps({k: meta[k] for k in ("fingerprint", "outputs")}))
    assert not graph_intact(path, folder / ONNX_META)
    ensure_onnx(load_model(folder), folder)  # what every load does
    assert path.read_bytes() == whole  # exported again from the same weights
    assert graph_intact(path, folder / ONNX_META)
    got = run_session(create_session(path, "cpu")[0], np.zeros((1, 16000), np.float32))
    assert np.abs(got - expected).max() < 1e-5


def _tiny_whisper_folder(folder):
    """Enough of a Whisper-family folder for its encoder graph: config and weights."""
    import torch
    from transformers import WhisperForConditionalGeneration

    from tests.helpers import tiny_encoder_config

    torch.manual_seed(0)
    WhisperForConditionalGeneration(tiny_encoder_config("whisper")).save_pretrained(folder / "whisper")
    return folder


def test_damaged_whisper_encoder_graphs_are_exported_again(tmp_path):
    from engine.whisper.encoder import GRAPH_INT8_NAME, ensure_encoder_onnx

    folder = _tiny_whisper_folder(tmp_path / "w")
    ensure_encoder_onnx(folder, "int8")
    mel = np.zeros((1, 80, 200), np.float32)
    expected = {n: run_session(create_session(folder / n, "cpu")[0], mel) for n in (ONNX_NAME, GRAPH_INT8_NAME)}
    _truncate(folder / ONNX_NAME)
    _truncate(folder / GRAPH_INT8_NAME, 0.1)
    for name in (ONNX_NAME, GRAPH_INT8_NAME):
        with pytest.raises(ModelFolderError, match="damaged ONNX graph"):
            create_session(folder / name, "cpu")
    assert ensure_encoder_onnx(folder, "int8") == folder / GRAPH_INT8_NAME
    for name in (ONNX_NAME, GRAPH_INT8_NAME):
        got = run_session(create_session(folder / name, "cpu")[0], mel)
        assert np.abs(got - expected[name]).max() < 1e-4


def test_export_onnx_repairs_a_damaged_graph(tmp_path, capsys):
    folder = save_model(tiny_model("hubert", "conv"), tmp_path / "m")
    path = ensure_onnx(load_model(folder), folder)
    _truncate(path)
    assert main(["export-onnx", "--model", str(folder)]) == 0
    create_session(path, "cpu")


def test_ensure_graphs_serves_both_families(tmp_path):
    """What `steno export-onnx` needs to refresh a Whisper-family model's graph too."""
    from engine.models.config import EncoderConfig, ModelConfig
    from engine.models.whisper_install import WHISPER_DECODE

    bridge = save_model(tiny_model("hubert", "conv"), tmp_path / "b")
    whisper = _tiny_whisper_folder(tmp_path / "w")
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        (whisper / "whisper" / name).write_text("{}")
    ModelConfig(family="whisper", encoder=EncoderConfig(kind="whisper"), decode=WHISPER_DECODE).save(whisper)
    for folder in (bridge, whisper):
        path = ensure_graphs(folder)
        _truncate(path)
        assert ensure_graphs(folder) == path
        create_session(path, "cpu")


# ------------------------------------------------------------------ item 9: truncated weights


@pytest.mark.parametrize("part", ["lm/model.safetensors", "encoder/model.safetensors", "bridge.safetensors"])
def test_truncated_weights_are_one_line_naming_the_file(tiny_model_dir, tmp_path, tone_wav, capsys, part):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    _truncate(folder / part)
    with pytest.raises(ModelFolderError) as e:
        load_model(folder)
    assert str(folder / part) in str(e.value) and "truncated" in str(e.value) and "\n" not in str(e.value)
    rc = main(["transcribe", str(tone_wav), "--model", str(folder), "-q", "--device", "cpu",
               "-o", str(tmp_path / "out.txt")])
    assert part in _one_line_error(capsys, rc)


def test_setup_sees_truncated_default_model_weights_as_damage_not_as_installed(tiny_model_dir, tmp_path):
    from engine.models.default_install import install_problem

    folder = _copy(tiny_model_dir, tmp_path / "steno-default-en")
    _truncate(folder / "lm" / "model.safetensors")
    problem = install_problem(folder)
    assert "lm/model.safetensors" in problem and "truncated" in problem


# ------------------------------------------------------------------ item 13: config values


@pytest.mark.parametrize("key,value", [("max_segment_seconds", 0), ("max_segment_seconds", -1),
                                       ("max_segment_seconds", "30"), ("max_segment_seconds", 1e9),
                                       ("sample_rate", 8000), ("decode.beam_size", 0), ("decode.beam_size", True),
                                       ("decode.tokens_per_second", -2), ("encoder.kind", "mfcc"),
                                       ("bridge.strides", [2]), ("prompt.max_hint_terms", -1)])
def test_bad_config_values_are_refused_naming_file_and_key(tiny_model_dir, tmp_path, key, value):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    data = json.loads((folder / "steno.json").read_text())
    *sections, last = key.split(".")
    target = data
    for s in sections:
        target = target[s]
    target[last] = value
    (folder / "steno.json").write_text(json.dumps(data))
    with pytest.raises(ModelFolderError) as e:
        check_folder(folder)
    message = str(e.value)
    assert str(folder / "steno.json") in message and key in message and "\n" not in message


def test_transcribe_with_a_zero_segment_length_config_fails_in_one_line(tiny_model_dir, tmp_path, tone_wav, capsys):
    folder = _copy(tiny_model_dir, tmp_path / "m")
    data = json.loads((folder / "steno.json").read_text())
    data["max_segment_seconds"] = 0
    (folder / "steno.json").write_text(json.dumps(data))
    rc = main(["transcribe", str(tone_wav), "--model", str(folder), "-q", "--device", "cpu",
               "-o", str(tmp_path / "out.txt")])
    assert "max_segment_seconds" in _one_line_error(capsys, rc)


def test_shipped_and_default_configs_pass_validation():
    from engine.models.config import ModelConfig
    from engine.models.default_install import SHIPPED

    ModelConfig().validate()
    if (SHIPPED / "steno.json").is_file():
        ModelConfig.load(SHIPPED)
