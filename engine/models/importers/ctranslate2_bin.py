"""Read CTranslate2's `model.bin` into PyTorch tensors.

The file is a flat list of named tensors (weights and scalar attributes alike) followed by
a list of aliases (names that share another variable's data, e.g. a tied output
projection). Everything is little-endian:

    u32 binary_version (6)   str spec_name   u32 spec_revision
    u32 n_variables, then per variable:
        str name   u8 rank   u32 dim * rank   u8 dtype_id   u32 n_bytes   bytes data
    u32 n_aliases, then per alias: str alias   str target

where `str` is a u16 length (counting a trailing NUL), the UTF-8 bytes and the NUL.
Reading one tensor at a time keeps a single copy of the weights in memory.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import torch

from engine.errors import StenoError

SUPPORTED_VERSION = 6

# CTranslate2's dtype ids, in the order of its type list.
DTYPES = {
    0: torch.float32,
    1: torch.int8,
    2: torch.int16,
    3: torch.int32,
    4: torch.float16,
    5: torch.bfloat16,
}


@dataclass
class CT2Model:
    """What a `model.bin` holds: the spec that wrote it and its variables by name."""

    spec: str
    revision: int
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[self.aliases.get(name, name)]

    def __contains__(self, name: str) -> bool:
        return self.aliases.get(name, name) in self.tensors

    def scalar(self, name: str) -> int | float:
        """A 0-d attribute such as `encoder/num_heads`, as a Python number."""
        return self[name].item()

    def text(self, name: str) -> str:
        """An attribute CTranslate2 stored as a string (an int8 array of UTF-8 bytes)."""
        return self[name].numpy().tobytes().decode("utf-8")


def _read(f: BinaryIO, n: int, path: Path) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise StenoError("truncated CTranslate2 model file", path)
    return data


def _u8(f: BinaryIO, path: Path) -> int:
    return _read(f, 1, path)[0]


def _u16(f: BinaryIO, path: Path) -> int:
    return struct.unpack("<H", _read(f, 2, path))[0]


def _u32(f: BinaryIO, path: Path) -> int:
    return struct.unpack("<I", _read(f, 4, path))[0]


def _str(f: BinaryIO, path: Path) -> str:
    raw = _read(f, _u16(f, path), path)
    return raw.rstrip(b"\0").decode("utf-8")


def read_model_bin(path: str | Path) -> CT2Model:
    """Load every variable of a CTranslate2 `model.bin` (stored dtypes are kept)."""
    path = Path(path)
    with open(path, "rb") as f:
        version = _u32(f, path)
        if version != SUPPORTED_VERSION:
            raise StenoError(
                f"CTranslate2 binary version {version}, only {SUPPORTED_VERSION} is supported",
                path,
            )
        model = CT2Model(spec=_str(f, path), revision=_u32(f, path))
        for _ in range(_u32(f, path)):
            name = _str(f, path)
            shape = [_u32(f, path) for _ in range(_u8(f, path))]
            dtype_id = _u8(f, path)
            if dtype_id not in DTYPES:
                raise StenoError(f"variable {name} has unknown dtype id {dtype_id}", path)
            data = bytearray(_read(f, _u32(f, path), path))
            tensor = torch.frombuffer(data, dtype=DTYPES[dtype_id]) if data else torch.empty(0)
            model.tensors[name] = tensor.reshape(shape)
        for _ in range(_u32(f, path)):
            alias = _str(f, path)
            model.aliases[alias] = _str(f, path)
        if f.read(1):
            raise StenoError("unexpected bytes after the alias table", path)
    return model
