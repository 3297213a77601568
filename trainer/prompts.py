"""Vocabulary hints in training prompts, so an adapter learns to use a hint list.

At transcription time a user's word list goes into the prompt (engine/decoding/hints.py). An adapter
trained only on hint-free prompts never saw one; so a share of the training clips carries
some of the user's terms that the sentence really holds among others from the list that
it does not (the hint list says "may occur"), and a share of the rehearsal clips carries
terms none of which is said: a list of words that are not spoken must change nothing.
"""

from __future__ import annotations

import random

from engine.decoding.hints import said_terms


def sample_hints(text: str, terms: list[str], rng: random.Random, share: float) -> list[str] | None:
    """With probability `share`: 1-3 of the terms said in `text` among 0-4 that are not, or
    (when none is said) 1-4 that are not; shuffled. Otherwise None: no hints."""
    if not terms or rng.random() >= share:
        return None
    said = said_terms(text, terms)
    own = rng.sample(said, min(len(said), rng.randint(1, 3))) if said else []
    others = [t for t in terms if t not in said]
    n_other = rng.randint(0, 4) if own else rng.randint(1, 4)
    picked = own + rng.sample(others, min(len(others), n_other))
    rng.shuffle(picked)
    return picked or None
