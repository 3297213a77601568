"""Speaker embeddings: a 256-d vector per stretch of speech, close for the same voice.

The weights are Resemblyzer's GE2E speaker encoder (MIT), shipped inside the pinned
`resemblyzer==0.1.4` wheel as `pretrained.pt` and checked by sha256 before loading. Only
the state dict is used: the network (3-layer LSTM over 40 mel bands, a linear layer, ReLU,
L2 norm) is rebuilt here, so the package's own imports (librosa, webrtcvad) are not needed.
Its input is a mel power spectrogram with librosa's defaults (Slaney mel scale and norm,
periodic Hann window, centred frames), made here with torch and transformers' filter bank.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.errors import StenoError

WEIGHTS_PACKAGE = "resemblyzer"
WEIGHTS_VERSION = "0.1.4"
WEIGHTS_FILE = "pretrained.pt"
WEIGHTS_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"
SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
HIDDEN = 256
LAYERS = 3
TARGET_DBFS = -30.0  # the encoder was trained on speech raised to this loudness


def weights_path() -> Path:
    """pretrained.pt inside the installed package, found without importing the package."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise StenoError(f"the speaker model is not installed: pip install {WEIGHTS_PACKAGE}=={WEIGHTS_VERSION} --no-deps")
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        raise StenoError(f"the speaker model's weights are missing; reinstall {WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}", path)
    return path


class VoiceEncoder:
    """Resemblyzer's network, loaded from a checked state dict; runs on the CPU."""

    def __init__(self, path: Path | None = None):
        import torch

        from engine.models.integrity import sha256_file

        path = path or weights_path()
        if sha256_file(path) != WEIGHTS_SHA256:
            raise StenoError(f"the speaker model's weights are damaged (sha256 differs); reinstall "
                             f"{WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}", path)
        state = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
        self.lstm = torch.nn.LSTM(N_MELS, HIDDEN, LAYERS, batch_first=True)
        self.linear = torch.nn.Linear(HIDDEN, HIDDEN)
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        self.lstm.eval()
        self.window = torch.hann_window(N_FFT)
        self.mel = torch.from_numpy(_mel_filters()).float()

    def mels(self, audio: np.ndarray):
        """(frames, 40) mel power spectrogram of 16 kHz audio, loudness raised to TARGET_DBFS."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        rms = float(torch.sqrt(torch.mean(x ** 2))) if len(x) else 0.0
        if rms > 0:
            gain = 10 ** ((TARGET_DBFS - 20 * np.log10(rms)) / 20)
            x = x * max(1.0, gain)  # raise quiet speech, never lower loud speech (as Resemblyzer does)
        spec = torch.stft(x, N_FFT, HOP, window=self.window, center=True, pad_mode="constant",
                          return_complex=True).abs() ** 2
        return (self.mel @ spec).T

    def embed(self, windows: list[np.ndarray], batch: int = 64) -> np.ndarray:
        """(n, 256) unit vectors, one per clip; clips of equal length batch together. One torch
        thread: the LSTM's steps are too small to share, and on a busy 2-core machine two
        threads made it 15-40x slower (docs/speakers.md)."""
        import torch

        out = np.zeros((len(windows), HIDDEN), dtype=np.float32)
        by_len: dict[int, list[int]] = {}
        for i, w in enumerate(windows):
            by_len.setdefault(len(w), []).append(i)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                for idx in by_len.values():
                    for b in range(0, len(idx), batch):
                        part = idx[b:b + batch]
                        _, (hidden, _) = self.lstm(torch.stack([self.mels(windows[i]) for i in part]))
                        e = torch.relu(self.linear(hidden[-1]))
                        out[part] = (e / torch.clamp(torch.linalg.vector_norm(e, dim=1, keepdim=True), min=1e-8)).numpy()
        finally:
            torch.set_num_threads(threads)
        return out


def _mel_filters() -> np.ndarray:
    """(40, 201) Slaney-scale, Slaney-normalised filters: librosa.filters.mel's defaults."""
    from transformers.audio_utils import mel_filter_bank

    return mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=N_MELS, min_frequency=0.0,
                           max_frequency=SAMPLE_RATE / 2, sampling_rate=SAMPLE_RATE, norm="slaney",
                           mel_scale="slaney").T


@lru_cache(maxsize=1)
def voice_encoder() -> VoiceEncoder:
    """The one loaded encoder (17 MB, about 0.2 s to load)."""
    return VoiceEncoder()
