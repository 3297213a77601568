"""Training adapters on a tiny model: what they learn, resume, bridge training, saving
safely, applying and merging them, and the `steno train` / `steno adapters` commands."""

import errno
import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

from app.cli import main
from engine.bridge.folder import load_model, save_model
from engine.errors import StenoError
from engine.models.adapters import apply_adapter
from engine.models.registry import model_id
from engine.transcriber import Transcriber
from tests.conftest import espeak
from tests.helpers import CORPUS, tiny_model
from trainer.api import Scores, TrainSettings, collect_data, delete_adapter, list_adapters, merge_adapter, train_adapter
from trainer.train import default_target_modules, prepare, text_ids, text_loss, work_dir

SENTENCES = ["start amlodipine five milligrams daily", "metoprolol twice a day", "stop warfarin today"]
TRAIN_VOICES = [("en-us", 160), ("en-gb", 150), ("en-us", 190), ("en-gb-x-rp", 170)]
EVAL_VOICES = [("en-us", 175)]
# what the tiny model can learn in ~150 steps: LoRA on attention and MLP, no dropout, and no
# rehearsal (a tiny random model cannot also learn 96 everyday sentences; rehearsal has its own tests)
STRONG = dict(rank=16, alpha=32, train_mlp=True, dropout=0.0, learning_rate=3e-3, warmup_steps=5, patience=5,
              device="cpu", rehearsal=0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matrices: one thread is faster than two fighting over a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _speak(folder, voices):
    folder.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(SENTENCES):
        for j, (voice, rate) in enumerate(voices):
            espeak(s, folder / f"s{i}v{j}.wav", voice=voice, rate=rate)
            (folder / f"s{i}v{j}.txt").write_text(s)
    return folder


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    return _speak(root / "train", TRAIN_VOICES), _speak(root / "eval", EVAL_VOICES)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A tiny model whose LM has read some general English (the helpers' corpus), as a
    pretrained LM has: a random LM's tied, tiny embeddings cannot be steered by LoRA."""
    model = tiny_model("hubert", "conv", "gpt2", seed=0)
    ids = [text_ids(model, t) for t in CORPUS]
    opt = torch.optim.AdamW(model.lm.parameters(), lr=1e-2)
    model.lm.train()
    for _ in range(40):
        loss = text_loss(model, ids, "cpu")
        opt.zero_grad()
        loss.backward()
        opt.step()
    return save_model(model.eval(), tmp_path_factory.mktemp("base") / "tiny-base")


@pytest.fixture(scope="module")
def data(speech):
    train, held = speech
    return collect_data([train], eval_data=held)


@pytest.fixture(scope="module")
def trained(base_dir, data, tmp_path_factory):
    events = []
    out = tmp_path_factory.mktemp("adapters") / "clinic"
    result = train_adapter(base_dir, data, out, TrainSettings(epochs=50, **STRONG), callback=events.append)
    return result, events


def test_adapter_moves_transcripts_toward_the_training_text(trained, base_dir, speech, capsys):
    result, _ = trained
    assert not result.cancelled and result.path.is_dir()
    b, a = result.before, result.after
    assert b.term_recall == 0.0 and a.term_recall > 0.2
    assert a.cer < b.cer and a.wer <= b.wer  # a frozen random encoder: it learns the words, not which clip says which
    meta = json.loads((result.path / "steno_adapter.json").read_text())
    assert meta["base_model_id"] == model_id(base_dir) and meta["base_model_name"] == "tiny-hubert-conv-gpt2"
    assert meta["before"] == b.to_dict() and meta["after"] == a.to_dict()
    assert meta["lora"] == {"rank": 16, "alpha": 32, "dropout": 0.0,
                            "target_modules": ["c_attn", "mlp.c_fc", "mlp.c_proj"]}
    assert meta["hyperparameters"]["epochs"] == 50 and meta["data"]["train_pairs"] == 12
    assert meta["data"]["eval_pairs"] == 3 and "amlodipine" in meta["terms"] and meta["created"]
    assert meta["training"]["steps"] == result.steps and meta["examples"][0]["before"] is not None
    assert not work_dir(result.path).exists()  # cleaned up after a successful save

    clip = str(speech[1] / "s0v0.wav")
    assert main(["transcribe", clip, "--model", str(base_dir), "-q"]) == 0
    plain = capsys.readouterr().out
    assert main(["transcribe", clip, "--model", str(base_dir), "--adapter", str(result.path), "-q"]) == 0
    adapted = capsys.readouterr().out
    assert "amlodipine" in adapted and "amlodipine" not in plain


def test_progress_reports_steps_eta_and_held_out_loss(trained):
    result, events = trained
    messages = [e.message for e in events]
    assert any("evaluating the base model" in m for m in messages)
    assert any(m.startswith("encoding audio") for m in messages)
    steps = [e for e in events if e.eta_seconds is not None]
    assert [e.step for e in steps] == list(range(1, result.steps + 1))
    assert all(e.total_steps == 150 and e.loss is not None for e in steps) and steps[-1].eta_seconds == 0
    held = [e.eval_loss for e in events if e.message.startswith("epoch") and "done" in e.message]
    assert len(held) == result.steps // 3 and held[-1] < held[0]


def test_adapter_for_another_base_model_is_a_clear_error(trained, tiny_model_dir, speech, tmp_path, capsys):
    result, _ = trained
    rc = main(["transcribe", str(speech[1] / "s0v0.wav"), "--model", str(tiny_model_dir), "--adapter",
               str(result.path), "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and "made for another base model (tiny-hubert-conv-gpt2)" in err and "Traceback" not in err
    with pytest.raises(StenoError, match="made for another base model"):
        merge_adapter(result.path, tiny_model_dir, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def _weights(folder):
    out = load_file(folder / "adapter_model.safetensors")
    if (folder / "bridge.safetensors").is_file():
        out.update({f"bridge.{k}": v for k, v in load_file(folder / "bridge.safetensors").items()})
    return out


def test_cancel_or_crash_then_resume_ends_with_the_same_weights(base_dir, data, tmp_path):
    settings = TrainSettings(epochs=3, checkpoint_every=2, evaluate=False, bridge="full", dropout=0.1,
                             learning_rate=3e-3, device="cpu")
    whole = train_adapter(base_dir, data, tmp_path / "whole", settings)
    assert whole.steps == 9 and not whole.cancelled

    seen = []
    out = tmp_path / "resumed"
    first = train_adapter(base_dir, data, out, settings, callback=lambda p: seen.append(p.step),
                          cancel=lambda: max(seen, default=0) >= 4)
    assert first.cancelled and first.steps == 4 and not out.exists()
    assert (work_dir(out) / "checkpoint.pt").is_file()

    def crash(p):
        if p.step == 7:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        train_adapter(base_dir, data, out, settings, callback=crash)  # last checkpoint: step 6
    steps = []
    last = train_adapter(base_dir, data, out, settings, callback=lambda p: steps.append(p.step))
    assert not last.cancelled and last.steps == 9 and min(s for s in steps if s) == 6
    a, b = _weights(whole.path), _weights(out)
    assert a.keys() == b.keys() and any(k.startswith("bridge.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)

    # a fresh start (no resume) with another seed gives other weights
    other = train_adapter(base_dir, data, tmp_path / "other", TrainSettings(**{**settings.__dict__, "seed": 1}),
                          resume=False)
    c = _weights(other.path)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_lora_bridge_is_saved_merged_and_merge_gives_the_same_model(base_dir, data, speech, tmp_path):
    result = train_adapter(base_dir, data, tmp_path / "bridged",
                           TrainSettings(epochs=2, bridge="lora", evaluate=False, learning_rate=1e-2, device="cpu",
                                         frames_cache=tmp_path / "frames"))
    # kept for the next run: the 15 clips and the rehearsal sentences
    assert len(list((tmp_path / "frames").glob("*.safetensors"))) == 15 + TrainSettings().rehearsal
    base = load_model(base_dir)
    bridge = load_file(result.path / "bridge.safetensors")
    assert bridge.keys() == base.bridge.state_dict().keys()  # plain weights, LoRA merged in
    assert not all(torch.equal(bridge[k], v) for k, v in base.bridge.state_dict().items())

    merged = merge_adapter(result.path, base_dir, tmp_path / "merged-model")
    clip = speech[1] / "s1v0.wav"
    with_adapter = Transcriber(base_dir, adapter=result.path, device="cpu").transcribe(clip).text
    assert Transcriber(merged, device="cpu").transcribe(clip).text == with_adapter

    a, m = load_model(base_dir), load_model(merged)
    apply_adapter(a, result.path, model_id(base_dir))
    frames = [torch.randn(60, 32)]
    with torch.no_grad():
        la = a.loss_from_frames(frames, [SENTENCES[0]])["loss"]
        lm = m.loss_from_frames(frames, [SENTENCES[0]])["loss"]
    assert torch.allclose(la, lm, atol=1e-4)


def test_text_only_training_makes_the_terms_likelier(base_dir, tmp_path):
    words = tmp_path / "drugs.txt"
    words.write_text("apixaban\nrivaroxaban\ndabigatran\nedoxaban\n")
    doc = tmp_path / "letter.md"
    doc.write_text("# Letter\n\nWe switched her from warfarin to apixaban.\n\nRivaroxaban was stopped.\n")
    data = collect_data(text=[doc], word_list=words)
    result = train_adapter(base_dir, data, tmp_path / "vocab",
                           TrainSettings(epochs=15, learning_rate=1e-2, batch_size=4, device="cpu"))
    assert math.isnan(result.before.wer) and math.isnan(result.after.wer)  # no recordings to measure on
    assert not (result.path / "bridge.safetensors").exists()  # the speech side stays frozen

    model = load_model(base_dir)
    ids = [text_ids(model, t) for t in data.terms]
    with torch.no_grad():
        before = text_loss(model, ids, "cpu").item()
        apply_adapter(model, result.path, model_id(base_dir))
        after = text_loss(model, ids, "cpu").item()
    assert after < 0.7 * before


def test_early_stopping_on_held_out_loss_keeps_the_best_epoch(base_dir, speech, tmp_path):
    train, _ = speech
    other = tmp_path / "other"
    other.mkdir()
    for i, s in enumerate(["the quick brown fox", "hello world this is a test"]):
        espeak(s, other / f"o{i}.wav")
        (other / f"o{i}.txt").write_text(s)
    data = collect_data([train], eval_data=other)
    result = train_adapter(base_dir, data, tmp_path / "early",
                           TrainSettings(epochs=20, patience=2, learning_rate=3e-2, evaluate=False, device="cpu"))
    meta = json.loads((result.path / "steno_adapter.json").read_text())
    history = meta["training"]["history"]
    assert result.stopped_early and len(history) < 20 and result.steps == 3 * len(history)
    losses = [h["eval_loss"] for h in history]
    assert min(losses) == meta["training"]["best_eval_loss"] == losses[-3]  # then two worse epochs


def test_disk_full_while_saving_keeps_the_previous_adapter(trained, base_dir, data, tmp_path, monkeypatch):
    import trainer.train

    out = tmp_path / "clinic"
    shutil.copytree(trained[0].path, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    settings = TrainSettings(epochs=1, evaluate=False, device="cpu")
    with monkeypatch.context() as m:
        m.setattr(trainer.train, "write_meta", full)
        with pytest.raises(StenoError, match="disk full while saving the adapter") as e:
            train_adapter(base_dir, data, out, settings)
    assert str(out) in str(e.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # the trained state survived: running again only saves
    steps = []
    again = train_adapter(base_dir, data, out, settings, callback=lambda p: steps.append(p.step))
    assert again.steps == 3 and not [s for s in steps if 0 < s < 3]
    assert json.loads((out / "steno_adapter.json").read_text())["hyperparameters"]["epochs"] == 1


def test_list_show_delete_adapters(trained, tmp_path, capsys):
    root = tmp_path / "adapters"
    root.mkdir()
    shutil.copytree(trained[0].path, root / "clinic")
    (root / ".clinic.work").mkdir()
    (root / "not-an-adapter").mkdir()
    found = list_adapters(root)
    assert [a.name for a in found] == ["clinic"]
    assert found[0].after == Scores.from_dict(trained[0].after.to_dict()) and found[0].created

    assert main(["adapters", "list", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "clinic" in out and "tiny-hubert-conv-gpt2" in out
    assert main(["adapters", "show", "clinic", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "rank 16" in out and "term recall" in out and "12 pairs" in out

    with pytest.raises(StenoError, match="not a Steno adapter"):
        delete_adapter(root / "not-an-adapter")
    assert main(["adapters", "delete", "clinic", "--root", str(root)]) == 0
    assert not (root / "clinic").exists() and not (root / ".clinic.work").exists()
    assert main(["adapters", "show", "clinic", "--root", str(root)]) == 1
    assert "no adapter folder or saved adapter named 'clinic'" in capsys.readouterr().err
    assert list_adapters(tmp_path / "nowhere") == []


def test_steno_train_and_merge_from_the_command_line(base_dir, speech, tmp_path, capsys):
    train, held = speech
    out = tmp_path / "cli-adapter"
    rc = main(["train", "--data", str(train), "--eval", str(held), "--base", str(base_dir), "--out", str(out),
               "--epochs", "2", "--rank", "4", "--lr", "3e-3", "--device", "cpu", "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "WER" in captured.out and "before" in captured.out and f"adapter saved to {out}" in captured.out
    meta = json.loads((out / "steno_adapter.json").read_text())
    assert meta["lora"]["rank"] == 4 and meta["lora"]["alpha"] == 8 and meta["training"]["steps"] == 6

    assert main(["adapters", "merge", str(out), "--out", str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "steno.json").is_file()
    assert "+cli-adapter" in json.loads((tmp_path / "merged" / "steno.json").read_text())["name"]

    rc = main(["train", "--data", str(tmp_path / "nothing"), "--base", str(base_dir), "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and "no usable training data" in err and "Traceback" not in err


def test_lora_targets_follow_the_lm_family():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from tests.helpers import tiny_lm

    assert default_target_modules(tiny_lm("gpt2", 50)) == ["c_attn"]
    assert default_target_modules(tiny_lm("llama", 50)) == ["q_proj", "v_proj"]
    assert default_target_modules(tiny_lm("llama", 50), train_mlp=True)[2:] == ["gate_proj", "up_proj", "down_proj"]
    neox = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                                            num_attention_heads=2, intermediate_size=64))
    assert default_target_modules(neox) == ["query_key_value"]
    with pytest.raises(StenoError, match="set target_modules"):
        default_target_modules(torch.nn.Sequential(torch.nn.Linear(2, 2)))

    model = tiny_model("hubert", "ctc", "llama")
    params = prepare(model, TrainSettings(bridge="lora"))
    names = [n for n, _ in params]
    assert any("q_proj.lora_A" in n for n in names) and any(n.startswith("bridge.") for n in names)
    assert not any(n.startswith("encoder.") for n in names)
    loss = model.loss_from_frames([torch.randn(40, 32)], ["hello world"])["loss"]
    loss.backward()
    assert all(p.grad is not None for n, p in params if "lora_B" in n)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda(base_dir, tmp_path):
    """Noise clips, not espeak-ng: a lent GPU machine has no TTS voices, and what is checked
    is that training runs on the device."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    for name, voices in (("train", TRAIN_VOICES), ("held", EVAL_VOICES)):
        (tmp_path / name).mkdir()
        for i, sentence in enumerate(SENTENCES * len(voices)):
            sf.write(tmp_path / name / f"{i:02d}.wav", 0.1 * rng.standard_normal(16000).astype(np.float32), 16000)
            (tmp_path / name / f"{i:02d}.txt").write_text(sentence)
    data = collect_data([tmp_path / "train"], eval_data=tmp_path / "held")
    result = train_adapter(base_dir, data, tmp_path / "gpu", TrainSettings(epochs=2, device="cuda", evaluate=False))
    meta = json.loads((result.path / "steno_adapter.json").read_text())
    assert meta["training"]["device"] == "cuda" and result.steps == 6


def _tiny_whisper(folder):
    """A random two-layer Whisper with the real tiny.en tokenizer (from its pinned package)."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    from engine.models.config import ModelConfig
    from engine.models.importers.whisper import _side_files, build_generation_config, build_tokenizer

    try:
        side = _side_files("whisper-tiny.en")
    except StenoError as e:
        pytest.skip(f"no Whisper tokenizer here ({e})")
    tok = build_tokenizer(side["tokenizer.json"], side["vocabulary.txt"])
    sot, eot = tok.convert_tokens_to_ids(["<|startoftranscript|>", "<|endoftext|>"])
    config = WhisperConfig(vocab_size=len(tok), num_mel_bins=80, d_model=32, encoder_layers=1,
                           encoder_attention_heads=2, encoder_ffn_dim=64, decoder_layers=1,
                           decoder_attention_heads=2, decoder_ffn_dim=64,
                           max_source_positions=1500, max_target_positions=448, decoder_start_token_id=sot,
                           pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, begin_suppress_tokens=None,
                           suppress_tokens=None)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = build_generation_config(json.loads(side["config.json"].read_text()), tok, False, 448)
    model.save_pretrained(folder / "whisper")
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tok).save_pretrained(
        folder / "whisper")
    ModelConfig(family="whisper", name="tiny-whisper").save(folder)
    return folder


def test_whisper_family_adapts_its_decoder_only(data, speech, tmp_path):
    base = _tiny_whisper(tmp_path / "whisper-model")
    result = train_adapter(base, data, tmp_path / "w-adapter",
                           TrainSettings(epochs=3, cross_attention=True, train_mlp=True, learning_rate=1e-2,
                                         anchor=0.5, evaluate=False, device="cpu"))
    meta = json.loads((result.path / "steno_adapter.json").read_text())
    assert meta["target"] == "whisper"
    keys = list(load_file(result.path / "adapter_model.safetensors"))
    assert keys and all(".decoder.layers." in k for k in keys) and any("encoder_attn" in k for k in keys)
    losses = [h["eval_loss"] for h in meta["training"]["history"]]
    assert losses[-1] < losses[0]

    clip = speech[1] / "s2v0.wav"
    adapted = Transcriber(base, adapter=result.path, device="cpu").transcribe(clip).text
    merged = merge_adapter(result.path, base, tmp_path / "w-merged")
    assert Transcriber(merged, device="cpu").transcribe(clip).text == adapted

    words = tmp_path / "w.txt"
    words.write_text("apixaban\n")
    with pytest.raises(StenoError, match="learns from recordings"):
        train_adapter(base, collect_data(word_list=words), tmp_path / "w2", TrainSettings(device="cpu"))
    with pytest.raises(StenoError, match="no bridge"):
        train_adapter(base, data, tmp_path / "w3", TrainSettings(bridge="lora", device="cpu"))


def test_rehearsal_sentences_are_spoken_once_and_the_same_for_a_seed(tmp_path):
    from trainer.rehearsal import rehearsal_pairs, sentences

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (setup.sh installs it)")
    pairs = rehearsal_pairs(tmp_path / "r0", 4, seed=0)
    assert len(pairs) == 4 and {p.text for p in pairs} <= set(sentences())
    from engine.audio import load_audio

    assert all(len(load_audio(p.audio)) > 8000 for p in pairs)
    stamps = [p.audio.stat().st_mtime_ns for p in pairs]
    again = rehearsal_pairs(tmp_path / "r0", 6, seed=0)  # the first four are reused, two added
    assert [p.text for p in again[:4]] == [p.text for p in pairs]
    assert [p.audio.stat().st_mtime_ns for p in again[:4]] == stamps
    assert [p.text for p in rehearsal_pairs(tmp_path / "r1", 4, seed=1)] != [p.text for p in pairs]
    assert rehearsal_pairs(tmp_path / "r2", 0) == []


def test_rehearsal_sentences_are_not_the_benchmark_test_sentences():
    from bench.adaptation import GENERAL
    from trainer.rehearsal import sentences

    assert len(sentences()) >= 100 and not set(sentences()) & set(GENERAL)


def test_training_puts_rehearsal_clips_beside_each_batch(base_dir, data, tmp_path, monkeypatch):
    from trainer.rehearsal import sentences
    from trainer.train import BridgeTrainee

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (setup.sh installs it)")
    batches = []
    real = BridgeTrainee.speech_loss

    def spy(self, frames, texts, seconds, hints=None):
        batches.append(list(texts))
        return real(self, frames, texts, seconds, hints)

    monkeypatch.setattr(BridgeTrainee, "speech_loss", spy)
    settings = TrainSettings(epochs=1, evaluate=False, device="cpu", rehearsal=6, batch_size=4)
    result = train_adapter(base_dir, data, tmp_path / "rehearsed", settings)
    general = set(sentences())
    rehearsed = [b for b in batches if set(b) <= general]
    assert len(rehearsed) == result.steps and all(len(b) == 2 for b in rehearsed)  # half a batch each step
    meta = json.loads((result.path / "steno_adapter.json").read_text())
    assert meta["data"]["rehearsal_pairs"] == 6 and meta["hyperparameters"]["rehearsal"] == 6

    batches.clear()
    messages = []
    monkeypatch.setattr("trainer.rehearsal.available", lambda: False)
    result = train_adapter(base_dir, data, tmp_path / "plain", settings, callback=lambda p: messages.append(p.message))
    assert batches and not any(set(b) & general for b in batches)
    assert any("espeak-ng is not installed" in m for m in messages)


def test_hint_prompts_reach_the_loss_with_said_terms(base_dir, data, tmp_path, monkeypatch):
    from engine.decoding.hints import said_terms
    from trainer.train import BridgeTrainee

    seen = []
    real = BridgeTrainee.speech_loss

    def spy(self, frames, texts, seconds, hints=None):
        if torch.is_grad_enabled():  # training batches, not the held-out loss
            seen.extend(zip(texts, hints or [None] * len(texts)))
        return real(self, frames, texts, seconds, hints)

    monkeypatch.setattr(BridgeTrainee, "speech_loss", spy)
    assert data.terms
    train_adapter(base_dir, data, tmp_path / "hinted",
                  TrainSettings(epochs=1, evaluate=False, device="cpu", rehearsal=0, hint_share=1.0))
    assert seen and all(h for _, h in seen)
    assert all(set(said_terms(t, data.terms)) & set(h) for t, h in seen if said_terms(t, data.terms))


def test_whisper_hint_prompt_is_read_but_not_scored(tmp_path):
    from engine.models.config import ModelConfig
    from trainer.api import TrainSettings as S
    from trainer.whisper import WhisperTrainee

    base = _tiny_whisper(tmp_path / "w")
    trainee = WhisperTrainee(base, ModelConfig.load(base))
    trainee.prepare(S(rank=4, alpha=8, anchor=0.0))
    trainee.eval()
    frames = [torch.randn(1500, 32)]
    plain = trainee.speech_loss(frames, ["start amlodipine"], [2.0])
    hinted = trainee.speech_loss(frames, ["start amlodipine"], [2.0], [["amlodipine", "warfarin"]])
    assert torch.isfinite(plain) and torch.isfinite(hinted) and not torch.isclose(plain, hinted)
    captured = {}
    real = torch.nn.functional.cross_entropy

    def count(logits, targets, **kw):
        captured.setdefault("n", []).append(int((targets != -100).sum()))
        return real(logits, targets, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.nn.functional, "cross_entropy", count)
        trainee.speech_loss(frames, ["start amlodipine"], [2.0])
        trainee.speech_loss(frames, ["start amlodipine"], [2.0], [["amlodipine", "warfarin"]])
    assert captured["n"][0] == captured["n"][1]  # the same transcript tokens are scored, the prompt never
