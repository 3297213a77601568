"""CTC prefix scores: how well a partial transcript agrees with a ctc bridge's frame posteriors.

Why: a bridge model's LM, trained on synthetic speech, writes fluent invented text where the
speech is unclear ("And so my father said..." for jfk.wav), while the bridge's own CTC head,
which reads every frame, does not. Joint decoding (Watanabe et al., 2017, hybrid
CTC/attention) scores each candidate next token by a weighted sum of the LM's log-probability
and the change in CTC prefix probability: log P(the transcript starts with this prefix | the
frames), summed over every alignment by the usual forward recursion. Measured on the default
model: docs/model_history.md (the table of what was tried).
"""

from __future__ import annotations

import numpy as np

NEG_INF = -1e30
# Frames where the current prefix's probability is this far (in nats) below its best frame
# are skipped: the prefix cannot have ended there, and the recursion is the cost of a step.
PRUNE = 30.0
TOP_ROWS = 32  # frames renormalised by penalize_blank, and ordered by likely_labels, at once


def best_path(frame_labels) -> list[int]:
    """Greedy CTC reading of each frame's most likely label: repeats merged, blanks (0) dropped."""
    out, prev = [], 0
    for label in frame_labels:
        label = int(label)
        if label != 0 and label != prev:
            out.append(label)
        prev = label
    return out


def label_tokens(token_to_label: np.ndarray) -> np.ndarray:
    """The inverse of a ctc bridge's token_to_label: the LM token of each CTC label (0 for blank)."""
    out = np.zeros(int(token_to_label.max()) + 1, dtype=np.int64)
    known = np.nonzero(token_to_label > 0)[0]
    out[token_to_label[known]] = known
    return out


def penalize_blank(logp: np.ndarray, penalty: float) -> np.ndarray:
    """Frame log-probabilities with the blank's lowered by `penalty` nats, renormalised.

    Why: a head trained on synthetic speech is unsure on real speech (blank ~0.4, the word
    ~0.5 on a frame), and then reading the word's frame as blank costs the CTC score little,
    so the LM drops words it finds unlikely ("an ill disposed man" for "... young man").
    Renormalised, the scores stay log-probabilities and only fall as a prefix grows.
    """
    if penalty == 0:
        return logp
    # in float64 a few frames at a time, kept in float32: the whole clip in float64 was 56 MB
    # for 4.5 s (the scorer reads the columns it needs in float64)
    out = np.empty(np.shape(logp), dtype=np.float32)
    for i in range(0, len(out), TOP_ROWS):
        x = np.array(logp[i:i + TOP_ROWS], dtype=np.float64)
        x[:, 0] -= penalty
        out[i:i + TOP_ROWS] = x - np.logaddexp.reduce(x, axis=1, keepdims=True)
    return out


class CTCPrefixScorer:
    """One clip's prefix state; `extend` scores candidate labels, `advance` commits one.

    `logp` is (T, labels) frame log-probabilities with label 0 the blank, kept as given
    (float32 from the graph): the recursion reads the columns it needs in float64. The state holds, for
    the current prefix g and each frame t, the log-probability of having emitted g by frame t
    ending in a label (`ending_label`) or in blank (`ending_blank`).
    """

    def __init__(self, logp: np.ndarray):
        self.logp = np.asarray(logp)
        self.blank = self.logp[:, 0].astype(np.float64)
        n = self.logp.shape[0]
        self.ending_label = np.full(n, NEG_INF)
        self.ending_blank = np.cumsum(self.blank)  # the empty prefix: blanks only
        self.last: int | None = None
        self.score = 0.0  # log P(g is a prefix), 0 for the empty prefix
        self._top: np.ndarray | None = None  # each frame's most probable labels

    def start_frame(self) -> int:
        """The first frame where the current prefix may have ended (see PRUNE)."""
        mass = np.logaddexp(self.ending_blank, self.ending_label)
        return int(np.argmax(mass > mass.max() - PRUNE))

    def extend(self, labels: np.ndarray, start: int | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prefix log-probabilities of g + c for each label c in `labels` (K,), and the (T, K)
        states to pass to `advance` for the one chosen. Frames before `start` (default:
        `start_frame()`) are taken as impossible ends for g + c."""
        labels = np.asarray(labels, dtype=np.int64)
        start = self.start_frame() if start is None else start
        x = self.logp[:, labels].astype(np.float64)  # (T, K)
        n, k = x.shape
        ending_label = np.full((n, k), NEG_INF)
        ending_blank = np.full((n, k), NEG_INF)
        if self.last is None and start == 0:
            ending_label[0] = x[0]
        before = np.logaddexp(self.ending_blank, self.ending_label)
        repeat = labels == self.last  # a repeated label needs a blank between the two
        score = ending_label[0].copy()
        for t in range(max(1, start), n):
            begin = np.where(repeat, self.ending_blank[t - 1], before[t - 1])  # c begins at frame t
            ending_label[t] = np.logaddexp(ending_label[t - 1], begin) + x[t]
            ending_blank[t] = np.logaddexp(ending_blank[t - 1], ending_label[t - 1]) + self.blank[t]
            score = np.logaddexp(score, begin + x[t])
        return score, ending_label, ending_blank

    def advance(self, label: int, score: float, ending_label: np.ndarray, ending_blank: np.ndarray) -> None:
        self.ending_label, self.ending_blank = ending_label.copy(), ending_blank.copy()
        self.last, self.score = int(label), float(score)

    def final_score(self) -> float:
        """log P(the transcript is exactly the current prefix | the frames)."""
        return float(np.logaddexp(self.ending_label[-1], self.ending_blank[-1]))

    def likely_labels(self, start: int = 0, per_frame: int = 2) -> np.ndarray:
        """Labels among the `per_frame` most probable (blank excluded) of the frames from
        `start` on: candidates the LM may not rank high but the speech still holds."""
        if self._top is None:  # a few frames at a time: over all of them, the order was 50 MB kept for 2 columns
            self._top = np.concatenate([np.argpartition(-self.logp[i:i + TOP_ROWS], per_frame - 1, axis=1)[:, :per_frame]
                                        for i in range(0, len(self.logp), TOP_ROWS)]
                                       or [np.zeros((0, per_frame), dtype=np.intp)])
        top = self._top[start:]
        return np.unique(top[top > 0])
