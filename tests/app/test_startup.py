"""Start-up: what the CLI may import before it has work to do, and the cached int8 decoder."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "onnxruntime", "PySide6", "peft")
ROOT = Path(__file__).resolve().parents[2]


def _modules_after(argv: list[str]) -> tuple[int, list[str], str]:
    """Run `steno ARGV` in a fresh interpreter; its exit code, the heavy packages it
    imported, and its stderr."""
    script = ("import json, sys\n"
              "from app.cli import main\n"
              "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
              f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
              "print(json.dumps([code, heavy]))\n")
    proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    code, heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    return code, heavy, proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["transcribe", "--help"], ["transcribe"], ["transcribe", "x.wav", "--beam", "0"],
                                  ["train", "--help"]])
def test_help_and_argument_errors_import_no_heavy_package(argv):
    code, heavy, _ = _modules_after(argv)
    assert code in (0, 2)
    assert heavy == []


def test_a_missing_input_is_refused_before_any_heavy_import(tmp_path):
    code, heavy, err = _modules_after(["transcribe", str(tmp_path / "gone.wav")])
    assert code == 1 and "gone.wav" in err and "file not found" in err
    assert heavy == []


def test_the_app_loads_its_model_in_the_background_at_launch(make_window, qtbot):
    """The window is up before the model is; the model is then loaded without any job asking
    for it, so the first dictation does not wait for it."""
    w = make_window(check_startup=True)
    assert w.isVisible() and w.service.loaded_text == ""  # shown at once, the model not yet loaded
    with qtbot.waitSignal(w.model_loader.ready, timeout=60_000):
        pass
    assert w.service.loaded_text and w.model_loader.label.text() == w.service.loaded_text


def test_the_app_loads_nothing_at_launch_without_a_model(make_window, qtbot):
    from app.settings import AppSettings

    w = make_window(settings=AppSettings(model=None), check_startup=True)  # STENO_HOME is empty in tests
    with qtbot.assertNotEmitted(w.model_loader.ready, wait=300):
        pass
    assert w.service.loaded_text == ""
