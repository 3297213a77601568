"""A fingerprint of a model folder's tensors: what a graph or cache made from them must match.

Both families keep things made from their weights beside them (an ONNX graph, an int8
decoder or LM) and must know when the weights changed; hashing them is 0.1-0.3 s of every
start, so the fingerprint itself is kept with the files' sizes and times.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from engine.errors import ModelFolderError, first_line
from engine.files import atomic_write_text
from engine.models.integrity import stamp

FINGERPRINTS = ".cache/fingerprints.json"  # hidden: not among the model's files, its id or manifest


def tensors_fingerprint(sub: Path, select, salt: dict) -> str:
    """sha256 over `salt` and the tensors whose names `select` takes (names, dtypes, shapes,
    bytes) in the folder's safetensors files: what a graph or cache made from them must match.

    Hashing is 0.1-0.3 s of every start, so the result is kept in the model folder's hidden
    FINGERPRINTS with the files' sizes and times, and hashed again only when one of those
    changed (as engine.models.integrity checks installed files)."""
    paths = sorted(Path(sub).glob("*.safetensors"))
    memo_path = Path(sub).parent / FINGERPRINTS
    key = json.dumps(salt, sort_keys=True)
    try:
        stamps = {p.name: stamp(p) for p in paths}
        memo = json.loads(memo_path.read_text()) if memo_path.is_file() else {}
    except (OSError, ValueError):
        stamps, memo = None, {}
    kept = memo.get(key) if isinstance(memo, dict) else None
    if stamps is not None and isinstance(kept, dict) and kept.get("files") == stamps:
        return kept["fingerprint"]
    fingerprint = hash_tensors(paths, select, salt)
    if stamps is not None:
        try:
            memo_path.parent.mkdir(exist_ok=True)
            atomic_write_text(memo_path, json.dumps({**(memo if isinstance(memo, dict) else {}),
                                                     key: {"files": stamps, "fingerprint": fingerprint}}))
        except OSError:
            pass  # a read-only folder: hashed again next time
    return fingerprint


def hash_tensors(paths: list[Path], select, salt: dict) -> str:
    h = hashlib.sha256(json.dumps(salt).encode())
    for path in paths:
        header, start = safetensors_header(path)
        with open(path, "rb") as f:
            for name in sorted(k for k in header if k != "__metadata__" and select(k)):
                info = header[name]
                h.update(f"{name}{info['dtype']}{info['shape']}".encode())
                a, b = info["data_offsets"]
                f.seek(start + a)
                left = b - a
                while left > 0:
                    chunk = f.read(min(left, 1 << 22))
                    if not chunk:
                        raise ModelFolderError("weights file is truncated", path)
                    h.update(chunk)
                    left -= len(chunk)
    return h.hexdigest()


def safetensors_header(path: Path) -> tuple[dict, int]:
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size < 100 << 20:
                raise ValueError("bad header size")
            header = json.loads(f.read(size))
    except (OSError, ValueError) as e:
        raise ModelFolderError(f"unreadable weights file ({first_line(e)})", path) from None
    return header, 8 + size
