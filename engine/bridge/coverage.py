"""Where a bridge model's LM stopped short of what its CTC head heard.

The bridge family writes no timestamps, so nothing in its text says where in a window it
stopped; on a 30-second window the LM sometimes ends after a few sentences (beam 1 lost 24
of 64 sentences this way: docs/fidelity.md). A ctc bridge's head reads every frame, though.
Its greedy reading, in LM tokens, is aligned with what the LM wrote: when the LM's text
ends on a match well before the end of the head's reading, the clip is covered only up to
that point, and the Transcriber decodes the rest again (ChunkResult.covered), as it does
for Whisper's unfinished windows.
"""

from __future__ import annotations

from difflib import SequenceMatcher

import numpy as np

# Tokens the head heard after the LM's last matching one: fewer is the head's own noise.
MIN_REST_TOKENS = 4
# Tokens the LM wrote after its last match: more means it went on with text of its own
# (a paraphrase, not a stop), and decoding the rest again would write that speech twice.
MAX_UNMATCHED_END = 2
MIN_REST_SECONDS = 0.5  # too little audio after the stop to decode on its own


def heard_tokens(frame_logp: np.ndarray) -> list[tuple[int, int]]:
    """The head's greedy reading as (label, first frame) pairs: repeats merged, blanks dropped."""
    out, prev = [], 0
    for frame, label in enumerate(np.asarray(frame_logp).argmax(-1).tolist()):
        if label != 0 and label != prev:
            out.append((label, frame))
        prev = label
    return out


def covered_seconds(frame_logp: np.ndarray, tokens: list[int], token_to_label: np.ndarray,
                    seconds: float) -> float | None:
    """Seconds of a `seconds`-long clip the LM's `tokens` account for, by the CTC head's
    frame log-probabilities (T', labels); None when they account for all of it."""
    heard = heard_tokens(frame_logp)
    if len(heard) < MIN_REST_TOKENS or not len(frame_logp):
        return None
    known = [t for t in tokens if 0 <= t < len(token_to_label)]
    written = [int(token_to_label[t]) for t in known if token_to_label[t] > 0]
    blocks = [b for b in SequenceMatcher(None, written, [lab for lab, _ in heard],
                                         autojunk=False).get_matching_blocks() if b.size]
    if not blocks:
        return None  # nothing in common: no telling where the LM stopped
    last = blocks[-1]
    if len(written) - (last.a + last.size) > MAX_UNMATCHED_END:
        return None
    rest = last.b + last.size
    if len(heard) - rest < MIN_REST_TOKENS:
        return None
    frame_s = seconds / len(frame_logp)
    # between the last token both agree on and the next one the head heard: a CTC head marks
    # a token at about one frame of its sound, so the midpoint keeps the rest of that word
    resume = (heard[rest - 1][1] + heard[rest][1] + 1) / 2 * frame_s
    if resume < MIN_REST_SECONDS or seconds - resume < MIN_REST_SECONDS:
        return None
    return resume
