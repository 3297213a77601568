"""The speaker projection: GE2E embeddings mapped to a space where voices, not words, differ.

A linear discriminant analysis trained by `recipes/speaker_projection.py` on real speakers
the benchmark never uses (the accent archive and speechocean762; resources/speakers/
projection.json lists them and the data's commits). Clustering works in this space;
saved voices and speaker centres stay in GE2E's own (profiles.py).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.errors import StenoError

PROJECTION_FILE = Path(__file__).resolve().parents[2] / "resources" / "speakers" / "projection.npz"
PROJECTION_SHA256 = "cce8a5b751129f4e5a42766c8e1b7890b71f749143e5e0c540f72d1f2dcdeab4"


@lru_cache(maxsize=1)
def load_projection(path: Path = PROJECTION_FILE) -> tuple[np.ndarray, np.ndarray]:
    """(mean, matrix), checked by sha256: a damaged file must not quietly change who is who."""
    from engine.models.integrity import sha256_file

    if not path.is_file():
        raise StenoError("the speaker projection is missing from this Steno build", path)
    if sha256_file(path) != PROJECTION_SHA256:
        raise StenoError("the speaker projection is damaged (sha256 differs)", path)
    with np.load(path, allow_pickle=False) as f:
        return f["mean"].astype(np.float32), f["matrix"].astype(np.float32)


def project(embeddings: np.ndarray) -> np.ndarray:
    """(n, 256) GE2E embeddings -> (n, dims) unit vectors in the projected space."""
    mean, matrix = load_projection()
    x = (np.asarray(embeddings, np.float32) - mean) @ matrix
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)
