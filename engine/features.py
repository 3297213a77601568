"""Whisper's log-mel front end, computed outside the ONNX graph.

Whisper's recipe (as transformers' WhisperFeatureExtractor computes it when torch is there):
a 400-point periodic Hann STFT every 160 samples (reflect-padded at both ends), power
spectrum without the last frame, Slaney mel filters up to 8 kHz, log10 floored at 1e-10,
then clipped to 8 below the maximum and scaled as (x + 4) / 4. Written here rather than
imported: importing transformers costs 0.3-1 s and 20 MB of every start, for one STFT.
tests/engine/test_audio.py checks the values against transformers'.
"""

from __future__ import annotations

import functools

import numpy as np

WHISPER_MAX_FRAMES = 3000  # 30 s of 10 ms mel frames
SAMPLES_PER_FRAME = 320  # both encoder families give one output frame per 20 ms at 16 kHz
SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = 3.0 * hz / 200.0
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (mel - 15.0)), 200.0 * mel / 3.0)


@functools.lru_cache(maxsize=2)
def mel_filters(n_mels: int) -> np.ndarray:
    """(N_FFT // 2 + 1, n_mels) triangular Slaney-normalised filters from 0 to 8 kHz."""
    fft_freqs = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(8000.0), n_mels + 2))
    widths = np.diff(edges)
    offsets = edges[None, :] - fft_freqs[:, None]
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (edges[2:n_mels + 2] - edges[:n_mels]))[None, :]


def whisper_log_mel(audio: np.ndarray, n_mels: int = 80, pad_to_30s: bool = False) -> np.ndarray:
    """Log-mel features (n_mels, frames) of 16 kHz audio (at most 30 s of it).

    The values are those of Whisper's padded 30 s window; by default only the frames that
    cover the audio are returned. Every frame lying wholly in the padding has the same
    value (the log-mel floor, set by the clip's loudest frame), so the STFT is computed
    only up to half a second past the audio and that value repeated for the rest.
    """
    import torch

    audio = np.asarray(audio, dtype=np.float32)[: WHISPER_MAX_FRAMES * HOP]
    if len(audio) < SAMPLES_PER_FRAME:  # shorter than one encoder frame
        audio = np.pad(audio, (0, SAMPLES_PER_FRAME - len(audio)))
    tail = np.pad(audio, (0, min(8000, WHISPER_MAX_FRAMES * HOP - len(audio))))
    with torch.no_grad():
        stft = torch.stft(torch.from_numpy(tail), N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
        power = (stft[..., :-1].abs() ** 2).contiguous()
        mel = torch.from_numpy(mel_filters(n_mels)).to(torch.float32).T @ power
        log_mel = torch.clamp(mel, min=1e-10).log10()
        log_mel = (torch.maximum(log_mel, log_mel.max() - 8.0) + 4.0) / 4.0
    mel = log_mel.numpy()[:, :WHISPER_MAX_FRAMES].astype(np.float32)
    if not pad_to_30s:
        return mel[:, : len(audio) // HOP]
    return np.concatenate([mel, np.repeat(mel[:, -1:], WHISPER_MAX_FRAMES - mel.shape[1], axis=1)], axis=1)
