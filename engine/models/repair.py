"""What `steno setup` and `steno export-onnx` do to a model folder that is already there:
find damage (engine.models.integrity), record a manifest an older Steno did not write, and
rebuild missing or damaged ONNX graphs from the weights, for either family.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import StenoError
from engine.graph import ONNX_META, ONNX_NAME, graph_intact
from engine.models.folder import check_folder
from engine.models.integrity import check_integrity, has_manifest, record_files
from engine.whisper.encoder import GRAPH_INT8_META, GRAPH_INT8_NAME, ensure_encoder_onnx


def install_check(folder: Path, full: bool = False):
    """(config, None) for a whole, undamaged model folder; (None, why not) otherwise.
    full=True hashes every file against the manifest, as `steno setup` does."""
    if not folder.exists():
        return None, f"{folder}: not installed"
    try:
        config = check_folder(folder)
        check_integrity(folder, full)
    except StenoError as e:
        return None, str(e)
    return config, None


def keep_installed(folder: Path) -> bool:
    """`steno setup` on an installed, undamaged model: record its files if no manifest was
    written when it was installed (an older Steno), and rebuild missing or damaged graphs
    (True when it did)."""
    if not has_manifest(folder):
        record_files(folder)
    if graphs_intact(folder):
        return False
    ensure_graphs(folder)
    return True


def graphs_intact(folder: Path) -> bool:
    """The folder's graph (and a Whisper encoder's int8 copy, if made) whole, as written."""
    int8 = folder / GRAPH_INT8_NAME
    return graph_intact(folder / ONNX_NAME, folder / ONNX_META) and (
        not int8.exists() or graph_intact(int8, folder / GRAPH_INT8_META))


def ensure_graphs(folder: str | Path) -> Path:
    """Either family's graph, made again when missing, stale or damaged (`steno export-onnx`,
    `steno setup`); a Whisper encoder's int8 copy too, if one was made."""
    folder = Path(folder)
    if check_folder(folder).family == "whisper":
        path = ensure_encoder_onnx(folder)
        if (folder / GRAPH_INT8_NAME).exists():
            ensure_encoder_onnx(folder, "int8")
        return path
    from engine.bridge.export import ensure_onnx
    from engine.bridge.folder import load_model

    return ensure_onnx(load_model(folder), folder)
