"""Encryption at rest of the project library (app/vault.py) and the privacy statement.

Round trip, nothing readable on disk, a wrong passphrase changes nothing, a conversion
interrupted midway is finished after the next unlock and loses nothing, turning encryption
off gives back the very same bytes, recordings are plain only while they are made (and a
killed one is still recovered), and the Settings tab / start-up prompts with injected
passphrases."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("PySide6.QtWidgets")
pytest.importorskip("cryptography")

from PySide6.QtWidgets import QMessageBox  # noqa: E402

from app import projects as P  # noqa: E402
from app import vault  # noqa: E402
from app.gui.recorder import FakeInputStream  # noqa: E402
from app.settings import privacy_statement  # noqa: E402
from engine.text.transcript import Segment, Transcript, Word  # noqa: E402
from tests.app.test_app_record import CRASH_SCRIPT  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 60_000
PASS = "correct horse battery staple"
NEW_PASS = "a different passphrase"
SECRET = "amlodipine"  # a word that must never be readable in the library's raw bytes


def real_kdf(test):
    test.real_kdf = True
    return test


@pytest.fixture(autouse=True)
def _fast_kdf(monkeypatch, request):
    """scrypt at 2**14 keeps the tests quick; the cost is stored in the key file, so the
    code path is the same. One test keeps the real cost."""
    if not getattr(request.function, "real_kdf", False):
        monkeypatch.setattr(vault, "SCRYPT_N", 2 ** 14)
    yield
    vault.lock(P.projects_root())


NO_NETWORK = """
import socket
attempts = []
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _guard(real):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError("network blocked by tests/app/test_privacy.py")
        return real(self, address)
    return connect


def _no_lookup(host, *a, **k):
    attempts.append(host)
    raise socket.gaierror("network blocked by tests/app/test_privacy.py")


socket.socket.connect, socket.socket.connect_ex = _guard(_connect), _guard(_connect_ex)
socket.getaddrinfo = _no_lookup
"""


@pytest.fixture(autouse=True)
def no_network():
    """Every test here runs with internet sockets blocked, and fails if anything tried one."""
    import socket

    original = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
    scope: dict = {}
    exec(NO_NETWORK, scope)  # noqa: S102 - the same guard the subprocess test uses
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = original
    assert scope["attempts"] == [], f"something tried the network: {scope['attempts']}"


def transcript(tag: str = "") -> Transcript:
    return Transcript(segments=[
        Segment(0.0, 1.5, f"the patient takes {SECRET} {tag}".strip(), words=[Word(SECRET, 0.5, 1.5, 0.4)]),
        Segment(1.6, 3.0, "five milligrams daily"),
    ], source="clinic.wav", duration=3.0)


def tone(seconds: float = 3.0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def make_project(name: str = "Clinic letter", training: bool = False) -> P.Project:
    """A project with every kind of file: meta, audio, transcript, original, journal (and training pairs)."""
    project = P.Project.create(name)
    P.write_audio_flac(project.folder / P.AUDIO_FILE, tone(), 16000)
    project.audio = P.AUDIO_FILE
    project.save_transcript(transcript(name), original=True)
    project.journal_edit(1, f"ten milligrams of {SECRET} daily")
    if training:
        project.save_training_data(project.load_transcript())
    return project


def snapshot(root: Path) -> dict:
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_nothing_readable(root: Path, hidden_too: bool = False) -> None:
    """Every project file is encrypted: no transcript word, no audio or JSON header in the bytes.
    hidden_too: every file at any depth (temp files included) but the key file."""
    files = vault.library_files(root) if not hidden_too else \
        [p for p in root.rglob("*") if p.is_file() and p.name != vault.KEYFILE]
    assert files
    for f in files:
        raw = f.read_bytes()
        assert SECRET.encode() not in raw and b"milligrams" not in raw, f
        if f.suffix == ".jsonl":
            assert all(ln.startswith(vault.LINE_PREFIX.encode()) for ln in raw.splitlines()), f
        else:
            assert raw.startswith(vault.MAGIC), f


class Prompter:
    """Stands in for the passphrase dialog: gives the queued answers (None = Cancel), records
    what it was asked, and can run a check before answering."""

    def __init__(self, answers=(), before=None):
        self.answers = list(answers)
        self.labels = []
        self.before = before

    def __call__(self, parent, title, label):
        self.labels.append(label)
        if self.before is not None:
            self.before(len(self.labels))
        return self.answers.pop(0)


def errors_shown(widget):
    return [b.text() for b in widget.findChildren(QMessageBox, "errorDialog")]


# ----------------------------------------------------------------------------- the vault itself


def test_round_trip_files_on_disk_are_not_plaintext():
    a = make_project("Clinic letter", training=True)
    b = make_project("Interview with the mayor")
    root = P.projects_root()
    raw_before = (a.folder / P.TRANSCRIPT_FILE).read_bytes()
    assert SECRET.encode() in raw_before  # plain to begin with

    n = P.encrypt_library(PASS)
    assert n == len(vault.library_files(root))  # every file converted
    assert P.library_status() == "encrypted"
    assert_nothing_readable(root)
    assert oct(vault.keyfile_path(root).stat().st_mode & 0o777) == "0o600"

    # read back transparently, journal included
    for project, name in ((a, "Clinic letter"), (b, "Interview with the mayor")):
        loaded = P.Project.load(project.folder)
        assert loaded.name == name
        t = loaded.load_transcript()
        assert t.segments[0].text == f"the patient takes {SECRET} {name}"
        assert t.segments[1].text == f"ten milligrams of {SECRET} daily"  # from the encrypted journal
        assert loaded.original_transcript().segments[1].text == "five milligrams daily"
        assert loaded.has_unsaved_edits()
    assert [p.name for p in P.list_projects(SECRET)] != []  # search reads encrypted transcripts

    # audio decodes through a private decrypted copy, outside the library
    loaded = P.Project.load(a.folder)
    view = loaded.audio_path
    assert view != loaded.stored_audio_path and root not in view.parents
    assert oct(view.parent.parent.stat().st_mode & 0o777) == "0o700"
    from engine.audio import load_audio

    np.testing.assert_allclose(load_audio(view), tone(), atol=1e-4)
    # the trainer's pairs likewise
    pairs = loaded.training_dir()
    assert root not in pairs.parents
    assert (pairs / "seg-0002.txt").read_text().strip() == f"ten milligrams of {SECRET} daily"
    assert sf.info(pairs / "seg-0001.wav").frames == int(1.5 * 16000)
    assert loaded.training_dir() == pairs  # cached while nothing changed

    # what is written from now on is encrypted too, and new folders do not show the name
    loaded.journal_edit(0, f"stop {SECRET}")
    c = P.Project.create("Interview with the mayor")
    assert "mayor" not in c.folder.name.lower()
    c.save_transcript(transcript("new"))
    assert_nothing_readable(root)
    assert P.Project.load(c.folder).load_transcript().segments[0].text.endswith("new")

    # locking forgets the key and deletes the decrypted copies; nothing can be read or written
    vault.lock(root)
    assert not view.exists() and not pairs.exists()
    with pytest.raises(vault.VaultLocked, match="locked"):
        P.Project.load(a.folder)
    with pytest.raises(vault.VaultLocked):
        c.save_transcript(transcript("while locked"))  # never written in plain instead
    assert P.list_projects() == []  # locked projects are skipped, not shown broken


@real_kdf
def test_wrong_passphrase_gives_a_clear_error_and_every_byte_stays():
    make_project("One", training=True)
    make_project("Two")
    root = P.projects_root()
    P.encrypt_library(PASS)
    kf = vault._read_keyfile(root)
    assert (kf.n, kf.r, kf.p) == (2 ** 17, 8, 1)  # the real cost
    vault.lock(root)
    before = snapshot(root)

    with pytest.raises(vault.WrongPassphrase, match="wrong passphrase.*nothing was changed"):
        P.unlock_library("correct horse battery stapl")
    assert not vault.is_unlocked(root)
    with pytest.raises(vault.WrongPassphrase):
        P.decrypt_library("not it at all")
    with pytest.raises(vault.WrongPassphrase):
        P.change_library_passphrase("not it at all", NEW_PASS)
    assert snapshot(root) == before
    assert P.library_status() == "encrypted"
    P.unlock_library(PASS)  # the right one still works
    assert P.Project.load(next(f for f in root.iterdir() if f.is_dir()))


def test_change_passphrase_rewraps_the_key_only():
    make_project()
    root = P.projects_root()
    P.encrypt_library(PASS)
    files = {f: f.read_bytes() for f in vault.library_files(root)}
    with pytest.raises(vault.VaultError, match="too short"):
        P.change_library_passphrase(PASS, "short")
    P.change_library_passphrase(PASS, NEW_PASS)
    assert {f: f.read_bytes() for f in vault.library_files(root)} == files  # no file rewritten
    vault.lock(root)
    with pytest.raises(vault.WrongPassphrase):
        P.unlock_library(PASS)
    P.unlock_library(NEW_PASS)
    assert P.list_projects()[0].load_transcript().segments[0].text.startswith("the patient")


def test_turning_encryption_off_restores_the_same_plain_files():
    make_project("One", training=True)
    make_project("Two")
    root = P.projects_root()
    before = snapshot(root)
    P.encrypt_library(PASS)
    assert snapshot(root) != before
    P.decrypt_library(PASS)
    assert P.library_status() == "plain" and not vault.keyfile_path(root).exists()
    assert snapshot(root) == before  # byte for byte
    # and new writes are plain again
    p = P.list_projects()[0]
    p.journal_edit(0, "plain again")
    assert b"plain again" in (p.folder / P.JOURNAL_FILE).read_bytes()


@pytest.mark.parametrize("after", [1, 4, 9])
def test_interrupted_encryption_is_finished_after_the_next_unlock(after):
    make_project("One", training=True)
    make_project("Two")
    root = P.projects_root()
    before = snapshot(root)

    def power_cut(i, n, path):
        if i == after:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        P.encrypt_library(PASS, progress=power_cut)
    assert P.library_status() == "encrypting"
    files = vault.library_files(root)
    encrypted = [f for f in files if vault.is_encrypted_file(f) or f.read_bytes().startswith(b"enc1:")]
    assert len(encrypted) == after < len(files)  # stopped between two files, each whole
    # meanwhile every project still reads, whatever form each file is in
    for p in P.list_projects():
        assert p.load_transcript().segments[1].text == f"ten milligrams of {SECRET} daily"
        assert p.audio_path is not None and sf.info(p.audio_path).frames == len(tone())

    # the next start: the key is gone from memory, the passphrase is asked, the rest is done
    vault.lock(root)
    assert P.library_needs_passphrase()
    P.unlock_library(PASS)
    assert P.finish_library_conversion() == len(files) - after
    assert P.library_status() == "encrypted"
    assert_nothing_readable(root)
    P.decrypt_library(PASS)
    assert snapshot(root) == before  # nothing lost


def test_interrupted_decryption_is_finished_after_the_next_unlock():
    make_project("One", training=True)
    make_project("Two")
    root = P.projects_root()
    before = snapshot(root)
    P.encrypt_library(PASS)

    def power_cut(i, n, path):
        if i == 3:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        P.decrypt_library(PASS, progress=power_cut)
    assert P.library_status() == "decrypting"  # the key file stays until every file is plain
    vault.lock(root)
    assert P.library_needs_passphrase()
    with pytest.raises(vault.WrongPassphrase):
        P.unlock_library("guess guess guess")
    P.unlock_library(PASS)
    P.finish_library_conversion()
    assert P.library_status() == "plain"
    assert snapshot(root) == before


def test_a_damaged_file_does_not_hold_up_turning_encryption_off():
    a = make_project("One")
    make_project("Two")
    root = P.projects_root()
    P.encrypt_library(PASS)
    bad = a.folder / P.ORIGINAL_FILE
    blob = bytearray(bad.read_bytes())
    blob[-3] ^= 0xFF
    bad.write_bytes(bytes(blob))
    with pytest.raises(vault.VaultError, match="cannot decrypt .*transcript.original.json"):
        P.decrypt_library(PASS)
    assert P.library_status() == "decrypting"  # the key file stays: the damaged file is still encrypted
    assert [f for f in vault.library_files(root) if vault.is_encrypted_file(f)] == [bad]
    assert P.Project.load(a.folder).load_transcript().segments[0].text.startswith("the patient")


def test_a_journal_line_cut_by_a_crash_loses_only_itself():
    project = make_project()
    P.encrypt_library(PASS)
    with open(project.folder / P.JOURNAL_FILE, "a") as f:
        f.write(vault.LINE_PREFIX + "AAAA")  # killed halfway through an append
    rev = project.journal_edit(0, "after the crash")
    assert [r for r, _, _ in project.read_journal()] == [1, rev]
    assert P.Project.load(project.folder).load_transcript().segments[0].text == "after the crash"


def test_damaged_cut_or_swapped_files_fail_clearly(tmp_path):
    root = tmp_path / "lib"
    (root / "p").mkdir(parents=True)
    vault.enable(root, PASS)
    aead = vault._keys[vault._k(root)]
    for size in (0, 5, vault.CHUNK, 2 * vault.CHUNK, 2 * vault.CHUNK + 7):  # chunk edges
        data = os.urandom(size)
        blob = vault.encrypt_bytes(data, aead)
        assert vault.decrypt_bytes(blob, aead) == data
    data = os.urandom(2 * vault.CHUNK + 7)
    path = root / "p" / "audio.flac"
    vault.write_bytes(path, data, root)
    blob = path.read_bytes()
    assert vault.read_bytes(path, root) == data
    bad = [blob[:-1],  # cut short
           blob[:vault.HEADER_LEN + vault.CHUNK + vault.TAG],  # cut at a chunk boundary
           blob[:100] + bytes([blob[100] ^ 1]) + blob[101:]]  # one bit flipped
    for b in bad:
        path.write_bytes(b)
        with pytest.raises(vault.VaultError, match="cannot decrypt"):
            vault.read_bytes(path, root)
    path.write_bytes(blob)
    vault.keyfile_path(root).write_text("{not json")
    with pytest.raises(vault.VaultError, match="key file is damaged"):
        vault.write_bytes(path, b"x", root)  # refuses, rather than write plain
    assert path.read_bytes() == blob


def test_a_recording_in_progress_is_left_plain_and_sealed_when_it_moves_on():
    root = P.projects_root()
    rec = P.Project.create("Dictation", status="recording")
    rec.audio = P.RECORDING_FILE
    rec.save_meta()
    sf.write(rec.stored_audio_path, tone(), 16000, subtype="PCM_16")
    make_project()
    P.encrypt_library(PASS)
    assert rec.stored_audio_path.read_bytes()[:4] == b"RIFF"  # the recorder may still be writing it
    assert vault.is_encrypted_file(rec.folder / P.PROJECT_FILE)
    vault.lock(root)
    P.unlock_library(PASS)
    P.finish_library_conversion()  # start-up: an unrepaired killed recording stays plain too
    assert rec.stored_audio_path.read_bytes()[:4] == b"RIFF"
    rec.set_status("transcribing")  # stopped (or recovered)
    assert vault.is_encrypted_file(rec.stored_audio_path)
    assert sf.info(P.Project.load(rec.folder).audio_path).frames == len(tone())
    assert_nothing_readable(root)


def test_privacy_statement_in_app_and_docs():
    text = privacy_statement()
    assert str(P.projects_root()) in text and "no network" in text
    assert "not encrypted" in text
    make_project()
    P.encrypt_library(PASS)
    assert "encrypted with your passphrase" in privacy_statement()
    doc = (REPO / "docs" / "privacy.md").read_text()
    for words in ("projects", "models", "adapters", "app_settings.json", "logs", "network", "exported",
                  "recording", ".steno-vault.json"):
        assert words in doc
    readme = (REPO / "README.md").read_text()
    assert "## Privacy" in readme and "docs/privacy.md" in readme


# ----------------------------------------------------------------------------- the app




def test_start_up_asks_for_the_passphrase_and_a_wrong_one_changes_nothing(make_window, qtbot):
    make_project("Clinic letter")
    root = P.projects_root()
    P.encrypt_library(PASS)
    vault.lock(root)  # as a fresh start finds it
    before = snapshot(root)
    seen = []
    prompt = Prompter(["wrong passphrase", PASS], before=lambda n: seen.append(snapshot(root) == before))
    w = make_window(passphrase_prompt=prompt)
    assert len(prompt.labels) == 2 and "encrypted" in prompt.labels[0]
    assert "Wrong passphrase" in prompt.labels[1] and "nothing was changed" in prompt.labels[1]
    assert seen == [True, True]  # the wrong try touched nothing
    assert not w.library_locked and vault.is_unlocked(root)
    assert [p.name for p in w.projects_tab.projects] == ["Clinic letter"]
    assert w.transcribe_tab.open_project(w.projects_tab.projects[0])
    assert w.transcribe_tab.document.editor.transcript.segments[1].text == f"ten milligrams of {SECRET} daily"


def test_cancelling_the_passphrase_closes_the_window_and_touches_nothing(make_window, qtbot):
    make_project()
    root = P.projects_root()
    P.encrypt_library(PASS)
    vault.lock(root)
    before = snapshot(root)
    prompt = Prompter(["nope nope nope", None])
    w = make_window(passphrase_prompt=prompt)
    assert w.library_locked and w.projects_tab.projects == []
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=5000)
    assert snapshot(root) == before and not vault.is_unlocked(root)


def test_settings_tab_encrypts_changes_passphrase_and_turns_it_off(make_window, qtbot):
    make_project("Clinic letter", training=True)
    root = P.projects_root()
    before = snapshot(root)
    prompt = Prompter()
    w = make_window(passphrase_prompt=prompt)
    tab = w.settings_tab
    assert tab.ask_passphrase is prompt
    assert not tab.encrypt_btn.isHidden() and tab.decrypt_btn.isHidden() and tab.passphrase_btn.isHidden()
    assert "not encrypted" in tab.privacy_state.text()

    def run(answers, button):
        prompt.answers = list(answers)
        button.click()
        job = tab._privacy_job
        if job is not None:
            qtbot.waitUntil(lambda: job.ended, timeout=TIMEOUT)
        tab._privacy_job = None
        assert prompt.answers == []
        return job

    # typed twice, differently; then too short: said so, nothing changes
    assert run([PASS, PASS + "!"], tab.encrypt_btn) is None
    assert run(["short"], tab.encrypt_btn) is None
    shown = errors_shown(w)
    assert any("differ" in t and "nothing was changed" in t for t in shown)
    assert any("too short" in t for t in shown)
    assert P.library_status() == "plain" and snapshot(root) == before

    job = run([PASS, PASS], tab.encrypt_btn)
    assert job.state == "done", job.error
    assert P.library_status() == "encrypted"
    assert_nothing_readable(root)
    assert "encrypted" in tab.privacy_state.text() and "encrypted" in tab.privacy_result.text()
    assert tab.encrypt_btn.isHidden() and not tab.decrypt_btn.isHidden()

    # the app goes on working on the encrypted library: open, edit (journaled encrypted), autosave
    transcribe = w.transcribe_tab
    assert transcribe.open_project(P.list_projects()[0])
    transcribe.document.editor.model.set_text(0, f"edited {SECRET} text")
    assert (transcribe.project.folder / P.JOURNAL_FILE).is_file()
    assert_nothing_readable(root)  # the journaled edit too
    transcribe.document.flush_autosave()
    assert_nothing_readable(root)
    assert P.list_projects()[0].load_transcript().segments[0].text == f"edited {SECRET} text"

    job = run([PASS, NEW_PASS, NEW_PASS], tab.passphrase_btn)
    assert job.state == "done", job.error
    encrypted = snapshot(root)
    job = run(["wrong passphrase"], tab.decrypt_btn)
    assert job.state == "failed" and "wrong passphrase" in job.error
    assert any("wrong passphrase" in t for t in errors_shown(w))
    assert snapshot(root) == encrypted and P.library_status() == "encrypted"

    job = run([NEW_PASS], tab.decrypt_btn)
    assert job.state == "done", job.error
    assert P.library_status() == "plain" and not tab.encrypt_btn.isHidden()
    after = snapshot(root)
    assert set(after) == {k for k in before if k.name != P.JOURNAL_FILE}  # the journal was folded in on open
    assert SECRET.encode() + b" text" in after[next(k for k in after if k.name == P.TRANSCRIPT_FILE)]

    box = tab.show_privacy()
    assert str(P.projects_root()) in box.text() and "no network" in box.text()
    tab.privacy_btn.click()
    assert tab.findChildren(QMessageBox, "privacyDialog")


def test_settings_tab_finishes_an_interrupted_conversion(make_window, qtbot):
    make_project("One")
    make_project("Two")

    def power_cut(i, n, path):
        if i == 2:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        P.encrypt_library(PASS, progress=power_cut)
    w = make_window()
    tab = w.settings_tab
    assert "not every file is encrypted" in tab.privacy_state.text()
    assert not tab.finish_btn.isHidden() and tab.encrypt_btn.isHidden()
    tab.finish_btn.click()
    job = tab._privacy_job
    qtbot.waitUntil(lambda: job.ended, timeout=TIMEOUT)
    assert job.state == "done", job.error
    assert P.library_status() == "encrypted" and tab.finish_btn.isHidden()
    assert_nothing_readable(P.projects_root())


class Streams:
    def __init__(self):
        self.made = []

    def __call__(self, rate, channels, device, callback):
        self.made.append(FakeInputStream(rate, channels, device, callback))
        return self.made[-1]


def test_recording_is_plain_while_made_and_encrypted_when_it_stops(make_window, qtbot):
    root = P.projects_root()
    root.mkdir(parents=True)
    P.encrypt_library(PASS)
    vault.lock(root)
    streams = Streams()
    w = make_window(input_stream=streams, passphrase_prompt=Prompter([PASS]))
    tab = w.transcribe_tab
    dictation = tab.dictation
    dictation.record_panel.live.setChecked(False)
    assert dictation.start_recording()
    path = tab.project.stored_audio_path
    audio = tone(2.0)
    for i in range(0, len(audio), 1600):
        streams.made[-1].feed(audio[i:i + 1600])
        dictation.recorder.drain()
    assert path.read_bytes()[:4] == b"RIFF" and sf.info(path).frames == len(audio)  # plain, on disk as it grows
    assert vault.is_encrypted_file(tab.project.folder / P.PROJECT_FILE)
    dictation.stop_recording()
    assert vault.is_encrypted_file(path)  # encrypted as soon as it stopped
    job = tab.files.queue.rows()[-1].job
    qtbot.waitUntil(lambda: job.ended, timeout=TIMEOUT)
    assert job.state == "done", job.error
    project = P.Project.load(tab.project.folder)
    assert project.status == "ready" and project.has_transcript()
    assert sf.info(project.audio_path).frames == len(audio)
    qtbot.waitUntil(lambda: tab.document.player.duration > 0, timeout=TIMEOUT)  # plays from the decrypted copy
    assert all(vault.is_encrypted_file(f) or f.suffix == ".jsonl" for f in vault.library_files(root))




def test_a_killed_recording_is_recovered_in_an_encrypted_library(make_window, qtbot, tmp_path):
    root = P.projects_root()
    root.mkdir(parents=True)
    P.encrypt_library(PASS)
    vault.lock(root)
    audio = tone(2.5)
    np.save(tmp_path / "audio.npy", audio)
    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen")
    res = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(tmp_path / "audio.npy"), PASS], env=env,
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 9, res.stderr
    folder = Path(res.stdout.strip().splitlines()[-1])
    wav = folder / P.RECORDING_FILE
    assert wav.read_bytes()[:4] == b"RIFF" and wav.stat().st_size == 44 + 2 * len(audio)  # every sample on disk
    assert vault.is_encrypted_file(folder / P.PROJECT_FILE)

    w = make_window(passphrase_prompt=Prompter([PASS]))
    assert wav.read_bytes()[:4] == b"RIFF"  # unlocking did not touch the unrepaired recording
    w.startup_checks()
    assert "did not close properly" in w.banner.label.text() and "unfinished recording" in w.banner.label.text()
    w.recovery.recover_all()
    assert vault.is_encrypted_file(wav)  # repaired, then encrypted
    job = w.transcribe_tab.files.queue.rows()[-1].job
    qtbot.waitUntil(lambda: job.ended, timeout=TIMEOUT)
    assert job.state == "done", job.error
    project = P.Project.load(folder)
    assert project.status == "ready" and project.has_transcript()
    assert sf.info(project.audio_path).frames == len(audio)
    assert all(vault.is_encrypted_file(f) or f.suffix == ".jsonl" for f in vault.library_files(root))


def test_the_command_line_transcribes_with_the_network_blocked(tiny_model_dir, tmp_path):
    """Outside the test settings (no HF_HUB_OFFLINE): loading a model and transcribing opens no socket."""
    import soundfile as sf

    wav = tmp_path / "tone.wav"
    sf.write(wav, tone(1.5), 16000)
    script = NO_NETWORK + textwrap.dedent("""
        import sys
        from app.cli import main
        code = main(sys.argv[1:])
        print("ATTEMPTS", attempts)
        sys.exit(code)
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["PYTHONPATH"] = str(REPO)
    res = subprocess.run([sys.executable, "-c", script, "transcribe", str(wav), "--model", str(tiny_model_dir),
                          "-q", "--format", "json"], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert "ATTEMPTS []" in res.stdout


def test_a_transcribed_recording_names_its_stored_audio_not_the_decrypted_copy():
    from app.gui.filequeue import transcribe_project_job

    project = make_project("Dictation")
    P.encrypt_library(PASS)
    project = P.Project.load(project.folder)
    seen = []

    class Service:
        def transcribe(self, path, progress=None, cancel=None, speakers=False):
            seen.append(Path(path))
            return transcript("again")

    result = transcribe_project_job(Service(), project).fn(lambda f, m: None, lambda: False)
    assert seen[0] != project.stored_audio_path  # the engine read a decrypted copy...
    assert result.source == str(project.stored_audio_path)  # ...but the transcript names the real file
    assert P.Project.load(project.folder).load_transcript().source == str(project.stored_audio_path)
