"""Kokoro speaking English for the corpus: espeak IPA -> Kokoro's letters, style blends, the
model call (faked: CI installs no TTS voices), and the held-out test speaker."""

import argparse
import random

import numpy as np
import pytest

from recipes import corpus
from trainer import kokoro_voice, voices


def test_espeak_ipa_becomes_kokoro_letters_for_each_accent():
    american = kokoro_voice.to_kokoro("ðə pˈeɪʃənt\n wʌz ɡˈoʊɪŋ hˈoʊm fˈɔːɹɾi  d\u200dʒˈʌd\u200dʒ ɐbˈaʊt t\u200dʃˈɔɪs",
                                      "en-us")
    assert american == "ðə pˈAʃənt wʌz ɡˈOɪŋ hˈOm fˈɔɹTi ʤˈʌʤ əbˈWt ʧˈYs"
    british = kokoro_voice.to_kokoro("ɡˈəʊɪŋ fˈɑːst ɹˈaɪt", "en-gb")
    assert british == "ɡˈQɪŋ fˈɑːst ɹˈIt"  # British keeps its length marks


def test_a_blend_lies_between_its_two_styles_and_a_single_style_is_itself():
    styles = {"a": np.zeros((4, 1, 3), np.float32), "b": np.ones((4, 1, 3), np.float32)}
    assert np.array_equal(kokoro_voice.blend(styles, "a", random.Random(0)), styles["a"])
    mixes = [kokoro_voice.blend(styles, "a+b", random.Random(seed)) for seed in range(5)]
    weights = {float(m[0, 0, 0]) for m in mixes}
    assert all(0.25 <= w <= 0.75 for w in weights) and len(weights) == 5  # a new speaker each clip
    with pytest.raises(ValueError, match="styles are a, b"):
        kokoro_voice.blend(styles, "a+c", random.Random(0))
    with pytest.raises(ValueError, match="each once"):
        kokoro_voice.blend(styles, "a+a", random.Random(0))


def test_a_mix_of_three_weighs_them_to_one_each_clip_anew_reaching_a_little_past_them():
    styles = {n: np.eye(3, dtype=np.float32)[i].reshape(1, 1, 3) for i, n in enumerate("abc")}
    weights = [kokoro_voice.blend(styles, "a+b+c", random.Random(seed))[0, 0] for seed in range(200)]
    assert all(abs(float(w.sum()) - 1) < 1e-6 for w in weights)  # a speaker, not a louder one
    assert len({tuple(np.round(w, 6)) for w in weights}) == 200
    lowest = min(float(w.min()) for w in weights)
    assert -1 / 3 * 0.4 - 1e-6 <= lowest < 0  # past the styles' hull, by at most 0.4 of the way to the mean
    assert max(float(w.max()) for w in weights) > 0.9


class FakeSession:
    def __init__(self):
        self.inputs = None

    def run(self, outputs, inputs):
        self.inputs = inputs
        return [np.full((1, kokoro_voice.KOKORO_SR), 0.1, np.float32)]  # one second at 24 kHz


def fake_model(monkeypatch, ipa="hɛlO"):
    session = FakeSession()
    vocab = {c: i + 1 for i, c in enumerate("hɛlO ")}
    styles = {"jf_alpha": np.arange(kokoro_voice.MAX_PHONEMES * 2, dtype=np.float32).reshape(-1, 1, 2)}
    monkeypatch.setattr(kokoro_voice, "_MODEL", {"session": session, "vocab": vocab, "styles": styles})
    monkeypatch.setattr(kokoro_voice, "phonemes", lambda text, accent="en-us": ipa)
    return session


def test_kokoro_speaks_at_the_asked_rate_with_the_style_for_its_length_at_16_khz(monkeypatch):
    session = fake_model(monkeypatch)
    audio = kokoro_voice.speak("Hello.", "jf_alpha", rate=1.2, rng=random.Random(0))
    assert abs(len(audio) - 16000) <= 2 and audio.dtype == np.float32
    assert session.inputs["tokens"].tolist() == [[0, 1, 2, 3, 4, 0]]  # padded by the start/end token
    assert abs(float(session.inputs["speed"][0]) - 1.2) < 1e-6
    assert session.inputs["style"].tolist() == [[6.0, 7.0]]  # row 3: the style for 4 phonemes


def test_kokoro_refuses_a_sentence_longer_than_its_context(monkeypatch):
    fake_model(monkeypatch, ipa="l" * kokoro_voice.MAX_PHONEMES)
    with pytest.raises(RuntimeError, match="phonemes"):
        kokoro_voice.speak("A very long sentence.", "jf_alpha", rate=1.0, rng=random.Random(0))


def test_the_test_speaker_is_never_heard_in_training_alone_or_blended():
    kokoro = [v.id for v in voices.all_voices() if v.engine == "kokoro"]
    train = [v for v in kokoro if v not in corpus.TEST_VOICES]
    assert f"kokoro:{voices.KOKORO_TEST_STYLE}" in corpus.TEST_VOICES
    assert not any(voices.KOKORO_TEST_STYLE in v for v in train)
    assert any("+" in v for v in train) and len(train) == 15  # 4 speakers, 6 blends, 4 mixes of three, 1 of four
    assert sum(v.count("+") == 3 for v in train) == 1


def test_an_engine_share_can_be_changed_for_one_corpus():
    assert corpus.engine_share("kokoro=0.5") == ("kokoro", 0.5)
    for bad in ("kokoro", "nobody=1", "kokoro=much", "kokoro=-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            corpus.engine_share(bad)
    groups = {"espeak": ["espeak:en"], "kokoro": ["kokoro:jf_alpha"]}
    rng = random.Random(0)
    picks = [voices.pick_voice(groups, rng, {"espeak": 0.0, "kokoro": 1.0}) for _ in range(20)]
    assert set(picks) == {"kokoro:jf_alpha"}


def test_punctuation_survives_phonemization_clause_by_clause(monkeypatch):
    import subprocess
    import types

    said = []

    def fake_espeak(cmd, **kwargs):
        said.append(cmd[-1])
        return types.SimpleNamespace(stdout=f" {cmd[-1].strip().lower()}\n")

    monkeypatch.setattr(subprocess, "run", fake_espeak)
    assert kokoro_voice.phonemes("And so, my pals: go home. Now?!") == "and so, my pals: go home. now?"
    assert said == ["And so", " my pals", " go home", " Now"]
