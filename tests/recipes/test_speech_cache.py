"""Stage 3 on a frozen bridge: the cached bridge outputs rebuild what the bridge hands the LM,
and LoRA trains from them into a model folder that keeps the shipped bridge."""

import json

import pytest
import torch

from engine.bridge.bridge import CTCBridge
from recipes.shipped import ctc_bridge_config
from recipes.speech_cache import build_cache, load_cache, speech_vectors


def _bridge(token_ids, in_dim=16, lm_dim=24, vocab=64, seed=0):
    torch.manual_seed(seed)
    bridge = CTCBridge(ctc_bridge_config(token_ids, layers=1), in_dim, lm_dim, vocab).eval()
    with torch.no_grad():
        bridge.head.bias[0] = -1.0  # fewer blank frames than a fresh head gives: several runs per clip
    return bridge


def _clips(texts, in_dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(int(torch.randint(30, 70, (1,), generator=g)), in_dim, generator=g).half(), t) for t in texts]


def test_cached_vectors_rebuild_the_bridge_output(tmp_path):
    token_ids = list(range(10, 22))
    bridge = _bridge(token_ids)
    embeddings = torch.randn(64, 24)
    bridge.label_embeddings.copy_(embeddings[token_ids])
    items = _clips(["first clip", "the second, with a comma", "third"])
    build_cache(bridge, items, tmp_path / "all.npz", top_k=len(token_ids), batch_size=2)
    build_cache(bridge, items, tmp_path / "top2.npz", top_k=2)
    cache, top2 = load_cache(tmp_path / "all.npz"), load_cache(tmp_path / "top2.npz")
    assert cache.texts == [t for _, t in items] and cache.token_ids == token_ids
    assert cache.frames == [f.shape[0] for f, _ in items]
    rebuilt, approx = speech_vectors(cache, [2, 0, 1], embeddings), speech_vectors(top2, [2, 0, 1], embeddings)
    with torch.no_grad():
        for got, near, i in zip(rebuilt, approx, [2, 0, 1]):
            want = bridge(items[i][0].float()[None])[0][0]
            assert got.shape == want.shape and want.shape[0] >= 1
            torch.testing.assert_close(got, want, atol=0.05, rtol=0.02)  # int8 states only
            assert torch.nn.functional.cosine_similarity(near, want, dim=-1).min() > 0.9
    assert sum(v.shape[0] for v in rebuilt) > len(items)  # runs, not one vector per clip


def test_a_transcript_with_a_line_break_is_refused(tmp_path):
    bridge = _bridge(list(range(10, 22)))
    with pytest.raises(ValueError, match="line break"):
        build_cache(bridge, _clips(["two\nlines"]), tmp_path / "c.npz")
    assert not list(tmp_path.iterdir())


def test_lora_trains_on_the_cache_and_replaces_only_the_shipped_adapter(tmp_path):
    """Stage 3 with `speech_cache` needs no encoder: it trains, logs dev WER (from step 0, the
    warm start), keeps an adapter per evaluation, and `lora_into_model` puts one into a copy
    of the shipped model folder; a warm start from that folder reads the same weights."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    from engine.models.config import ModelConfig
    from recipes.lm_stage import build_on_cache, default_config, lora_into_model, train_lm_stage
    from tests.helpers import tiny_lm, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    work = tmp_path / "work"
    lm_dir = work / "pretrained" / "smollm2"
    tiny_lm("llama", len(tokenizer)).save_pretrained(lm_dir)
    tokenizer.save_pretrained(lm_dir)
    texts = ["the quick brown fox", "blood pressure one hundred", "jumps over the lazy dog"]
    token_ids = sorted({i for t in texts for i in tokenizer.encode(t, add_special_tokens=False)})
    bridge = _bridge(token_ids, in_dim=16, lm_dim=32, vocab=len(tokenizer))
    build_cache(bridge, _clips(texts * 3), work / "cache" / "train.npz")
    build_cache(bridge, _clips(texts, seed=1), work / "cache" / "test.npz")

    lines = []
    final = train_lm_stage(work, minutes=0.03, batch_size=2, rank=2, speech_cache=work / "cache", log=lines.append)
    log = [json.loads(x) for x in (work / "lm" / "log.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 0 and log[-1]["step"] > 0 and all(0 <= e["dev_wer"] for e in log)
    snapshots = sorted((work / "lm" / "snapshots").glob("step_*.safetensors"))
    assert snapshots and snapshots[-1].name == f"step_{log[-1]['step']:05d}.safetensors"
    assert (work / "lm" / "ckpt.pt").is_file() and not any("bridge from" in x for x in lines)

    # the folder the snapshots go into: shipped model with a LoRA of the same rank and targets
    shipped = tmp_path / "shipped"
    (shipped / "lora").mkdir(parents=True)
    model = build_on_cache(work, token_ids, "cpu", rank=2)
    model.lm.peft_config["default"].save_pretrained(shipped / "lora")
    save_file({k: torch.zeros_like(v) for k, v in load_file(snapshots[0]).items()},
              shipped / "lora" / "adapter_model.safetensors")
    (shipped / "bridge.safetensors").write_bytes(b"the shipped bridge")
    config = default_config(token_ids)
    config.metrics = {"dev_wer": 0.16}
    config.save(shipped)
    out = lora_into_model(snapshots[-1], tmp_path / "candidate", shipped)
    assert (out / "bridge.safetensors").read_bytes() == b"the shipped bridge"
    candidate = ModelConfig.load(out)
    assert candidate.metrics == {} and candidate.bridge.ctc_token_ids == token_ids
    assert (out / "log.jsonl").read_text() == (work / "lm" / "log.jsonl").read_text()
    trained = load_file(snapshots[-1])
    assert any(v.abs().sum() > 0 for k, v in trained.items() if "lora_B" in k)
    for k, v in load_file(out / "lora" / "adapter_model.safetensors").items():
        torch.testing.assert_close(v, trained[k])
    warm = get_peft_model_state_dict(build_on_cache(work, token_ids, "cpu", rank=2, init_lora=out / "lora").lm)
    for k, v in trained.items():
        torch.testing.assert_close(warm[k].half(), v)

    with pytest.raises(SystemExit, match="do not match"):
        save_file({"x": torch.zeros(1)}, tmp_path / "odd.safetensors")
        lora_into_model(tmp_path / "odd.safetensors", tmp_path / "bad", shipped)
    assert not (tmp_path / "bad").exists() and final == snapshots[-1]
