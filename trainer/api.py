"""The trainer's public API: what the CLI (`steno train`, `steno adapters`) and the app's
trainer tab call. Plain dataclasses in, plain dataclasses out; long calls report
`Progress` through a callback and stop cleanly when `cancel()` returns True.

    report = collect_data([Path("dictations")], word_list=Path("drugs.txt"))
    print(report.summary())
    result = train_adapter("default", report, Path("~/adapters/cardiology"), TrainSettings(epochs=5))

The records are defined in trainer.records and re-exported here. The functions import their
modules when called, so importing this one stays cheap (no torch) for the CLI and the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from trainer.records import AdapterInfo, AdapterResult, DataReport, Pair, Progress, Scores, TrainSettings, scores_table

__all__ = ["AdapterInfo", "AdapterResult", "DataReport", "Pair", "Progress", "Scores", "TrainSettings",
           "adapters_dir", "collect_data", "delete_adapter", "list_adapters", "merge_adapter", "scores_table",
           "speak_terms", "train_adapter"]


def collect_data(data: list[Path] = (), text: list[Path] = (), word_list: Path | None = None,
                 eval_data: Path | None = None, eval_fraction: float = 0.15, seed: int = 0,
                 labels: dict[str, str] | None = None) -> DataReport:
    """Read and check every item; bad items are rejected with a reason, never raised.

    data: folders of audio + same-named .txt, `audio<TAB>text` .tsv / `audio,text` .csv
    manifests, JSONL manifests ({"audio": ..., "text": ...}), or single audio files.
    text: .txt/.md/.docx documents or folders of them (LM-side adaptation).
    word_list: one term per line; the terms scored by term recall, and trained on as text.
    eval_data: an explicit held-out set; otherwise `eval_fraction` of the pairs is split off.
    labels: {folder path: name to show}, for data read from a private copy (an encrypted
    project's decrypted clips): the report and its errors name the project, not the copy.
    """
    from trainer.data import collect

    return collect(list(data), list(text), word_list, eval_data, eval_fraction, seed, labels)


def speak_terms(data: DataReport, count: int | None = None, seed: int = 0,
                callback: Callable[[Progress], None] | None = None, cancel: Callable[[], bool] | None = None
                ) -> DataReport:
    """`data` with sentences holding its terms, spoken by TTS voices, added as training pairs
    (and as held-out pairs in other voices when it has none): what lets a word list or documents
    teach a model of either family without the user's recordings. `count` sentences (default:
    4 per term, 48 to 400). Made once into
    STENO_HOME/cache and reused; a cancel returns what was spoken so far."""
    import hashlib

    from engine.models.registry import steno_home
    from trainer.spoken_terms import add_spoken_terms, default_count

    key = hashlib.sha256("\n".join(data.terms).encode()).hexdigest()[:10]
    folder = steno_home() / "cache" / f"spoken-terms-{key}-{seed}"
    return add_spoken_terms(data, folder, default_count(len(data.terms)) if count is None else count, seed, callback, cancel)


def train_adapter(base_model: str | Path, data: DataReport, out_dir: Path, settings: TrainSettings = TrainSettings(),
                  callback: Callable[[Progress], None] | None = None, cancel: Callable[[], bool] | None = None,
                  resume: bool = True) -> AdapterResult:
    """Train a LoRA adapter for `base_model` and save it to `out_dir` (atomically).

    Checkpoints go to a work folder beside `out_dir` (`.NAME.work`); with resume=True a
    cancelled or crashed run with the same data and settings continues where it stopped
    and ends with the same weights as an uninterrupted run.
    """
    from trainer.train import train

    return train(base_model, data, Path(out_dir), settings, callback, cancel, resume)


def adapters_dir() -> Path:
    """Where adapters are kept by default (STENO_HOME/adapters): list_adapters' root."""
    from trainer.store import adapters_dir as _dir

    return _dir()


def list_adapters(root: Path | None = None) -> list[AdapterInfo]:
    """Adapters under `root` (default: STENO_HOME/adapters), newest first."""
    from trainer.store import list_adapters as _list

    return _list(root)


def delete_adapter(path: Path) -> None:
    """Delete an adapter folder (refuses anything that is not one) and its work folder."""
    from trainer.store import delete_adapter as _delete

    _delete(Path(path))


def merge_adapter(adapter: Path, base_model: str | Path, out_model: Path) -> Path:
    """A new model folder with the adapter's weights merged in: no adapter needed to run it."""
    from trainer.store import merge_adapter as _merge

    return _merge(Path(adapter), base_model, Path(out_model))
