"""The default model's recipe pieces that can be checked without the corpus: the ctc bridge's
padding mask, the vocabulary-hint sampler, and the carried-GGUF check."""

import random

import pytest
import torch

from engine.bridge import CTCBridge
from engine.config import BridgeConfig
from engine.errors import StenoError
from trainer.base_lm import rare_words, sample_hint


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
    from engine.importers.smollm2 import import_smollm2

    fake = tmp_path / "smollm2.gguf"
    fake.write_bytes(b"GGUF not really")
    with pytest.raises(StenoError, match="not the pinned"):
        import_smollm2(tmp_path / "out", gguf=fake)
    assert not (tmp_path / "out").exists()


def test_batched_compression_equals_each_clip_compressed_alone():
    from engine.bridge import compression_matrix

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
