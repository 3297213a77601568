"""Named voices: a speaker the user saved once is called by name in later transcripts.

A profile is a name and the mean speaker embedding (engine.speakers.voice) of the speech it
was saved from. A transcript's speaker takes a profile's name when its own mean embedding is
at least MATCH_SIMILARITY alike (cosine); each profile names at most one speaker, the most
alike. Where profiles are kept (and encrypted) is the app's business (app/speaker_profiles.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import StenoError

# Mean embeddings of one voice from different recordings are 0.8-0.95 alike; of two voices,
# 0.4-0.75 (docs/speakers.md).
MATCH_SIMILARITY = 0.8
MIN_SECONDS = 2.0  # less speech than this gives too unsteady a voice to recognise later


@dataclass
class Profile:
    name: str
    embedding: np.ndarray  # (256,) unit vector
    seconds: float = 0.0  # how much speech it was made from


def voice_of(audio: np.ndarray, spans: list[tuple[float, float]]) -> tuple[np.ndarray, float]:
    """The mean embedding of the speech in `spans` (seconds) of 16 kHz audio, and its length.
    StenoError when there is too little speech to tell a voice by."""
    from engine.speakers.diarize import SAMPLE_RATE, STEP_S, WINDOW_S, unit_rows
    from engine.speakers.voice import voice_encoder

    width = round(WINDOW_S * SAMPLE_RATE)
    clips, seconds = [], 0.0
    for start, end in spans:
        a, b = max(0, round(start * SAMPLE_RATE)), min(len(audio), round(end * SAMPLE_RATE))
        if b <= a:
            continue
        seconds += (b - a) / SAMPLE_RATE
        piece = audio[a:b]
        for s in range(0, max(1, len(piece) - width + 1), round(STEP_S * SAMPLE_RATE)):
            clip = piece[s:s + width]
            clips.append(clip if len(clip) == width else np.pad(clip, (0, width - len(clip))))
    if seconds < MIN_SECONDS:
        raise StenoError(f"{seconds:.1f} s of speech is too little to save a voice from (at least {MIN_SECONDS:.0f} s)")
    return unit_rows(voice_encoder().embed(clips).mean(0, keepdims=True))[0], seconds


def match_profiles(centroids: np.ndarray, profiles: list[Profile],
                   threshold: float = MATCH_SIMILARITY) -> list[str | None]:
    """For each speaker (a row of `centroids`), the name of the profile it matches, or None."""
    names: list[str | None] = [None] * len(centroids)
    if not profiles or not len(centroids):
        return names
    sims = centroids @ np.stack([p.embedding for p in profiles]).T
    for flat in np.argsort(-sims, axis=None):
        i, j = np.unravel_index(flat, sims.shape)
        if sims[i, j] < threshold:
            break
        if names[i] is None and profiles[j].name not in names:
            names[i] = profiles[j].name
    return names
