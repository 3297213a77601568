"""Whisper's log-mel front end, computed in numpy outside the ONNX graph.

Kept apart from engine.bridge.encoder so the Whisper backend can use it without importing
transformers' modeling code (about 160 MB before any weight is read).
"""

from __future__ import annotations

import functools

import numpy as np
from transformers import WhisperFeatureExtractor

WHISPER_MAX_FRAMES = 3000  # 30 s of 10 ms mel frames
SAMPLES_PER_FRAME = 320  # both encoder families give one output frame per 20 ms at 16 kHz


@functools.lru_cache(maxsize=2)
def _feature_extractor(n_mels: int) -> WhisperFeatureExtractor:
    return WhisperFeatureExtractor(feature_size=n_mels)


def whisper_log_mel(audio: np.ndarray, n_mels: int = 80, pad_to_30s: bool = False) -> np.ndarray:
    """Log-mel features (n_mels, frames) of 16 kHz audio (at most 30 s of it).

    The values are those of Whisper's padded 30 s window; by default only the frames that
    cover the audio are returned. Every frame lying wholly in the padding has the same
    value (the log-mel floor, set by the clip's loudest frame), so the STFT is computed
    only up to half a second past the audio and that value repeated for the rest.
    """
    audio = np.asarray(audio, dtype=np.float32)[: WHISPER_MAX_FRAMES * 160]
    if len(audio) < SAMPLES_PER_FRAME:  # shorter than one encoder frame
        audio = np.pad(audio, (0, SAMPLES_PER_FRAME - len(audio)))
    tail = np.pad(audio, (0, min(8000, WHISPER_MAX_FRAMES * 160 - len(audio))))
    mel = _feature_extractor(n_mels)(tail, sampling_rate=16000, return_tensors="np",
                                     padding="longest").input_features[0]
    mel = mel[:, :WHISPER_MAX_FRAMES].astype(np.float32)
    if not pad_to_30s:
        return mel[:, : len(audio) // 160]
    return np.concatenate([mel, np.repeat(mel[:, -1:], WHISPER_MAX_FRAMES - mel.shape[1], axis=1)], axis=1)
