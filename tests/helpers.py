"""Tiny random models built on the fly, so tests need no downloaded weights."""

from __future__ import annotations

import functools

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    HubertConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    WhisperConfig,
)

from engine.bridge.encoder import SpeechEncoder
from engine.bridge.model import SpeechLM
from engine.models.config import BridgeConfig, EncoderConfig, ModelConfig, PromptConfig

CORPUS = [
    "the patient was given five milligrams of amlodipine",
    "ask not what your country can do for you",
    "hello world this is a test of the steno engine",
    "please schedule a follow up appointment next week",
    "the quick brown fox jumps over the lazy dog",
    "blood pressure one hundred and twenty over eighty",
]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    import copy

    return copy.deepcopy(_tiny_tokenizer())


@functools.lru_cache(maxsize=1)
def _tiny_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<s>", "</s>", "[SEP]"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   sep_token="[SEP]")


def tiny_lm(kind: str, vocab_size: int, dim: int = 32):
    if kind == "gpt2":
        return GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_positions=512, n_embd=dim, n_layer=2, n_head=2,
                                          bos_token_id=1, eos_token_id=2)).eval()
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, hidden_size=dim, intermediate_size=2 * dim,
                                            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                            max_position_embeddings=512, bos_token_id=1, eos_token_id=2,
                                            pad_token_id=0)).eval()
    raise ValueError(kind)


def tiny_encoder_config(kind: str):
    if kind == "hubert":
        return HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            conv_dim=(32,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, do_stable_layer_norm=False,
                            feat_extract_norm="group")
    if kind in ("wav2vec2", "wavlm"):
        from transformers import Wav2Vec2Config, WavLMConfig

        cls = Wav2Vec2Config if kind == "wav2vec2" else WavLMConfig
        return cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                   conv_dim=(32,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
                   num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm="group",
                   do_stable_layer_norm=False, vocab_size=32)
    if kind == "whisper":
        return WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
                             decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64, num_mel_bins=80,
                             max_source_positions=1500, vocab_size=100, pad_token_id=0,
                             bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    raise ValueError(kind)


def tiny_model(encoder: str = "hubert", bridge: str = "conv", lm: str = "gpt2", seed: int = 0,
               **bridge_kwargs) -> SpeechLM:
    import torch

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    enc_config = EncoderConfig(kind=encoder)
    speech_encoder = SpeechEncoder.from_config(enc_config, tiny_encoder_config(encoder))
    if bridge == "ctc":
        bridge_kwargs.setdefault("ctc_dim", 32)
        bridge_kwargs.setdefault("ctc_layers", 1)
        bridge_kwargs.setdefault("ctc_heads", 2)
        bridge_kwargs.setdefault("kernel_sizes", [3])
        bridge_kwargs.setdefault("strides", [2])
    config = ModelConfig(encoder=enc_config, bridge=BridgeConfig(kind=bridge, **bridge_kwargs),
                         prompt=PromptConfig(prefix="", separator="[SEP]"), name=f"tiny-{encoder}-{bridge}-{lm}")
    return SpeechLM.assemble(config, speech_encoder, tiny_lm(lm, len(tokenizer)), tokenizer).eval()
