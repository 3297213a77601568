"""No invented sentences: silence, hiss and music give empty or flagged output, and loops are cut.

Random tiny models write garbage for any input, which is exactly the text that must not
reach a transcript. Each signal is fed twice: through `transcribe` (the VAD cuts the audio
first) and as one chunk straight to the model with the VAD asked afterwards, which is the
guard for the bridge family (it has no no-speech token of its own).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from engine.audio import AudioChunk
from engine.text.doses import write_doses
from engine.text.metrics import normalize
from engine.text.transcript import Segment, Transcript
from engine.transcriber import Transcriber, holds_speech
from tests.conftest import espeak

SR = 16000
SECONDS = 5.0


def signals() -> dict[str, np.ndarray]:
    n = int(SR * SECONDS)
    t = np.arange(n) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63, 440.0))  # A major, 4 voices
    notes = (261.63, 293.66, 329.63, 349.23, 392.0, 440.0, 493.88, 523.25)
    melody = np.sin(2 * np.pi * np.repeat(notes, n // len(notes) + 1)[:n] * t)
    return {"silence": np.zeros(n, np.float32),
            "white noise": (np.random.default_rng(0).standard_normal(n) * 0.01).astype(np.float32),
            "music": (0.08 * chord + 0.15 * melody).astype(np.float32)}


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    """A random CTC-bridge + Llama model: it writes text for every signal here."""
    from engine.bridge.folder import save_model
    from tests.helpers import tiny_model

    folder = save_model(tiny_model("hubert", "ctc", "llama", seed=0), tmp_path_factory.mktemp("h") / "bridge")
    return Transcriber(folder, device="cpu")


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    from tests.engine.test_whisper_backend import _write_tiny_whisper  # skips without the tiny.en package

    folder = tmp_path_factory.mktemp("h") / "whisper"
    _write_tiny_whisper(folder)
    return Transcriber(folder, device="cpu")


@pytest.mark.parametrize("family", ["bridge", "whisper"])
def test_silence_noise_and_music_give_no_invented_text(family, request):
    tr = request.getfixturevalue(family)
    wrote = []
    for name, audio in signals().items():
        assert not holds_speech(audio), name
        assert tr.transcribe(audio).text == "", name  # the VAD finds nothing to transcribe

        raw = tr.transcribe_chunks([AudioChunk(0.0, SECONDS, audio)])  # the model alone
        wrote += [name for s in raw if s.text]
        [seg] = tr.transcribe_chunks([AudioChunk(0.0, SECONDS, audio)], vad_check=True)
        assert seg.text == "" or "no-speech" in seg.flags, (name, seg.text, seg.flags)
        said = " ".join(s.text for s in raw if s.text)
        kept_aside = normalize(seg.removed).replace(" ", "")  # one piece, where `said` joins timed pieces
        assert seg.text or kept_aside.startswith(normalize(said).replace(" ", "")), (name, said)
        assert not seg.words
    if family == "bridge":
        assert wrote, "the random model should write garbage, or this test proves nothing"


def test_no_speech_text_can_be_kept_flagged(bridge):
    audio = signals()["music"]
    bridge.keep_no_speech = True
    try:
        [seg] = bridge.transcribe_chunks([AudioChunk(0.0, SECONDS, audio)], vad_check=True)
    finally:
        bridge.keep_no_speech = False
    assert seg.text and "no-speech" in seg.flags


def test_speech_passes_the_vad_check(bridge, tmp_path):
    import soundfile as sf

    audio, _ = sf.read(espeak("the patient was given five milligrams", tmp_path / "s.wav"), dtype="float32")
    assert holds_speech(audio)
    segs = bridge.transcribe(audio).segments
    assert segs and all("no-speech" not in s.flags for s in segs)
    assert any(s.text for s in segs)  # garbage, but garbage heard on speech is the model's business


# ------------------------------------------------------------------ loops


def _force(tr: Transcriber, monkeypatch, phrase: list[int]) -> None:
    """Make the LM say `phrase` over and over, whatever it hears."""
    lm = tr.backend.decoding_lm  # what decodes (an int8 copy on a CPU)
    forward = lm.forward
    base = {}

    def looping(*args, **kw):
        out = forward(*args, **kw)
        pos = kw["position_ids"][:, -1]
        if kw["inputs_embeds"].shape[1] > 1:  # the prompt: the next token is the phrase's first
            base["pos"] = int(pos[0])
        step = (pos - base["pos"]).tolist()
        out.logits[torch.arange(len(step)), -1, [phrase[s % len(phrase)] for s in step]] += 1000.0
        return out

    monkeypatch.setattr(lm, "forward", looping)


@pytest.mark.parametrize("beam", [1, 3])
@pytest.mark.parametrize("text", ["amlodipine", "the patient was given five milligrams of amlodipine"],
                         ids=["short-ngram", "whole-sentence"])
def test_a_forced_loop_is_cut_to_one_copy_and_flagged(bridge, monkeypatch, beam, text, caplog):
    """A short n-gram is cut while decoding (4 copies); a 12-token sentence said 3 times, too
    long for that, is cut at the end (before this guard it ran to the length limit)."""
    tok = bridge.backend.model.tokenizer
    phrase = tok.encode(" " + text, add_special_tokens=False)
    _force(bridge, monkeypatch, phrase)
    audio = signals()["white noise"]
    assert bridge.backend.max_new_tokens(SECONDS) >= 3 * len(phrase)
    r = bridge.backend.transcribe_batch([audio], hints=None, beam_size=beam, timing=bridge.timing)[0]
    assert r.tokens == phrase, tok.decode(r.tokens)
    assert "dropped-repetition" in r.flags and "max-length" not in r.flags
    assert normalize(r.removed).split()[:len(text.split())] == text.split()  # the repeats, kept aside
    with caplog.at_level(logging.WARNING, logger="steno"):
        [seg] = bridge.transcribe_chunks([AudioChunk(0.0, SECONDS, audio)], beam_size=beam, source="ward.wav")
    assert seg.text == write_doses(Segment(0.0, SECONDS, text)).text  # "five milligrams" is written "5 mg"
    assert "dropped-repetition" in seg.flags and seg.removed == r.removed
    assert "ward.wav" in caplog.text and "dropped-repetition" in caplog.text and text in caplog.text
    assert Transcript.from_dict(Transcript([seg]).to_dict()).segments[0].removed == seg.removed


def test_cut_keeps_one_copy_from_where_the_loop_began():
    from engine.bridge.backend import cut_phrase_loop
    from engine.decoding.search import Decoded

    phrase = list(range(10, 20))
    tokens = [5, 6] + phrase * 3 + phrase[:4]  # the limit hit in the middle of a copy
    d = Decoded(list(tokens), [0.0] * len(tokens), ["max-length"])
    assert cut_phrase_loop(d, max_repeats=4)
    assert d.tokens == [5, 6] + phrase and len(d.logprobs) == len(d.tokens)
    assert d.flags == ["dropped-repetition"]
    once = Decoded([5, 6] + phrase * 2, [0.0] * 22)  # said twice is not a loop yet
    assert not cut_phrase_loop(once, max_repeats=4) and once.flags == []
    assert not cut_phrase_loop(Decoded(list(tokens), [0.0] * len(tokens)), max_repeats=10_000)  # guard off
