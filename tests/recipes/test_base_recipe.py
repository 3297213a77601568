"""The default model's recipe pieces that can be checked without the corpus: the ctc bridge's
padding mask, the vocabulary-hint sampler, and the carried-GGUF check."""

import random

import pytest
import torch

from engine.bridge.bridge import CTCBridge
from engine.errors import StenoError
from engine.models.config import BridgeConfig
from recipes.lm_stage import rare_words, sample_hint


def test_ctc_bridge_batch_with_padding_equals_each_clip_alone():
    torch.manual_seed(0)
    head = CTCBridge(BridgeConfig(kind="ctc", kernel_sizes=[3, 3], strides=[2, 2], ctc_dim=32, ctc_layers=2,
                                  ctc_heads=2, ctc_token_ids=list(range(10, 30))), 16, 24, 64).eval()
    clips = [torch.randn(n, 16) for n in (40, 23, 9)]
    padded = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)
    with torch.no_grad():
        batch_states, _ = head.frame_states(padded, [c.shape[0] for c in clips])
        unmasked, _ = head.frame_states(padded)
        for i, clip in enumerate(clips):
            alone, _ = head.frame_states(clip[None])
            n = head.output_length(clip.shape[0])
            torch.testing.assert_close(batch_states[i, :n], alone[0, :n], atol=1e-5, rtol=1e-4)
        assert not torch.allclose(unmasked[2, :3], head.frame_states(clips[2][None])[0][0, :3], atol=1e-4)


def test_rare_words_are_long_words_and_names():
    words = rare_words("The patient in Leeds was given amlodipine and rest.")
    assert "amlodipine" in words and "Leeds" in words
    assert "The" not in words and "rest" not in words


def test_hint_holds_some_own_rare_words_and_only_known_distractors():
    rng = random.Random(1)
    pool = ["metoprolol", "Nairobi", "warfarin", "Guardian"]
    text = "Start amlodipine and furosemide in Glasgow."
    for _ in range(50):
        hint = sample_hint(text, pool, rng).split(", ")
        own = [w for w in hint if w in ("amlodipine", "furosemide", "Glasgow")]
        assert 1 <= len(own) <= 3
        assert set(hint) - set(own) <= set(pool)
    assert sample_hint("a cat sat.", pool, rng) is None


def test_a_carried_gguf_with_the_wrong_hash_is_refused(tmp_path):
    from engine.models.importers.smollm2 import import_smollm2

    fake = tmp_path / "smollm2.gguf"
    fake.write_bytes(b"GGUF not really")
    with pytest.raises(StenoError, match="not the pinned"):
        import_smollm2(tmp_path / "out", gguf=fake)
    assert not (tmp_path / "out").exists()


def test_batched_compression_equals_each_clip_compressed_alone():
    from engine.bridge.bridge import compression_matrix

    torch.manual_seed(1)
    head = CTCBridge(BridgeConfig(kind="ctc", kernel_sizes=[], strides=[], ctc_dim=8, ctc_layers=0,
                                  ctc_token_ids=[3, 4, 5]), 8, 6, 10).eval()
    lengths = [12, 7, 9, 5]
    states = torch.randn(4, 12, 8)
    logits = torch.randn(4, 12, 4) * 3
    logits[1, :, 0] = 10.0  # an all-blank clip: its least-blank frame is kept
    logits[2, 2:5, 2] = 20.0  # a run of one label, merged
    with torch.no_grad():
        batched = head.compress_batch(states, logits, lengths)
        vectors = head.project(states, logits)
        for i, n in enumerate(lengths):
            assign = compression_matrix(logits[i, :n].argmax(-1), logits[i, :n, 0])
            alone = (assign @ vectors[i, :n]) / assign.sum(-1, keepdim=True)
            torch.testing.assert_close(batched[i], alone)
    assert batched[1].shape[0] == 1


def test_a_retrained_head_replaces_the_shipped_bridge_and_its_vocabulary(tmp_path, monkeypatch):
    """swap-head builds a model folder from stage 2's checkpoint and the shipped LoRA; shipping
    it moves the shipped CTC vocabulary along and drops a head trained on the old one."""
    import json

    from safetensors.torch import load_file

    from engine.models.config import ModelConfig
    from recipes import shipped as shipped_parts
    from recipes import stages
    from tests.helpers import tiny_model

    shipped = tmp_path / "resources"
    model_dir = shipped / "model"
    m = tiny_model("hubert", "ctc", "gpt2")
    (model_dir / "lora").mkdir(parents=True)
    (model_dir / "lora" / "adapter_config.json").write_text("{}")
    m.config.metrics = {"dev_wer": 0.3}
    m.config.save(model_dir)
    (shipped / "ctc_vocab.json").write_text(json.dumps([1, 2, 3]))
    (shipped / "ctc_head.safetensors").write_bytes(b"old head")
    work = tmp_path / "work"
    (work / "ctc").mkdir(parents=True)
    token_ids = list(range(10, 30))
    head = CTCBridge(shipped_parts.ctc_bridge_config(token_ids, layers=4), 16, 24, 64)
    torch.save({"head": head.state_dict(), "step": 7}, work / "ctc" / "ckpt.pt")
    (work / "ctc" / "vocab.json").write_text(json.dumps(token_ids))
    (work / "ctc" / "log.jsonl").write_text('{"step": 7}\n')

    out = stages.head_into_model(work, work / "ctc" / "model", model_dir)
    config = ModelConfig.load(out)
    assert config.bridge.ctc_token_ids == token_ids and config.metrics == {} and config.bridge.ctc_layers == 4
    assert config.prompt == m.config.prompt and (out / "lora" / "adapter_config.json").is_file()
    saved = load_file(out / "bridge.safetensors")
    torch.testing.assert_close(saved["head.weight"].float(), head.state_dict()["head.weight"], atol=1e-3, rtol=1e-3)

    monkeypatch.setattr(shipped_parts, "SHIPPED", shipped)
    shipped_parts.ship_model(out)
    assert json.loads((shipped / "ctc_vocab.json").read_text()) == token_ids
    assert not (shipped / "ctc_head.safetensors").exists()
    assert ModelConfig.load(model_dir).bridge.ctc_token_ids == token_ids


def _write_features(folder, split, texts, dim=16, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = [int(rng.integers(40, 80)) for _ in texts]
    out = folder / "features" / split
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "00000.npz", frames=rng.standard_normal((sum(lengths), dim)).astype(np.float16),
             lengths=np.array(lengths), texts=np.array(texts))


def test_stage_two_trains_on_every_feature_folder_and_checkpoints(tmp_path, monkeypatch):
    """A second corpus's features join the first's (its words get labels), the first's clips
    are drawn `repeat_work` times as often, dev WER comes from the folder named for it, and the
    run leaves a checkpoint and a logged dev WER."""
    import json

    from recipes import shipped as shipped_parts
    from recipes import stages
    from tests.helpers import tiny_lm, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    first, second = tmp_path / "first", tmp_path / "second"
    lm_dir = first / "pretrained" / "smollm2"
    tiny_lm("llama", len(tokenizer)).save_pretrained(lm_dir)
    tokenizer.save_pretrained(lm_dir)
    _write_features(first, "train", ["the quick brown fox"] * 4)
    _write_features(second, "train", ["blood pressure one hundred"] * 4, seed=1)
    _write_features(second, "test", ["jumps over the lazy dog"] * 3, seed=2)
    monkeypatch.setattr(shipped_parts, "SHIPPED", tmp_path / "nothing shipped")
    lines = []
    stages.train_ctc_head(first, minutes=0.02, batch_size=2, ship=False, more=[second], dev_work=second,
                               log=lines.append, repeat_work=3)

    token_ids = json.loads((first / "ctc" / "vocab.json").read_text())
    for text in ("the quick brown fox", "blood pressure one hundred"):
        assert set(tokenizer.encode(text, add_special_tokens=False)) <= set(token_ids)
    assert not set(tokenizer.encode("jumps over the lazy dog", add_special_tokens=False)) <= set(token_ids)
    assert f"16 training clips (4 of {first}, x3) from 2 feature folders, 3 dev clips" in lines
    logged = [json.loads(x) for x in (first / "ctc" / "log.jsonl").read_text().splitlines()]
    state = torch.load(first / "ctc" / "ckpt.pt", weights_only=False)
    assert logged[-1]["step"] == state["step"] > 0 and 0 <= logged[-1]["dev_cer"]


def test_clips_longer_than_max_seconds_are_left_out_of_stage_two(tmp_path, monkeypatch):
    import numpy as np

    from recipes import shipped as shipped_parts
    from recipes import stages
    from tests.helpers import tiny_lm, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    lm_dir = tmp_path / "pretrained" / "smollm2"
    tiny_lm("llama", len(tokenizer)).save_pretrained(lm_dir)
    tokenizer.save_pretrained(lm_dir)
    _write_features(tmp_path, "train", ["the quick brown fox"] * 6)
    _write_features(tmp_path, "test", ["the lazy dog"] * 2, seed=2)
    with np.load(tmp_path / "features/train/00000.npz") as f:
        short = int((f["lengths"] <= 60).sum())  # 1.2 s at 50 frames a second
    monkeypatch.setattr(shipped_parts, "SHIPPED", tmp_path / "nothing shipped")
    lines = []
    stages.train_ctc_head(tmp_path, minutes=0.01, batch_size=2, ship=False, log=lines.append, max_seconds=1.2)
    assert 0 < short < 6
    assert f"{short} training clips (6 of {tmp_path}, x1) from 1 feature folders, 2 dev clips; " \
        f"{6 - short} longer than 1.2 s left out" in lines


def test_a_deeper_head_warm_starts_where_the_shipped_head_stands(tmp_path, monkeypatch):
    """Blocks added to the shipped head start as identities: the deeper head gives the same
    logits (grown labels aside), its new blocks train, and the swapped-in model keeps its depth."""
    import json

    from safetensors.torch import save_file

    from recipes import shipped as shipped_parts

    torch.manual_seed(0)
    shipped = tmp_path / "resources"
    shipped.mkdir()
    old_ids, new_ids = list(range(10, 30)), list(range(10, 30)) + [40, 41]
    old = CTCBridge(shipped_parts.ctc_bridge_config(old_ids, layers=2), 16, 24, 64).eval()
    save_file({k: v.contiguous() for k, v in old.state_dict().items()}, shipped / "ctc_head.safetensors",
              metadata={"step": "5"})
    (shipped / "ctc_vocab.json").write_text(json.dumps(old_ids))
    monkeypatch.setattr(shipped_parts, "SHIPPED", shipped)
    assert shipped_parts.shipped_layers() == 2

    deeper = CTCBridge(shipped_parts.ctc_bridge_config(new_ids, layers=4), 16, 24, 64)
    assert shipped_parts.warm_start_head(deeper, new_ids) == 5
    deeper.eval()
    frames = torch.randn(1, 30, 16)
    with torch.no_grad():
        old_logits = old.frame_states(frames)[1]
        new_logits = deeper.frame_states(frames)[1]
    torch.testing.assert_close(new_logits[..., :old.n_labels], old_logits, atol=1e-5, rtol=1e-4)
    assert deeper.layers[3].out.weight.abs().sum() == 0

    deeper.train()
    deeper.frame_states(frames)[1].logsumexp(-1).sum().backward()
    assert deeper.layers[3].mlp[2].weight.grad.abs().sum() > 0  # the new block learns from step one

    work = tmp_path / "work"
    (work / "ctc").mkdir(parents=True)
    torch.save({"head": deeper.state_dict(), "step": 6}, work / "ctc" / "ckpt.pt")
    (work / "ctc" / "vocab.json").write_text(json.dumps(new_ids))
    assert shipped_parts.head_layers(torch.load(work / "ctc" / "ckpt.pt", weights_only=False)["head"]) == 4

    shallow = CTCBridge(shipped_parts.ctc_bridge_config(old_ids, layers=1), 16, 24, 64)
    with pytest.raises(SystemExit, match="2 blocks"):
        shipped_parts.warm_start_head(shallow, old_ids)


def test_a_corpus_drawn_less_than_once_is_refused(tmp_path):
    import pytest

    from recipes import stages

    with pytest.raises(ValueError, match="repeat_work must be 1 or more, not 0"):
        stages.train_ctc_head(tmp_path, repeat_work=0)
    assert not (tmp_path / "ctc").exists()
