"""Recording through a fake input stream: the WAV grows on disk while recording, live text
appears at pauses, pause and push-to-talk, and a recording survives a crash of the app."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("PySide6.QtWidgets")

from PySide6.QtCore import QEvent, Qt  # noqa: E402
from PySide6.QtGui import QKeyEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from app import projects as P  # noqa: E402
from app.gui.live import closed_speech_end  # noqa: E402
from app.gui.player import FakeOutputStream  # noqa: E402
from app.gui.recorder import FakeInputStream, Recorder  # noqa: E402
from app.gui.window import MainWindow  # noqa: E402
from app.settings import AppSettings  # noqa: E402
from tests.conftest import espeak  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 60_000


@pytest.fixture(scope="module")
def dictation(tmp_path_factory):
    """Two spoken sentences with a pause between them, then silence, at 16 kHz."""
    d = tmp_path_factory.mktemp("dictation")
    a, _ = sf.read(espeak("the patient is well", d / "a.wav"), dtype="float32")
    b, _ = sf.read(espeak("blood pressure is normal", d / "b.wav"), dtype="float32")
    rate = sf.info(d / "a.wav").samplerate
    import soxr

    a, b = soxr.resample(a, rate, 16000), soxr.resample(b, rate, 16000)
    gap = np.zeros(16000, np.float32)
    return np.concatenate([a, gap, b, gap]).astype(np.float32), len(a) + len(gap)


class Streams:
    """A stream factory that remembers the fake streams it made."""

    def __init__(self):
        self.made = []

    def __call__(self, rate, channels, device, callback):
        self.made.append(FakeInputStream(rate, channels, device, callback))
        return self.made[-1]


def feed(stream, recorder, audio, block=1600, each=None):
    for i in range(0, len(audio), block):
        stream.feed(audio[i:i + block])
        recorder.drain()
        if each:
            each(i + block)


@pytest.fixture
def window(qtbot, tiny_model_dir):
    streams = Streams()
    w = MainWindow(AppSettings(model=str(tiny_model_dir)), input_stream=streams, output_stream=FakeOutputStream,
                   check_startup=False)
    w.streams = streams
    w.show()
    yield w
    w.close()


def test_recording_grows_on_disk_and_live_text_appears_at_pauses(window, qtbot, dictation):
    audio, split = dictation
    w = window
    tab = w.transcribe_tab
    dictation_pane = tab.dictation
    document = tab.document
    dictation_pane.record_panel.live.setChecked(True)
    assert dictation_pane.record_panel.record.isEnabled()
    assert dictation_pane.start_recording()
    stream = w.streams.made[-1]
    path = tab.project.audio_path
    assert tab.project.status == "recording" and path.name == "recording.wav"
    sizes = []
    feed(stream, dictation_pane.recorder, audio[:split], each=lambda n: sizes.append(path.stat().st_size))
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]  # written as it is made
    assert sf.info(path).frames == split  # readable while recording
    # the first sentence is followed by a second of quiet: it is transcribed while recording goes on
    qtbot.waitUntil(lambda: dictation_pane.live.offset > 0, timeout=TIMEOUT)
    assert 1.0 < dictation_pane.live.offset < split / 16000
    feed(stream, dictation_pane.recorder, audio[split:])
    assert dictation_pane.record_panel.clock.text() == f"00:{len(audio) // 16000:02d}"
    qtbot.waitUntil(lambda: dictation_pane.live.offset > split / 16000, timeout=TIMEOUT)
    live_segments = list(document.editor.transcript.segments)
    assert live_segments  # text while recording
    saved = P.Project.load(tab.project.folder).load_transcript()
    assert len(saved.segments) == len(live_segments)  # saved as it comes

    dictation_pane.stop_recording()
    qtbot.waitUntil(lambda: tab.project.status == "ready", timeout=TIMEOUT)
    segs = document.editor.transcript.segments
    assert all(a.start < b.start for a, b in zip(segs, segs[1:])) and segs[-1].end <= len(audio) / 16000 + 0.01
    info = sf.info(path)
    assert info.frames == len(audio) and info.samplerate == 16000
    assert not dictation_pane.live.active and stream.closed
    assert P.Project.load(tab.project.folder).original_transcript() is not None
    qtbot.waitUntil(lambda: document.player.duration > 0, timeout=TIMEOUT)


def test_pause_keeps_only_what_was_meant(window, qtbot):
    w = window
    tab = w.transcribe_tab
    dictation = tab.dictation
    dictation.record_panel.live.setChecked(False)
    dictation.start_recording()
    stream = w.streams.made[-1]
    rec = dictation.recorder
    feed(stream, rec, np.full(8000, 0.1, np.float32))
    rec.pause()
    assert dictation.record_panel.pause.text() == "Resume"
    feed(stream, rec, np.full(16000, 0.5, np.float32))  # spoken while paused: dropped
    rec.resume()
    feed(stream, rec, np.full(8000, 0.2, np.float32))
    assert rec.seconds == pytest.approx(1.0)
    dictation.stop_recording()  # without live text: the whole recording is transcribed when stopped
    audio, _ = sf.read(tab.project.audio_path, dtype="float32")
    assert len(audio) == 16000 and float(np.abs(audio).max()) < 0.25
    job = tab.files.queue.rows()[-1].job
    qtbot.waitUntil(lambda: job.ended, timeout=TIMEOUT)
    assert job.state == "done", job.error


def test_push_to_talk(window, qtbot):
    w = window
    tab = w.transcribe_tab
    dictation = tab.dictation
    dictation.record_panel.ptt.setChecked(True)
    dictation.record_panel.live.setChecked(False)
    app = QApplication.instance()

    def key(kind):
        app.sendEvent(w, QKeyEvent(kind, Qt.Key.Key_F8, Qt.KeyboardModifier.NoModifier))

    key(QEvent.Type.KeyPress)
    assert dictation.recorder.state == "recording"
    feed(w.streams.made[-1], dictation.recorder, np.full(4000, 0.1, np.float32))
    key(QEvent.Type.KeyRelease)
    assert dictation.recorder.state == "paused"
    key(QEvent.Type.KeyPress)
    assert dictation.recorder.state == "recording"
    dictation.stop_recording()
    assert dictation.recorder.state == "idle"


def test_device_error_is_reported_not_raised(window, qtbot):
    def broken(*args):
        raise RuntimeError("Error opening InputStream: Invalid sample rate")

    w = window
    tab = w.transcribe_tab
    dictation = tab.dictation
    dictation.recorder.stream_factory = broken
    assert not dictation.start_recording()
    assert tab.project is None and not P.list_projects()  # no empty project left behind
    assert any("Invalid sample rate" in b.text() for b in w.findChildren(QMessageBox, "errorDialog"))
    assert dictation.record_panel.record.isEnabled()  # can try again (another device, say)


CRASH_SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    from PySide6.QtCore import QCoreApplication
    app = QCoreApplication([])
    from app import projects as P
    from app.gui.recorder import FakeInputStream, Recorder

    if len(sys.argv) > 2:  # an encrypted library (tests/app/test_privacy.py)
        P.unlock_library(sys.argv[2])
    P.claim_session()
    project = P.Project.create("Dictation", status="recording")
    project.audio = P.RECORDING_FILE
    project.save_meta()
    P.update_session(project)
    streams = []
    rec = Recorder(lambda *a: streams.append(FakeInputStream(*a)) or streams[-1])
    rec.start(project.audio_path)
    audio = np.load(sys.argv[1])
    for i in range(0, len(audio), 1600):
        streams[0].feed(audio[i:i + 1600])
        rec.drain()
    print(project.folder, flush=True)
    os._exit(9)  # killed: no stop, no close, no clean-up
""")


def test_recording_survives_a_crash_and_is_offered_back(qtbot, tmp_path, dictation, tiny_model_dir):
    dictation, _ = dictation
    np.save(tmp_path / "audio.npy", dictation)
    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen")
    res = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(tmp_path / "audio.npy")], env=env,
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert res.returncode == 9, res.stderr
    folder = Path(res.stdout.strip().splitlines()[-1])
    assert (folder / "recording.wav").stat().st_size == 44 + 2 * len(dictation)  # every sample reached the disk
    assert P.Project.load(folder).status == "recording"

    w = MainWindow(AppSettings(model=str(tiny_model_dir)), output_stream=FakeOutputStream, check_startup=False)
    w.show()
    tab = w.transcribe_tab
    try:
        w.startup_checks()
        assert w.banner.isVisible() and "did not close properly" in w.banner.label.text()
        assert "unfinished recording" in w.banner.label.text()
        w.recovery.recover_all()
        info = sf.info(folder / "recording.wav")  # header repaired: any player reads it whole
        assert info.frames == len(dictation)
        with open(folder / "recording.wav", "rb") as f:
            head = f.read(44)
        assert int.from_bytes(head[40:44], "little") == 2 * len(dictation)
        job = tab.files.queue.rows()[-1].job
        qtbot.waitUntil(lambda: job.ended, timeout=TIMEOUT)
        assert job.state == "done", job.error
        project = P.Project.load(folder)
        assert project.status == "ready" and project.has_transcript()
        assert tab.project is not None and tab.project.folder == folder
    finally:
        w.close()


def test_closed_speech_end(dictation):
    dictation, _ = dictation
    # still speaking (no pause after the first sentence yet): nothing is closed
    first_len = int(np.argmax(np.abs(dictation) > 0.01))  # start of speech
    assert closed_speech_end(dictation[:first_len + 8000], 0.6, 25.0) is None
    end = closed_speech_end(dictation, 0.6, 25.0)
    assert end is not None and end <= len(dictation) / 16000
    assert closed_speech_end(np.zeros(16000 * 2, np.float32), 0.6, 25.0) == pytest.approx(1.4)


def test_recorder_alone_with_a_fake_stream(tmp_path, qtbot):
    streams = Streams()
    rec = Recorder(streams)
    levels = []
    rec.level.connect(levels.append)
    rec.start(tmp_path / "r.wav")
    feed(streams.made[0], rec, np.full(3200, 0.5, np.float32))
    assert levels and 0.8 < levels[-1] <= 1.0
    rec.stop()
    assert sf.info(tmp_path / "r.wav").frames == 3200


def test_recovered_dictation_keeps_its_live_text_and_transcribes_the_rest(qtbot, tmp_path, dictation,
                                                                          tiny_model_dir):
    from engine.text.transcript import Segment, Transcript

    audio, split = dictation
    project = P.Project.create("Dictation", status="recording")
    project.audio = P.RECORDING_FILE
    project.save_meta()
    sf.write(project.audio_path, audio, 16000, subtype="PCM_16")
    with open(project.audio_path, "r+b") as f:  # as a killed recording leaves it: sizes never written
        f.seek(40)
        f.write(b"\0\0\0\0")
    live = Transcript(segments=[Segment(0.0, split / 16000 - 0.5, "the patient is well, corrected live")])
    project.save_transcript(live)

    w = MainWindow(AppSettings(model=str(tiny_model_dir)), output_stream=FakeOutputStream, check_startup=False)
    w.show()
    try:
        w.startup_checks()
        w.recovery.recover_all()
        job = w.transcribe_tab.files.queue.rows()[-1].job
        qtbot.waitUntil(lambda: job.ended, timeout=TIMEOUT)
        assert job.state == "done", job.error
        t = P.Project.load(project.folder).load_transcript()
        assert t.segments[0].text == "the patient is well, corrected live"
        assert all(s.start >= t.segments[0].end - 0.01 for s in t.segments[1:])
        assert P.Project.load(project.folder).status == "ready"
        assert sf.info(project.audio_path).frames == len(audio)
    finally:
        w.close()
