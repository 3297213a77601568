"""bench/ablation.py on tiny random models: rows have their fields, parameter counts order as they should."""

from __future__ import annotations

import json

import torch

from bench.ablation import (
    Budget,
    Setup,
    Spec,
    _align,
    build_model,
    markdown_table,
    model_frames,
    run_all,
    run_config,
    train,
    whisper_top,
)
from engine.models.config import BridgeConfig, PromptConfig
from tests.helpers import CORPUS, tiny_lm, tiny_tokenizer

DIM = 16


def _setup() -> Setup:
    tok = tiny_tokenizer()
    ids = sorted({i for t in CORPUS for i in tok.encode(t, add_special_tokens=False)})

    def make_lm():
        torch.manual_seed(1)
        return tiny_lm("llama", len(tok)), tiny_tokenizer()

    return Setup(make_lm=make_lm, conv=BridgeConfig(kind="conv", kernel_sizes=[4, 4], strides=[2, 2], channels=16),
                 ctc=BridgeConfig(kind="ctc", kernel_sizes=[3], strides=[2], ctc_dim=16, ctc_layers=1, ctc_heads=2,
                                  ctc_token_ids=ids, ctc_projection="posterior"),
                 prompt=PromptConfig(prefix="", separator="[SEP]"))


def _items(n: int, seed: int) -> list[tuple[torch.Tensor, str]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(40 + 10 * (i % 3), DIM, generator=g).half(), CORPUS[i % len(CORPUS)]) for i in range(n)]


def test_rows_and_parameter_counts(tmp_path):
    setup, budget = _setup(), Budget(minutes=0, samples=4, batch_size=2)
    train, synth, real = _items(6, 0), _items(3, 1), _items(2, 2)
    specs = [Spec("conv only", "conv", "bridge"), Spec("ctc lora", "ctc", "lora", 0.3)]
    out = tmp_path / "results.jsonl"
    rows = run_all(specs, setup, train, synth, real, budget, out, log=lambda m: None)
    assert [r["name"] for r in rows] == ["conv only", "ctc lora"]
    for r in rows:
        for key in ("trainable_params", "train_samples", "train_samples_per_s", "synth_wer", "synth_cer", "real_wer",
                    "real_cer", "synth_rtf", "synth_positions_per_s", "final_loss"):
            assert key in r, key
        assert r["train_samples"] == 4
    assert rows[0]["conv_positions_per_s_by_stride"] == 12.5
    assert rows[0]["lm_trainable_params"] == 0 and rows[1]["lm_trainable_params"] > 0
    assert "ctc_clips_shorter_than_tokens" in rows[1] and "ctc_examples" in rows[1]
    assert len(out.read_text().splitlines()) == 2
    # resumable: a second run trains nothing and returns the same rows
    said: list[str] = []
    again = run_all(specs, setup, train, synth, real, budget, out, log=said.append)
    assert not [m for m in said if m.endswith(": start")]
    assert [json.dumps(r) for r in again] == [json.dumps(r) for r in rows]
    assert "conv only" in markdown_table(rows)


def test_trainable_counts_order():
    setup = _setup()
    counts = {}
    for mode in ("bridge", "lora", "full"):
        _, bridge, lm, encoder = build_model(Spec(mode, "conv", mode), setup, DIM, 0)
        assert encoder == []
        counts[mode] = (sum(p.numel() for p in bridge), sum(p.numel() for p in lm))
    assert counts["bridge"][0] == counts["lora"][0] == counts["full"][0]
    assert counts["bridge"][1] == 0 < counts["lora"][1] < counts["full"][1]
    lm, _ = setup.make_lm()
    assert counts["full"][1] == sum(p.numel() for p in lm.parameters())


def test_full_lm_row_trains_lm(tmp_path):
    row = run_config(Spec("ctc full", "ctc", "full", 0.0), _setup(), _items(4, 0), _items(2, 1), [],
                     Budget(minutes=0, samples=2, batch_size=2), log=lambda m: None)
    assert row["lm_trainable_params"] > row["bridge_params"] > 0
    assert "real_wer" not in row and row["ctc_weight"] == 0.0


def test_align():
    assert _align([1, 2, 3, 4], [1, 3, 4]) == [("ok", 1, 1), ("del", 2, None), ("ok", 3, 3), ("ok", 4, 4)]
    assert [o for o, _, _ in _align([1, 2], [1, 5, 2])] == ["ok", "ins", "ok"]


def test_shipped_reference_row_trains_nothing(tmp_path):
    from peft import LoraConfig, get_peft_model

    setup = _setup()
    lm, _ = setup.make_lm()
    get_peft_model(lm, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")).save_pretrained(
        tmp_path / "lora")
    setup.shipped_lora = tmp_path / "lora"
    row = run_config(Spec("ref", "ctc", "shipped", 0.3), setup, _items(4, 0), _items(2, 1), [],
                     Budget(minutes=0, samples=2, batch_size=2), log=lambda m: None)
    assert row["trainable_params"] == 0 and row["train_samples"] == 0 and "synth_wer" in row


def _tiny_whisper_encoder():
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(3)
    return WhisperEncoder(WhisperConfig(d_model=DIM, encoder_layers=3, encoder_attention_heads=2, encoder_ffn_dim=32,
                                        num_mel_bins=80, max_source_positions=100)).eval()


def test_encoder_top_equals_the_frozen_encoder_and_trains():
    """The top-blocks row starts from exactly the encoder's own output, then only its copy learns."""
    from engine.whisper.encoder import whisper_forward

    encoder = _tiny_whisper_encoder()
    setup = _setup()
    setup.encoder_top = lambda k: whisper_top(encoder, k)
    mel = torch.randn(1, 80, 60)
    with torch.no_grad():
        below, final = whisper_forward(encoder, mel, 2)[0], whisper_forward(encoder, mel, None)[0]
    spec = Spec("conv lora top", "conv", "lora", 0.0, 1)
    model, bridge, lm, enc = build_model(spec, setup, DIM, 0)
    with torch.no_grad():
        assert torch.allclose(model_frames(model, below), final, atol=1e-5)
    assert sum(p.numel() for p in enc) == sum(p.numel() for p in encoder.layers[2].parameters()) + \
        sum(p.numel() for p in encoder.layer_norm.parameters())
    before = [p.detach().clone() for p in enc]
    untouched = [p.detach().clone() for p in encoder.parameters()]
    items = [(below.half(), "hello world")] * 4
    train(model, bridge, lm, items, Budget(minutes=0, samples=4, batch_size=2, lm_lr=1e-2), spec, lambda m: None, enc)
    assert any(not torch.equal(a, b) for a, b in zip(before, enc))
    assert all(torch.equal(a, b) for a, b in zip(untouched, encoder.parameters()))


def test_encoder_rows_read_the_lower_frames(tmp_path):
    encoder = _tiny_whisper_encoder()
    setup = _setup()
    setup.encoder_top = lambda k: whisper_top(encoder, k)
    asked: list[int] = []

    def lower(k):
        asked.append(k)
        return _items(4, 5), _items(2, 6), []

    specs = [Spec("ctc lora", "ctc", "lora", 0.3), Spec("ctc lora top 2", "ctc", "lora", 0.3, 2)]
    rows = run_all(specs, setup, _items(4, 0), _items(2, 1), [], Budget(minutes=0, samples=2, batch_size=2),
                   tmp_path / "r.jsonl", log=lambda m: None, lower=lower)
    assert asked == [2]
    assert rows[0]["encoder_trainable_params"] == 0 < rows[1]["encoder_trainable_params"]
    assert rows[1]["trainable_params"] == rows[0]["trainable_params"] + rows[1]["encoder_trainable_params"]
    assert "ctc lora top 2" in markdown_table(rows)


def test_speed_alone_is_written_into_the_rows(tmp_path):
    from bench.ablation import measure_speed, read_rows

    setup, budget = _setup(), Budget(minutes=0, samples=2, batch_size=2)
    specs = [Spec("conv only", "conv", "bridge"), Spec("ctc lora", "ctc", "lora", 0.3)]
    out = tmp_path / "results.jsonl"
    run_all(specs, setup, _items(4, 0), _items(2, 1), [], budget, out, log=lambda m: None)
    assert "alone_samples_per_s" not in read_rows(out)[0]
    measure_speed(specs, setup, _items(4, 0), budget, 2, out, log=lambda m: None)
    rows = read_rows(out)
    assert [r["name"] for r in rows] == ["conv only", "ctc lora"]
    assert all(r["alone_samples_per_s"] > 0 for r in rows)
    assert f"{rows[0]['alone_samples_per_s']:.2f} ({rows[0]['train_samples_per_s']:.2f})" in markdown_table(rows)
