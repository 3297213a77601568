"""engine/decoding/int8.py: int8 copies for CPU decoding share what they can and carry LoRA adapters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.decoding.int8 import choose_precision, decoding_model, int8_copy
from tests.helpers import tiny_lm


def _lm():
    torch.manual_seed(0)
    return tiny_lm("llama", 120, dim=64).eval()


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_int8_copy_is_close_shares_embeddings_and_leaves_the_model_alone():
    lm = _lm()
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(1))
    exact = _logits(lm, ids)
    q = int8_copy(lm)
    linears = [m for m in q.modules() if isinstance(m, nn.Linear)]
    assert not linears  # every Linear became an int8 one
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in q.modules())
    assert q.get_input_embeddings().weight is lm.get_input_embeddings().weight  # shared, not copied
    assert all(isinstance(m, nn.Linear) for n, m in lm.named_modules() if n.endswith("q_proj"))  # original intact
    got = _logits(q, ids)
    assert not torch.equal(got, exact)
    assert (got - exact).abs().max() < 0.05 * exact.abs().max()
    assert (got.argmax(-1) == exact.argmax(-1)).float().mean() > 0.9
    assert torch.equal(_logits(lm, ids), exact)


def test_int8_copy_merges_the_active_lora():
    from peft import LoraConfig, get_peft_model

    lm = _lm()
    ids = torch.randint(0, 120, (1, 10), generator=torch.Generator().manual_seed(2))
    plain = _logits(int8_copy(lm), ids)
    peft_lm = get_peft_model(lm, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in peft_lm.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.3)
    peft_lm.eval()
    expected = _logits(peft_lm, ids)
    got = _logits(int8_copy(peft_lm), ids)
    assert (got - expected).abs().max() < 0.1 * expected.abs().max()  # int8 noise
    assert (got - expected).abs().max() < 0.25 * (plain - expected).abs().max()  # far less than the LoRA's effect
    with peft_lm.disable_adapter():
        assert torch.allclose(_logits(int8_copy(peft_lm), ids), plain, atol=1e-3)
    assert decoding_model(peft_lm, "fp32") is peft_lm.get_base_model()


def test_choose_precision():
    assert choose_precision(None, "cpu") == "int8"
    assert choose_precision(None, "cuda") == "fp32"
    assert choose_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="CPU only"):
        choose_precision("int8", "cuda")
    with pytest.raises(ValueError, match="one of"):
        choose_precision("int4", "cpu")


def test_gpt2_conv1d_layers_are_quantised_with_their_lora():
    """GPT-2 stores its linear layers transposed (Conv1D); the int8 copy reads them right."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    lm = tiny_lm("gpt2", 120, dim=64)
    ids = torch.randint(0, 120, (1, 9), generator=torch.Generator().manual_seed(4))
    q = int8_copy(lm)
    assert not [m for m in q.modules() if type(m).__name__ == "Conv1D"]
    exact = _logits(lm, ids)
    assert (_logits(q, ids) - exact).abs().max() < 0.05 * exact.abs().max()
    peft_lm = get_peft_model(lm, LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True))
    torch.manual_seed(5)
    with torch.no_grad():
        for name, p in peft_lm.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.3)
    expected = _logits(peft_lm.eval(), ids)
    got = _logits(int8_copy(peft_lm), ids)
    assert (got - expected).abs().max() < 0.1 * expected.abs().max()
    assert (got - expected).abs().max() < 0.25 * (expected - exact).abs().max()


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_int8_layers_are_kept_and_read_back_into_the_fp32_model(tmp_path, kind):
    """The kept copy holds only the int8 layers; read back into the fp32 model (the rest
    shared with it) it decodes exactly as the copy quantised now. Other weights: None."""
    from engine.decoding.int8 import load_int8, save_int8

    torch.manual_seed(0)
    lm = tiny_lm(kind, 120, dim=64).eval()
    ids = torch.randint(0, 120, (2, 12), generator=torch.Generator().manual_seed(1))
    made = int8_copy(lm)
    save_int8(made, tmp_path / "lm.int8.pt", "fp-1", linear_only=True)
    kept = load_int8(lm, tmp_path / "lm.int8.pt", "fp-1")
    assert torch.equal(_logits(kept, ids), _logits(made, ids))
    assert kept.get_input_embeddings().weight is lm.get_input_embeddings().weight  # shared, not read again
    assert load_int8(lm, tmp_path / "lm.int8.pt", "fp-2") is None  # made from other weights
    (tmp_path / "lm.int8.pt").write_bytes(b"not a checkpoint")
    assert load_int8(lm, tmp_path / "lm.int8.pt", "fp-1") is None  # damaged


def test_a_bridge_model_reads_its_kept_int8_lm_at_the_next_start(tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    import engine.bridge.backend as bb
    from engine.models.config import ModelConfig

    folder = shutil.copytree(tiny_model_dir, tmp_path / "m")
    first = bb.BridgeBackend(folder, ModelConfig.load(folder), "cpu")
    assert first.decoder_precision == "int8" and (folder / bb.INT8_CACHE).is_file()
    monkeypatch.setattr(bb, "decoding_model", lambda *a: pytest.fail("quantised again at start"))
    again = bb.BridgeBackend(folder, ModelConfig.load(folder), "cpu")
    ids = torch.randint(0, 50, (1, 8), generator=torch.Generator().manual_seed(2))
    assert torch.equal(_logits(again.decoding_lm, ids), _logits(first.decoding_lm, ids))
