"""The bridge model itself: shapes, the loss, CTC compression, save/load."""

import json

import numpy as np
import pytest
import torch

from engine.bridge.bridge import compression_matrix
from engine.bridge.encoder import encoder_inputs
from engine.bridge.folder import load_model, save_model
from engine.errors import ModelFolderError
from engine.models.config import ModelConfig
from tests.helpers import tiny_model

COMBOS = [("hubert", "conv", "gpt2"), ("hubert", "ctc", "llama"), ("whisper", "conv", "llama"),
          ("whisper", "ctc", "gpt2")]


def _clip(seconds=2.0, seed=0):
    return (np.random.default_rng(seed).standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32)


@pytest.mark.parametrize("enc,bridge,lm", COMBOS)
def test_speech_embeddings_have_lm_width_and_expected_length(enc, bridge, lm):
    m = tiny_model(enc, bridge, lm)
    x = torch.from_numpy(encoder_inputs(m.config.encoder, _clip(3.0)))
    with torch.no_grad():
        frames = m.encoder(x)
        out = m.speech_embeddings(x)
    assert frames.shape[1] in (149, 150)  # ~50 frames per second for both encoder families
    assert out.shape[-1] == m.lm.get_input_embeddings().embedding_dim
    if bridge == "conv":
        assert out.shape[1] == m.bridge.output_length(frames.shape[1])
    else:
        assert 1 <= out.shape[1] <= m.bridge.output_length(frames.shape[1])


def test_conv_bridge_total_stride_sets_tokens_per_second():
    for strides, kernels in (([2, 2], [4, 4]), ([2, 2, 2], [4, 4, 4])):
        m = tiny_model("hubert", "conv", "gpt2", strides=strides, kernel_sizes=kernels)
        n = m.bridge.output_length(500)  # 10 s of frames
        assert abs(n - 500 / np.prod(strides)) <= 4


def test_loss_counts_only_transcript_tokens():
    m = tiny_model("hubert", "conv", "gpt2")
    x = torch.from_numpy(encoder_inputs(m.config.encoder, _clip()))
    frames = m.encoder(x)[0].detach()
    text = "hello world"
    targets = m.target_ids(text)
    speech = [m.bridge(frames[None])[0]]
    lm_in, labels = m.lm_inputs(speech, [targets])
    assert (labels != -100).sum().item() == len(targets)
    assert labels[0, -len(targets):].tolist() == targets
    logits = m.lm(inputs_embeds=lm_in.embeds, attention_mask=lm_in.attention_mask,
                  position_ids=lm_in.position_ids).logits[0]
    n = len(targets)
    manual = torch.nn.functional.cross_entropy(logits[-n - 1:-1], torch.tensor(targets))
    assert torch.allclose(m.loss_from_frames([frames], [text])["ce"], manual, atol=1e-5)


def test_ctc_bridge_adds_ctc_loss_and_trains_its_head():
    m = tiny_model("hubert", "ctc", "gpt2").train()
    x = torch.from_numpy(encoder_inputs(m.config.encoder, _clip()))
    out = m.loss([x], ["hello world"])
    assert set(out) == {"ce", "ctc", "loss"}
    assert torch.allclose(out["loss"], out["ce"] + m.config.bridge.ctc_loss_weight * out["ctc"])
    out["loss"].backward()
    assert m.bridge.head.weight.grad is not None and m.bridge.head.weight.grad.abs().sum() > 0


def test_ctc_compression_drops_blanks_and_merges_repeats():
    labels = torch.tensor([0, 5, 5, 0, 3, 3, 3, 0, 5])
    blank = torch.zeros(9)
    a = compression_matrix(labels, blank)
    assert a.shape == (3, 9)
    assert a[0].tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0]
    assert a[1].tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0]
    assert a[2].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1]
    # a repeated label after a blank is a new token (CTC's rule), all-blank keeps one frame
    all_blank = compression_matrix(torch.zeros(4, dtype=torch.long), torch.tensor([3.0, 1.0, 2.0, 5.0]))
    assert all_blank.tolist() == [[0, 1, 0, 0]]


@pytest.mark.parametrize("enc,bridge,lm", COMBOS)
def test_save_load_round_trip_gives_identical_outputs(tmp_path, enc, bridge, lm):
    m = tiny_model(enc, bridge, lm)
    save_model(m, tmp_path / "model")
    m2 = load_model(tmp_path / "model")
    x = torch.from_numpy(encoder_inputs(m.config.encoder, _clip()))
    with torch.no_grad():
        a, b = m.speech_embeddings(x), m2.speech_embeddings(x)
        la = m.loss([x], ["the patient"])["loss"]
        lb = m2.loss([x], ["the patient"])["loss"]
    assert torch.equal(a, b)
    assert torch.allclose(la, lb)
    assert m2.config == m.config
    assert m2.tokenizer.encode("hello world") == m.tokenizer.encode("hello world")


@pytest.mark.parametrize("part", ["steno.json", "bridge.safetensors", "lm/config.json", "encoder/config.json",
                                  "lm/model.safetensors", "lm/tokenizer.json"])
def test_incomplete_model_folder_is_a_clear_error(tiny_model_dir, tmp_path, part):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / part).unlink()
    with pytest.raises(ModelFolderError) as e:
        load_model(broken)
    assert str(broken) in str(e.value)
    assert part.split("/")[0] in str(e.value) or "steno.json" in str(e.value) or "weights" in str(e.value) \
        or "tokenizer" in str(e.value)


def test_model_folder_from_a_newer_version_is_refused(tiny_model_dir, tmp_path):
    import shutil

    newer = tmp_path / "newer"
    shutil.copytree(tiny_model_dir, newer)
    cfg = json.loads((newer / "steno.json").read_text())
    cfg["format_version"] = 99
    (newer / "steno.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFolderError, match="newer Steno"):
        load_model(newer)


def test_corrupt_bridge_weights_are_a_clear_error(tiny_model_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    (bad / "bridge.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFolderError, match="bridge weights"):
        load_model(bad)


def test_config_round_trips_through_json():
    c = ModelConfig()
    assert ModelConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_whisper_log_mel_equals_the_full_30s_computation():
    """Computing only the frames near the audio must give Whisper's own padded features."""
    from transformers import WhisperFeatureExtractor

    from engine.features import whisper_log_mel

    audio = _clip(4.3, seed=5)
    full = WhisperFeatureExtractor(feature_size=80)(audio, sampling_rate=16000, return_tensors="np",
                                                   padding="max_length").input_features[0]
    padded = whisper_log_mel(audio, pad_to_30s=True)
    assert padded.shape == full.shape == (80, 3000)
    assert np.abs(padded - full).max() < 1e-5
    clip = whisper_log_mel(audio)
    assert clip.shape == (80, len(audio) // 160)
    assert np.array_equal(clip, padded[:, : clip.shape[1]])
