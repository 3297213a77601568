"""Who spoke when, from the speech the VAD already found.

    VAD speech frames -> 1.5 s windows every 0.75 s -> speaker embeddings (voice.py)
    -> agglomerative clustering (cosine, average linkage; the count found by a distance
    threshold, or given) -> windows moved to their nearest speaker centre -> turns

Overlapped speech is not separated: each moment gets one speaker. A stretch of speech too
short for a window of its own takes the speaker of the nearest window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from engine.audio import SAMPLE_RATE, VAD_FRAME_S, VAD_WINDOW, AudioChunk, speech_probabilities
from engine.errors import StenoError

WINDOW_S = 1.5
STEP_S = 0.75
SPEECH_THRESHOLD = 0.5
MIN_SPEECH_S = 0.3  # speech shorter than this alone (a cough, a click) makes no window
# Two clusters closer than this cosine distance are one voice (tuned on the bench's interviews,
# docs/speakers.md).
DISTANCE_THRESHOLD = 0.42
# A voice found in fewer windows than this (and less than 5% of them) in `auto` mode is an
# outlier (laughter, a cough, a door): it joins the nearest real voice.
MIN_CLUSTER_WINDOWS = 4
MAX_SPEAKERS = 20
MERGE_GAP_S = 0.5  # one speaker's turns closer than this are one turn
# Clustering compares every pair of windows (memory and time grow with the square): past this
# many (about 50 min of speech), an even sample is clustered and every window then goes to its
# nearest speaker centre (_refine).
MAX_CLUSTERED = 4000


@dataclass
class Turn:
    start: float
    end: float
    speaker: int  # 0-based, in order of first appearance


@dataclass
class Diarization:
    turns: list[Turn]
    centroids: np.ndarray  # (speakers, 256) mean embedding per speaker, unit length

    @property
    def speakers(self) -> int:
        return len(self.centroids)

    def speaker_at(self, start: float, end: float) -> int | None:
        """The speaker who speaks most of [start, end], or the nearest turn's speaker."""
        if not self.turns:
            return None
        overlap: dict[int, float] = {}
        for t in self.turns:
            o = min(end, t.end) - max(start, t.start)
            if o > 0:
                overlap[t.speaker] = overlap.get(t.speaker, 0.0) + o
        if overlap:
            return max(overlap, key=overlap.get)
        mid = (start + end) / 2
        return min(self.turns, key=lambda t: max(t.start - mid, mid - t.end, 0.0)).speaker


def parse_speakers(value: str | int | None) -> int | None:
    """`auto` (None) or a number of speakers from 1 to MAX_SPEAKERS; StenoError otherwise."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise StenoError(f"--speakers must be 'auto' or a number of speakers, not {value!r}") from None
    if not 1 <= n <= MAX_SPEAKERS:
        raise StenoError(f"--speakers must be 'auto' or from 1 to {MAX_SPEAKERS}, not {n}")
    return n


def diarize(audio: np.ndarray, speakers: int | None = None, *, chunks: list[AudioChunk] | None = None,
            progress: Callable[[float], None] | None = None, check: Callable[[], None] | None = None) -> Diarization:
    """Turns of `audio` (16 kHz). `speakers`: how many there are, or None to find out. `chunks`
    from engine.audio.split_on_speech carry the VAD's probabilities, so it is not run again.
    `check` is called between batches of windows and raises to stop (the caller's Cancelled)."""
    progress = progress or (lambda f: None)
    if speakers is not None and not 1 <= speakers <= MAX_SPEAKERS:
        raise StenoError(f"number of speakers must be from 1 to {MAX_SPEAKERS}, not {speakers}")
    windows = speaker_windows(audio, chunks, progress=progress, check=check)
    if not len(windows.embeddings):
        return Diarization([], np.zeros((0, 256), np.float32))
    emb = windows.embeddings
    if len(emb) > MAX_CLUSTERED:
        sample = np.linspace(0, len(emb) - 1, MAX_CLUSTERED).round().astype(int)
        labels = _nearest(emb, emb[sample], cluster(emb[sample], speakers))
    else:
        labels = cluster(emb, speakers)
    progress(1.0)
    return windows.diarization(labels)


@dataclass
class Windows:
    """The speech regions, the start of each window in each region, and the windows' embeddings
    (in time order): what clustering works on."""
    regions: list[tuple[float, float]]
    starts: list[list[float]]
    embeddings: np.ndarray  # (windows, 256), unit length

    def diarization(self, labels: np.ndarray) -> Diarization:
        """Turns from a label per window, after a few steps to the nearest speaker centre."""
        labels, centroids = _refine(self.embeddings, labels)
        return Diarization(_turns(self.regions, self.starts, labels), centroids)


def speaker_windows(audio: np.ndarray, chunks: list[AudioChunk] | None = None, *,
                    progress: Callable[[float], None] | None = None,
                    check: Callable[[], None] | None = None) -> Windows:
    """The embeddings of 1.5 s windows over the speech in `audio` (see diarize)."""
    progress = progress or (lambda f: None)
    check = check or (lambda: None)
    regions = _regions(_speech_frames(audio, chunks))
    per_region = [_windows(a, b) for a, b in regions]
    windows = [s for w in per_region for s in w]
    if not windows:
        return Windows(regions, per_region, np.zeros((0, 256), np.float32))
    from engine.speakers.voice import voice_encoder

    encoder = voice_encoder()
    width = round(WINDOW_S * SAMPLE_RATE)
    embeddings = []
    for b in range(0, len(windows), 256):
        check()
        clips = [_clip(audio, s, width) for s in windows[b:b + 256]]
        embeddings.append(encoder.embed(clips))
        progress(min(1.0, (b + 256) / len(windows)) * 0.95)
    return Windows(regions, per_region, np.concatenate(embeddings))


def cluster(embeddings: np.ndarray, speakers: int | None) -> np.ndarray:
    """A label per embedding: `speakers` clusters, or as many as DISTANCE_THRESHOLD finds."""
    n = len(embeddings)
    if n == 1 or speakers == 1:
        return np.zeros(n, dtype=int)
    from sklearn.cluster import AgglomerativeClustering

    if speakers is not None:
        model = AgglomerativeClustering(n_clusters=min(speakers, n), metric="cosine", linkage="average")
        return model.fit_predict(embeddings)
    model = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                    distance_threshold=DISTANCE_THRESHOLD)
    labels = model.fit_predict(embeddings)
    counts = np.bincount(labels)
    small = (counts < MIN_CLUSTER_WINDOWS) & (counts < 0.05 * n)
    if small.any() and not small.all():
        big = np.flatnonzero(~small)
        centres = unit_rows(np.stack([embeddings[labels == k].mean(0) for k in big]))
        for i in np.flatnonzero(small[labels]):
            labels[i] = big[int(np.argmax(centres @ embeddings[i]))]
    return labels


def _nearest(emb: np.ndarray, sample: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Labels for all of `emb` from a clustered sample: each to its nearest sample cluster's centre."""
    keep = np.unique(labels)
    centres = unit_rows(np.stack([sample[labels == k].mean(0) for k in keep]))
    return keep[np.argmax(emb @ centres.T, axis=1)]


def _refine(emb: np.ndarray, labels: np.ndarray, rounds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Each window to its nearest speaker centre (a few k-means steps from the clustering):
    average linkage leaves a window of a long turn with the wrong voice now and then.
    Labels come back numbered in order of first appearance."""
    for _ in range(rounds):
        keep = np.unique(labels)
        centres = unit_rows(np.stack([emb[labels == k].mean(0) for k in keep]))
        new = keep[np.argmax(emb @ centres.T, axis=1)]
        if np.array_equal(new, labels):
            break
        labels = new
    order = {k: i for i, k in enumerate(dict.fromkeys(labels.tolist()))}
    labels = np.array([order[k] for k in labels.tolist()])
    centres = unit_rows(np.stack([emb[labels == k].mean(0) for k in range(len(order))]))
    return labels, centres


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (cosine similarity is then a dot product)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


def _speech_frames(audio: np.ndarray, chunks: list[AudioChunk] | None) -> np.ndarray:
    """Per 32 ms VAD frame of the whole file: speech or not."""
    n = -(-len(audio) // VAD_WINDOW)
    if chunks is None:
        return speech_probabilities(audio) >= SPEECH_THRESHOLD
    speech = np.zeros(n, dtype=bool)
    for c in chunks:
        if c.speech_probs is None:
            continue
        a = int(round(c.start * SAMPLE_RATE)) // VAD_WINDOW
        probs = c.speech_probs[: max(0, n - a)]
        speech[a:a + len(probs)] |= probs >= SPEECH_THRESHOLD
    return speech


def _regions(speech: np.ndarray) -> list[tuple[float, float]]:
    """Runs of speech frames as (start, end) seconds, pauses under 0.3 s bridged."""
    out: list[list[float]] = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], speech.astype(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2]):
        s, e = a * VAD_FRAME_S, b * VAD_FRAME_S
        if out and s - out[-1][1] < 0.3:
            out[-1][1] = e
        else:
            out.append([s, e])
    return [(s, e) for s, e in out if e - s >= MIN_SPEECH_S]


def _windows(start: float, end: float) -> list[float]:
    """Window starts covering [start, end] about every STEP_S: one centred window when it is
    shorter than one (the window then holds a little of what is around it)."""
    if end - start <= WINDOW_S:
        return [max(0.0, (start + end - WINDOW_S) / 2)]
    n = int(np.ceil((end - start - WINDOW_S) / STEP_S)) + 1
    step = (end - start - WINDOW_S) / (n - 1)
    return [start + i * step for i in range(n)]


def _clip(audio: np.ndarray, start: float, width: int) -> np.ndarray:
    a = int(round(start * SAMPLE_RATE))
    clip = audio[a:a + width]
    return clip if len(clip) == width else np.pad(clip, (0, width - len(clip)))


def _turns(regions: list[tuple[float, float]], per_region: list[list[float]], labels: np.ndarray) -> list[Turn]:
    """Each region split between its windows at the midpoints of their centres."""
    turns: list[Turn] = []
    first = 0
    for (a, b), starts in zip(regions, per_region):
        centres = [s + WINDOW_S / 2 for s in starts]
        cuts = [a] + [(x + y) / 2 for x, y in zip(centres[:-1], centres[1:])] + [b]
        spks = labels[first:first + len(starts)]
        first += len(starts)
        for spk, s, e in zip(spks.tolist(), cuts[:-1], cuts[1:]):
            if turns and turns[-1].speaker == spk and s - turns[-1].end < MERGE_GAP_S:
                turns[-1].end = e
            else:
                turns.append(Turn(s, e, spk))
    return turns
