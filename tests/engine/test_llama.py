"""engine/bridge/llama.py: the plain Llama decodes as transformers' does, from the same files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.bridge.folder import load_model, save_model
from engine.bridge.llama import Llama, llama_dims, load_llama
from engine.decoding.int8 import int8_copy
from engine.decoding.search import CausalLMStep, LogProbScorer, beam_search, greedy
from engine.errors import ModelFolderError
from engine.models.adapters import apply_adapter
from engine.models.registry import model_id
from tests.helpers import tiny_model


def _saved_lm(tmp_path, tied: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(4)
    # rotary base not the default: the config's value must be read
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=120, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tied,
                                      rope_parameters={"rope_type": "default", "rope_theta": 500.0}))
    lm.save_pretrained(tmp_path / "lm")
    return lm.eval(), tmp_path / "lm"


def _padded_batch(d: int, gen: torch.Generator):
    """Two rows, the second left-padded by 3, as SpeechLM.lm_inputs builds them."""
    embeds = torch.randn(2, 9, d, generator=gen)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, :3] = 0
    embeds[1, :3] = 0
    return embeds, mask, (mask.cumsum(-1) - 1).clamp(min=0)


@pytest.mark.parametrize("tied", [True, False])
def test_logits_and_cached_steps_equal_transformers(tmp_path, tied):
    ref, folder = _saved_lm(tmp_path, tied)
    dims = llama_dims(folder)
    assert dims.tied == tied and dims.kv_heads == 1 and dims.heads == 2 and dims.rope_theta == 500.0
    own = load_llama(folder, dims)
    assert (own.lm_head.weight is own.model.embed_tokens.weight) == tied
    gen = torch.Generator().manual_seed(0)
    embeds, mask, positions = _padded_batch(64, gen)
    with torch.no_grad():
        want = ref(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True)
        got = own(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True)
        real = mask.bool()
        assert torch.allclose(got.logits[real], want.logits[real], atol=1e-5)
        ref_cache, own_cache = want.cache, got.cache
        tokens = torch.tensor([[5], [17]])
        for step in range(3):  # a token at a time through each one's cache
            mask = torch.cat([mask, mask.new_ones(2, 1)], dim=1)
            pos = positions[:, -1:] + 1 + step
            w = ref(inputs_embeds=ref.get_input_embeddings()(tokens), attention_mask=mask, position_ids=pos,
                    cache=ref_cache, use_cache=True)
            g = own(inputs_embeds=own.get_input_embeddings()(tokens), attention_mask=mask, position_ids=pos,
                    cache=own_cache, use_cache=True)
            ref_cache, own_cache = w.cache, g.cache
            assert torch.allclose(g.logits, w.logits, atol=1e-5)
            tokens = w.logits[:, -1].argmax(-1, keepdim=True)


def test_greedy_beam_and_int8_decode_the_same_tokens(tmp_path):
    """Through the search code as the backend runs it, fp32 and int8: the same tokens as
    transformers' LM; beams reorder the plain cache as they reorder transformers'."""
    model = tiny_model("hubert", "ctc", "llama", seed=2)
    folder = save_model(model, tmp_path / "model")
    ref, own = load_model(folder), load_model(folder, plain_lm=True)
    assert isinstance(own.lm, Llama) and not isinstance(ref.lm, Llama)
    gen = torch.Generator().manual_seed(1)
    speech = [torch.randn(n, 32, generator=gen) for n in (7, 11)]
    eos = ref.tokenizer.eos_token_id
    for a, b in ((ref.lm, own.lm), (int8_copy(ref.lm), int8_copy(own.lm))):
        inputs, _ = ref.lm_inputs(speech)
        want = greedy(CausalLMStep(a, inputs), [20, 20], eos)
        got = greedy(CausalLMStep(b, own.lm_inputs(speech)[0]), [20, 20], eos)
        assert [x.tokens for x in got] == [x.tokens for x in want] and len(got[0].tokens) > 3
        assert np.allclose(got[0].logprobs, want[0].logprobs, atol=1e-4)
        one, _ = ref.lm_inputs(speech[1:])
        beam_want = beam_search(CausalLMStep(a, one), 15, 3, LogProbScorer(eos, 1.0))
        beam_got = beam_search(CausalLMStep(b, own.lm_inputs(speech[1:])[0]), 15, 3, LogProbScorer(eos, 1.0))
        assert beam_got.tokens == beam_want.tokens


def _adapter(folder, out):
    """A peft LoRA adapter for the model in `folder`, its B matrices random (not zero), and the
    transformers LM it was made on."""
    from peft import LoraConfig, get_peft_model

    peft_lm = get_peft_model(load_model(folder).lm, LoraConfig(r=4, lora_alpha=8, task_type="CAUSAL_LM",
                                                               target_modules=["q_proj", "v_proj", "down_proj"]))
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in peft_lm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    peft_lm.save_pretrained(out)
    (out / "steno_adapter.json").write_text(json.dumps({"base_model_id": model_id(folder), "target": "lm"}))
    return out, peft_lm.eval()


def test_a_lora_adapter_is_merged_as_peft_applies_it(tmp_path):
    folder = save_model(tiny_model("hubert", "conv", "llama", seed=6), tmp_path / "model")
    adapter, peft_lm = _adapter(folder, tmp_path / "adapter")
    own = load_model(folder, plain_lm=True)
    base = own.lm
    apply_adapter(own, adapter, model_id(folder))
    assert isinstance(own.lm, Llama) and own.lm is not base
    embeds = torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = peft_lm(inputs_embeds=embeds).logits
        with peft_lm.disable_adapter():
            plain = peft_lm(inputs_embeds=embeds).logits
        assert torch.allclose(own.lm(inputs_embeds=embeds).logits, want, atol=1e-4)
        assert not torch.allclose(want, plain, atol=1e-2)  # the adapter changes the output
        assert torch.allclose(base(inputs_embeds=embeds).logits, plain, atol=1e-5)  # the base LM is untouched
    assert own.lm.model.embed_tokens.weight.data_ptr() == base.model.embed_tokens.weight.data_ptr()  # not copied


def test_the_backend_swaps_adapters_and_back_without_peft(tmp_path):
    import sys

    from engine.transcriber import Transcriber

    folder = save_model(tiny_model("whisper", "ctc", "llama", seed=6), tmp_path / "model")
    adapter, _ = _adapter(folder, tmp_path / "adapter")
    audio = (np.random.default_rng(1).standard_normal(32000) * 0.1).astype(np.float32)
    tr = Transcriber(folder, device="cpu")
    backend = tr.backend

    def tokens():
        return backend.transcribe_batch([audio], hints=None, beam_size=1, timing=tr.timing)[0].tokens

    base_tokens, base_lm = tokens(), backend.model.lm
    tr.set_adapter(adapter)
    assert isinstance(backend.model.lm, Llama) and backend.model.lm is not base_lm
    with_adapter = tokens()
    tr.set_adapter(None)
    assert backend.model.lm is base_lm and tokens() == base_tokens
    assert with_adapter != base_tokens
    assert "peft" not in sys.modules or not isinstance(backend.model.lm, sys.modules["peft"].PeftModel)


def test_other_lms_and_bad_weights(tmp_path):
    gpt2 = save_model(tiny_model("hubert", "conv", "gpt2"), tmp_path / "gpt2")
    assert llama_dims(gpt2 / "lm") is None
    assert not isinstance(load_model(gpt2, plain_lm=True).lm, Llama)  # read by transformers
    _, folder = _saved_lm(tmp_path, tied=True)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "intermediate_size": 100}))
    with pytest.raises(ModelFolderError, match="do not fit its config.json"):
        load_llama(folder, llama_dims(folder))
    (folder / "config.json").write_text(json.dumps({**config, "rope_scaling": {"rope_type": "yarn", "factor": 2.0},
                                                    "rope_parameters": None}))
    assert llama_dims(folder) is None


def test_the_plain_tokenizer_gives_transformers_ids_and_text(tmp_path):
    from engine.bridge.tokenizer import PlainTokenizer, plain_tokenizer

    folder = save_model(tiny_model("hubert", "conv", "llama"), tmp_path / "model")
    ref, own = load_model(folder).tokenizer, load_model(folder, plain_lm=True).tokenizer
    assert isinstance(own, PlainTokenizer) and not isinstance(ref, PlainTokenizer)
    assert (len(own), own.bos_token_id, own.eos_token_id) == (len(ref), ref.bos_token_id, ref.eos_token_id)
    rng = np.random.default_rng(0)
    for ids in [[i] for i in range(len(ref))] + [rng.integers(0, len(ref), 12).tolist() for _ in range(200)]:
        for skip in (False, True):
            assert own.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip)
    for text in ("hello world this is a test", " Xarelto 5 mg, BP 120/80.", "", "  two  spaces [SEP] </s>"):
        assert own.encode(text, add_special_tokens=False) == ref.encode(text, add_special_tokens=False)
    assert plain_tokenizer(folder / "lm", {"use_fast": False}) is None  # loading arguments: transformers reads it


def test_the_bridge_lm_decodes_on_one_torch_thread_on_a_cpu(tmp_path, monkeypatch):
    import engine.bridge.backend as bb
    from engine.transcriber import Transcriber

    tr = Transcriber(save_model(tiny_model("hubert", "conv", "llama"), tmp_path / "m"), device="cpu")
    seen, real = [], bb.greedy
    monkeypatch.setattr(bb, "greedy", lambda *a, **kw: seen.append(torch.get_num_threads()) or real(*a, **kw))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        tr.backend.transcribe_batch([np.zeros(16000, np.float32)], hints=None, beam_size=1, timing=tr.timing)
        assert seen == [1] and torch.get_num_threads() == 2  # restored after decoding
    finally:
        torch.set_num_threads(before)
