"""The paper's released format (rinna nue-asr) runs in Steno exactly as its own forward pass."""

import json

import numpy as np
import pytest
import sentencepiece as spm
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM, HubertConfig, HubertModel

from engine.audio import AudioChunk
from engine.errors import ModelFolderError
from engine.models.importers.nue_asr import import_nue_asr, load_nue_asr
from engine.transcriber import Transcriber
from tests.helpers import CORPUS, tiny_encoder_config


class NueReference(nn.Module):
    """The nue-asr forward pass written out directly: parameter names as in its checkpoints."""

    def __init__(self, hubert: HubertConfig, neox: GPTNeoXConfig, kernels=(4, 4), strides=(2, 2)):
        super().__init__()
        self.audio_encoder = HubertModel(hubert)
        self.llm = GPTNeoXForCausalLM(neox)
        d = hubert.hidden_size
        self.bridge_convs = nn.ModuleList([nn.Conv1d(d, d, kernel_size=k, stride=s) for k, s in zip(kernels, strides)])
        self.bridge_proj = nn.Linear(d, neox.hidden_size)

    @torch.no_grad()
    def transcribe_ids(self, audio: np.ndarray, tokenizer) -> list[int]:
        h = self.audio_encoder(torch.from_numpy(audio)[None]).last_hidden_state.permute(0, 2, 1)
        for conv in self.bridge_convs:
            h = nn.functional.gelu(conv(h))
        audio_embed = self.bridge_proj(h.permute(0, 2, 1))
        embed = self.llm.gpt_neox.embed_in
        prefix = embed(torch.tensor([tokenizer.encode("<s>", add_special_tokens=False)]))
        postfix = embed(torch.tensor([tokenizer.encode("[SEP]", add_special_tokens=False)]))
        x = torch.cat([prefix, audio_embed, postfix], dim=1)
        max_new = int(4 * len(audio) / 16000 + 20 + 0.5)
        out = []
        for step in range(max_new):  # greedy, no cache: the plainest correct decoding
            logits = self.llm(inputs_embeds=x).logits[0, -1]
            if step < 2:
                logits[tokenizer.eos_token_id] = -float("inf")
            tok = int(logits.argmax())
            if tok == tokenizer.eos_token_id:
                break
            out.append(tok)
            x = torch.cat([x, embed(torch.tensor([[tok]]))], dim=1)
        return out


def write_sentencepiece_tokenizer(folder):
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS * 20), model_prefix=str(folder / "spiece"),
                                   vocab_size=64, user_defined_symbols=["[SEP]", "[PAD]"], bos_piece="<s>",
                                   eos_piece="</s>", unk_piece="<unk>", minloglevel=2)
    (folder / "spiece.vocab").unlink()
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "T5Tokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": "[PAD]", "sep_token": "[SEP]", "extra_ids": 0, "do_lower_case": False}))


def make_nue_folder(folder, seed=0):
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    write_sentencepiece_tokenizer(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, use_fast=False, legacy=True)
    hubert = tiny_encoder_config("hubert")
    neox = GPTNeoXConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    ref = NueReference(hubert, neox).eval()
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "nue_asr", "architectures": ["NueASRModel"], "audio_encoder_config": hubert.to_dict(),
        "llm_config": neox.to_dict(), "bridge_conv_kernel_size": [4, 4], "bridge_conv_stride": [2, 2]}, default=str))
    return ref, tokenizer


def test_steno_runs_a_nue_asr_model_token_for_token(tmp_path):
    ref, tokenizer = make_nue_folder(tmp_path / "nue")
    steno_dir = import_nue_asr(tmp_path / "nue", tmp_path / "steno")
    config = json.loads((steno_dir / "steno.json").read_text())
    assert config["prompt"]["prefix"] == "<s>" and config["prompt"]["separator"] == "[SEP]"
    assert config["bridge"]["kernel_sizes"] == [4, 4] and config["bridge"]["strides"] == [2, 2]
    config["decode"]["max_repeats"] = 10_000  # the reference has no loop guard: compare raw decoding
    (steno_dir / "steno.json").write_text(json.dumps(config))

    tr = Transcriber(steno_dir, device="cpu", precision="fp32")  # encoder+bridge through the ONNX graph, fp32 LM
    rng = np.random.default_rng(0)
    for seconds in (1.0, 3.7):
        audio = (rng.standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32)
        expected = ref.transcribe_ids(audio, tokenizer)
        result = tr.backend.transcribe_batch([audio], hints=None, beam_size=1, timing=tr.timing)[0]
        assert result.tokens == expected
        assert len(expected) >= 2
        segs = tr.transcribe_chunks([AudioChunk(0.0, seconds, audio)])
        assert segs[0].text == tokenizer.decode(expected, skip_special_tokens=True).strip()


def test_long_audio_is_segmented_to_what_nue_asr_was_trained_on(tmp_path):
    make_nue_folder(tmp_path / "nue")
    model = load_nue_asr(tmp_path / "nue")
    assert model.config.max_segment_seconds <= 16.0


def test_missing_or_mismatched_parts_are_clear_errors(tmp_path):
    make_nue_folder(tmp_path / "nue")
    weights = tmp_path / "nue" / "model.safetensors"
    from safetensors.torch import load_file

    state = load_file(weights)
    del state["bridge_proj.weight"]
    save_file(state, weights)
    with pytest.raises(ModelFolderError, match="bridge_proj.weight"):
        load_nue_asr(tmp_path / "nue")

    make_nue_folder(tmp_path / "nue2")
    cfg = json.loads((tmp_path / "nue2" / "config.json").read_text())
    cfg["llm_config"]["hidden_size"] = 48
    (tmp_path / "nue2" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFolderError, match="do not match"):
        load_nue_asr(tmp_path / "nue2")

    (tmp_path / "nue2" / "model.safetensors").unlink()
    with pytest.raises(ModelFolderError, match="no model.safetensors"):
        load_nue_asr(tmp_path / "nue2")


def test_tokenizer_without_sep_is_a_clear_error(tmp_path):
    folder = tmp_path / "nue"
    make_nue_folder(folder)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS * 20), model_prefix=str(folder / "spiece"),
                                   vocab_size=64, bos_piece="<s>", eos_piece="</s>", unk_piece="<unk>",
                                   minloglevel=2)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    del cfg["sep_token"]
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFolderError, match=r"\[SEP\]"):
        load_nue_asr(folder)
