"""Cancel on a file being transcribed stops the work at once, wherever it is (finding speech or
decoding), and leaves no project; the bar moves all the way, not only while finding speech."""

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("PySide6.QtWidgets")

from PySide6.QtCore import Qt  # noqa: E402

from app import projects as P  # noqa: E402
from tests.conftest import espeak  # noqa: E402

TIMEOUT = 60_000
SENTENCES = ["the patient takes five milligrams daily", "follow up in two weeks", "blood pressure is normal",
             "no known allergies", "stop ibuprofen for now", "call the clinic if worse"]


def long_recording(tmp_path: Path, pause_s: float = 2.5) -> Path:
    """The sentences with long pauses between them: one chunk each for the model."""
    parts = []
    for i, s in enumerate(SENTENCES):
        audio, sr = sf.read(espeak(s, tmp_path / f"s{i}.wav"), dtype="float32")
        assert sr == 22050 or sr == 16000
        parts += [audio, np.zeros(int(pause_s * sr), dtype=np.float32)]
    path = tmp_path / "clinic.wav"
    sf.write(path, np.concatenate(parts), sr)
    return path


class SlowVad:
    """The real VAD session, a little slower per window, so the test can click during it."""

    def __init__(self, session, delay_s: float):
        self.session, self.delay_s, self.runs = session, delay_s, 0

    def run(self, *args, **kw):
        self.runs += 1
        time.sleep(self.delay_s)
        return self.session.run(*args, **kw)


def test_cancel_while_finding_speech_stops_it_and_leaves_nothing(make_window, qtbot, tmp_path, monkeypatch):
    import engine.audio as audio_mod

    real = audio_mod._vad_session
    slow: list[SlowVad] = []
    monkeypatch.setattr(audio_mod, "_vad_session", lambda: slow.append(SlowVad(real(), 0.004)) or slow[-1])
    w = make_window()
    files = w.transcribe_tab.files
    path = long_recording(tmp_path)
    [job] = files.open_files([path])
    row = files.queue.rows()[0]
    seen = []
    job.progress.connect(lambda f, m: seen.append((f, m)))
    qtbot.waitUntil(lambda: sum(m == "finding speech" for _, m in seen) >= 5, timeout=TIMEOUT)
    assert "finding speech" in row.status.text()
    moving = [f for f, m in seen if m == "finding speech"]
    assert moving == sorted(moving) and moving[-1] > moving[0]  # the bar moves while speech is found
    qtbot.mouseClick(row.button, Qt.MouseButton.LeftButton)
    clicked_at = slow[0].runs
    qtbot.waitUntil(lambda: job.ended, timeout=TIMEOUT)
    assert job.state == "cancelled"
    windows = -(-sf.info(path).frames * 16000 // sf.info(path).samplerate // 512)
    assert slow[0].runs < windows  # stopped inside the speech finding, not after it
    assert slow[0].runs - clicked_at <= windows // 50 + 2  # within about 1% of the file
    assert max(f for f, _ in seen) < 0.02 + 0.98 * 0.1  # the model never started
    assert row.status.text() == "cancelled"
    assert P.list_projects() == []
    assert path.is_file()


def test_cancel_while_the_model_decodes_the_last_batch_creates_nothing(make_window, qtbot, tmp_path, monkeypatch):
    from engine.bridge.backend import BridgeBackend

    decoding, released = threading.Event(), threading.Event()
    real = BridgeBackend.transcribe_batch

    def held(self, *args, **kw):  # the model at work: the user clicks Cancel meanwhile
        decoding.set()
        released.wait(30)
        return real(self, *args, **kw)

    monkeypatch.setattr(BridgeBackend, "transcribe_batch", held)
    w = make_window()
    files = w.transcribe_tab.files
    wav = espeak("hello world this is a test", tmp_path / "hello.wav")  # one chunk: one batch, the last
    [job] = files.open_files([Path(wav)])
    qtbot.waitUntil(decoding.is_set, timeout=TIMEOUT)
    row = files.queue.rows()[0]
    qtbot.mouseClick(row.button, Qt.MouseButton.LeftButton)
    assert row.status.text() == "cancelling…"
    released.set()
    qtbot.waitUntil(lambda: job.ended, timeout=TIMEOUT)
    assert job.state == "cancelled", job.state
    assert row.status.text() == "cancelled"
    assert P.list_projects() == []  # no project, no transcript
    assert w.transcribe_tab.project is None


def test_the_bar_moves_while_the_model_decodes(make_window, qtbot, tmp_path):
    w = make_window()
    files = w.transcribe_tab.files
    [job] = files.open_files([long_recording(tmp_path)])
    seen = []
    job.progress.connect(lambda f, m: seen.append(f))
    qtbot.waitUntil(lambda: job.ended, timeout=TIMEOUT)
    assert job.state == "done", job.error
    assert len(job.result.segments) >= 3
    after_vad = sorted({round(f, 4) for f in seen if 0.02 + 0.98 * 0.1 < f < 1.0})
    assert len(after_vad) >= 2, seen  # several steps between finding speech and done, not one jump
