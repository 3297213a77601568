"""ONNX Runtime must give the same bridge output as PyTorch, and the cache must stay fresh."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from engine.bridge.encoder import encoder_inputs
from engine.bridge.export import ensure_onnx, export_onnx
from engine.bridge.folder import load_model, save_model
from engine.graph import ONNX_META, ONNX_NAME
from engine.runtime import create_session, run_session
from tests.helpers import tiny_model


@pytest.mark.parametrize("enc,bridge", [("hubert", "conv"), ("hubert", "ctc"), ("whisper", "conv"),
                                        ("whisper", "ctc")])
def test_onnx_matches_pytorch_on_several_lengths(tmp_path, enc, bridge):
    m = tiny_model(enc, bridge, "gpt2", ctc_projection="posterior") if bridge == "ctc" else tiny_model(enc, bridge)
    session, device = create_session(export_onnx(m, tmp_path / "g.onnx"), "cpu")
    assert device == "cpu"
    rng = np.random.default_rng(1)
    for seconds in (0.7, 3.0, 11.3):  # none of them the export example's length
        audio = (rng.standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32)
        x = encoder_inputs(m.config.encoder, audio)
        with torch.no_grad():
            expected = m.speech_embeddings(torch.from_numpy(x)).numpy()
        got = run_session(session, x)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-3


def test_onnx_graph_is_cached_and_rebuilt_when_weights_change(tmp_path):
    folder = save_model(tiny_model("hubert", "conv"), tmp_path / "m")
    model = load_model(folder)
    path = ensure_onnx(model, folder)
    first = json.loads((folder / ONNX_META).read_text())["fingerprint"]
    mtime = path.stat().st_mtime_ns
    assert ensure_onnx(load_model(folder), folder).stat().st_mtime_ns == mtime  # reused, not re-exported

    with torch.no_grad():
        model.bridge.proj.weight.add_(0.5)
    save_file({k: v.contiguous() for k, v in model.bridge.state_dict().items()}, folder / "bridge.safetensors")
    reloaded = load_model(folder)
    ensure_onnx(reloaded, folder)
    assert json.loads((folder / ONNX_META).read_text())["fingerprint"] != first
    x = encoder_inputs(reloaded.config.encoder, (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32))
    session, _ = create_session(folder / ONNX_NAME, "cpu")
    with torch.no_grad():
        expected = reloaded.speech_embeddings(torch.from_numpy(x)).numpy()
    assert np.abs(run_session(session, x) - expected).max() < 1e-3


def test_auto_device_falls_back_to_cpu_and_says_so(tmp_path, caplog, monkeypatch):
    import onnxruntime as ort

    import engine.runtime

    monkeypatch.setattr(engine.runtime, "_cuda_notice_said", False)  # said once per process: maybe already

    path = export_onnx(tiny_model("hubert", "conv"), tmp_path / "g.onnx")
    session, device = create_session(path, "auto")
    assert device == ("cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu")
    if device == "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
        assert any("running on CPU" in r.message for r in caplog.records)


@pytest.mark.parametrize("enc", ["wav2vec2", "wavlm"])
def test_other_hubert_family_encoders_export_and_round_trip(tmp_path, enc):
    m = tiny_model(enc, "conv", "gpt2")
    folder = save_model(m, tmp_path / "m")
    loaded = load_model(folder)
    session, _ = create_session(ensure_onnx(loaded, folder), "cpu")
    audio = (np.random.default_rng(2).standard_normal(16000 * 2) * 0.1).astype(np.float32)
    x = encoder_inputs(loaded.config.encoder, audio)
    with torch.no_grad():
        expected = m.speech_embeddings(torch.from_numpy(x)).numpy()
    assert np.abs(run_session(session, x) - expected).max() < 1e-3


def test_a_ctc_graph_from_before_its_second_output_is_exported_again(tmp_path):
    """Graphs made before a ctc bridge's graph returned its CTC log-probabilities recorded no
    output names: same weights, but the graph is stale and is made again."""
    model = tiny_model("hubert", "ctc", "gpt2")
    folder = save_model(model, tmp_path / "m")
    path = ensure_onnx(model, folder)
    assert len(create_session(path, "cpu")[0].get_outputs()) == 2
    meta = json.loads((folder / ONNX_META).read_text())
    assert meta["outputs"] == ["embeddings", "ctc_logprobs"]
    stamp = path.stat().st_mtime_ns
    assert ensure_onnx(model, folder).stat().st_mtime_ns == stamp  # fresh: not made again
    from engine.bridge.export import EncoderBridgeGraph, _example_input, _time_axis
    from engine.graph import export_graph

    class EmbeddingsOnly(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.graph = EncoderBridgeGraph(m)

        def forward(self, x):
            return self.graph(x)[0]

    export_graph(EmbeddingsOnly(model), _example_input(model), path, _time_axis(model))  # the old graph
    del meta["outputs"]
    (folder / ONNX_META).write_text(json.dumps(meta))
    assert len(create_session(path, "cpu")[0].get_outputs()) == 1
    ensure_onnx(model, folder)
    assert len(create_session(path, "cpu")[0].get_outputs()) == 2
    assert json.loads((folder / ONNX_META).read_text())["outputs"] == ["embeddings", "ctc_logprobs"]


def test_a_backend_checks_its_graph_by_the_files_it_was_made_from_without_the_torch_encoder(tmp_path, monkeypatch):
    """The first start checks the graph by its fingerprint (loading the speech encoder) and
    notes the files; the next ones load no encoder and give the same output; changed bridge
    weights are caught by the files' sizes and times and exported again."""
    from engine.bridge.backend import BridgeBackend
    from engine.bridge.export import fresh_graph
    from engine.bridge.folder import load_model as real_load_model

    folder = save_model(tiny_model("whisper", "ctc", "gpt2", ctc_projection="posterior"), tmp_path / "m")
    config = load_model(folder).config
    audio = (np.random.default_rng(2).standard_normal(24000) * 0.1).astype(np.float32)
    first = BridgeBackend(folder, config, "cpu")
    assert first.model.encoder is None and fresh_graph(folder) == folder / ONNX_NAME
    expected = first.speech_outputs(audio)

    loads = []
    monkeypatch.setattr("engine.bridge.backend.load_model",
                        lambda f, speech=True, **kw: loads.append(speech) or real_load_model(f, speech=speech, **kw))
    second = BridgeBackend(folder, config, "cpu")
    assert loads == [False]
    for got, want in zip(second.speech_outputs(audio), expected):
        assert np.array_equal(got, want)

    model = load_model(folder)
    with torch.no_grad():
        model.bridge.proj.weight.add_(0.5)
    save_file({k: v.contiguous() for k, v in model.bridge.state_dict().items()}, folder / "bridge.safetensors")
    assert fresh_graph(folder) is None
    third = BridgeBackend(folder, config, "cpu")
    assert loads == [False, True]
    with torch.no_grad():
        want = model.speech_embeddings(torch.from_numpy(encoder_inputs(config.encoder, audio))).numpy()[0]
    assert np.abs(third.speech_outputs(audio)[0] - want).max() < 1e-3


def test_the_base_bridge_is_read_again_from_its_file_after_an_adapters_own(tmp_path):
    from engine.bridge.backend import BridgeBackend

    folder = save_model(tiny_model("hubert", "conv"), tmp_path / "m")
    backend = BridgeBackend(folder, load_model(folder).config, "cpu")
    audio = (np.random.default_rng(3).standard_normal(16000) * 0.1).astype(np.float32)
    expected = backend.speech_outputs(audio)[0]
    with torch.no_grad():  # as an adapter's own bridge leaves it
        backend.model.bridge.proj.weight.add_(0.5)
    backend._bridge_swapped = True
    backend.set_adapter(None, "base")
    assert torch.equal(backend.model.bridge.proj.weight, load_model(folder).bridge.proj.weight)
    assert np.abs(backend.speech_outputs(audio)[0] - expected).max() < 1e-5
