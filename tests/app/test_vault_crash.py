"""A killed conversion or a killed app never leaves plain text behind (issue 27, item 4).

Conversions are run in a child process that pauses inside one file's conversion (its temp
file written, not yet renamed) and is then SIGKILLed; after the next unlock, `finish` and a
new conversion, no plain byte and no temp file may remain anywhere in the library tree,
and nothing may be lost. Decrypted views of a killed app are removed at the next start,
unlock or conversion; SIGTERM/SIGHUP remove them at once; a dead owner is recognised even
when its pid now belongs to another process."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("PySide6.QtWidgets")
pytest.importorskip("cryptography")

from app import projects as P  # noqa: E402
from app import vault  # noqa: E402
from tests.app.test_privacy import PASS, SECRET, assert_nothing_readable, make_project, snapshot  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

# Converts the library, pauses inside the conversion of `target` once its temp file holds
# the converted bytes, and prints that temp file's path: the parent then kills it.
PAUSE_SCRIPT = textwrap.dedent("""
    import sys, time
    from app import projects as P, vault
    mode, target = sys.argv[1], sys.argv[2]
    vault.SCRYPT_N = 2 ** 14
    name = "_decrypt_stream" if mode == "decrypt" else "_encrypt_stream"
    real = getattr(vault, name)

    def paused(src, dst, *rest):
        real(src, dst, *rest)
        if str(getattr(src, "name", "")).endswith(target):
            dst.flush()
            print(dst.name, flush=True)
            time.sleep(600)

    setattr(vault, name, paused)
    (P.decrypt_library if mode == "decrypt" else P.encrypt_library)(sys.argv[3])
""")

# Unlocks, makes decrypted views of every project's audio and training folder, prints the
# views folder, then waits to be killed.
VIEWS_SCRIPT = textwrap.dedent("""
    import sys, time
    from app import projects as P, vault
    P.unlock_library(sys.argv[1])
    for p in P.list_projects():
        p.audio_path
        p.training_dir()
    print(vault.views_dir(), flush=True)
    time.sleep(600)
""")


@pytest.fixture(autouse=True)
def _fast_kdf_and_private_runtime(monkeypatch, tmp_path):
    """Quick scrypt (the cost is in the key file), and views in this test's own runtime folder."""
    monkeypatch.setattr(vault, "SCRYPT_N", 2 ** 14)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir(mode=0o700)
    yield
    vault.lock(P.projects_root())


def start(script: str, *args: str) -> tuple[subprocess.Popen, Path]:
    """Run a script in a child process; returns it and the path it prints when it is ready."""
    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen")
    child = subprocess.Popen([sys.executable, "-c", script, *args], env=env, cwd=REPO, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = child.stdout.readline().strip()
    if not line:
        child.kill()
        pytest.fail(f"the child stopped before it was ready: {child.communicate()[1]}")
    return child, Path(line)


def kill(child: subprocess.Popen, sig: int = signal.SIGKILL) -> int:
    child.send_signal(sig)
    try:
        return child.wait(timeout=30)
    finally:
        child.stdout.close()
        child.stderr.close()


def assert_no_plaintext_anywhere(root: Path) -> None:
    """Every file at any depth (hidden ones too) is encrypted, and no temp or old copy is left."""
    leftovers = [p for p in root.rglob("*") if p.name.endswith((".tmp", ".old"))]
    assert leftovers == []
    assert_nothing_readable(root, hidden_too=True)


def two_projects() -> dict:
    make_project("One", training=True)
    make_project("Two", training=True)
    return snapshot(P.projects_root())


# ----------------------------------------------------------------------------- killed conversions


@pytest.mark.parametrize("target", ["training/seg-0001.txt", "training/seg-0002.wav", P.AUDIO_FILE])
def test_a_killed_decryption_leaves_no_plain_temp_file_after_finish_and_encrypt(target):
    before = two_projects()
    root = P.projects_root()
    P.encrypt_library(PASS)
    vault.lock(root)
    child, tmp = start(PAUSE_SCRIPT, "decrypt", target, PASS)
    assert tmp.is_file() and not vault.is_encrypted_file(tmp)  # plain bytes beside the encrypted original
    kill(child)
    assert tmp.is_file() and P.library_status() == "decrypting"

    P.unlock_library(PASS)  # the next start
    P.finish_library_conversion()
    assert P.library_status() == "plain"
    assert not tmp.exists()
    P.encrypt_library(PASS)
    assert_no_plaintext_anywhere(root)
    P.decrypt_library(PASS)
    assert snapshot(root) == before  # nothing lost


def _unlock_and_finish():
    P.unlock_library(PASS)
    P.finish_library_conversion()


def _encrypt_again():
    with pytest.raises(vault.WrongPassphrase):
        P.encrypt_library("not the library's passphrase")
    P.encrypt_library(PASS)


@pytest.mark.parametrize("next_run", [_unlock_and_finish, _encrypt_again], ids=["finish", "encrypt-again"])
def test_a_killed_encryption_is_completed_by_the_next_run_with_no_copy_left(next_run):
    before = two_projects()
    root = P.projects_root()
    child, tmp = start(PAUSE_SCRIPT, "encrypt", "training/seg-0001.txt", PASS)
    assert tmp.is_file() and vault.is_encrypted_file(tmp)
    kill(child)
    assert tmp.is_file() and P.library_status() == "encrypting"

    next_run()
    assert P.library_status() == "encrypted"
    assert_no_plaintext_anywhere(root)
    P.decrypt_library(PASS)
    assert snapshot(root) == before


def test_leftovers_of_a_killed_training_folder_swap_are_put_back_or_removed():
    """atomic_dir killed between its two renames leaves `.training.old` (the only copy) and a
    complete `.training.XXXX.tmp`; killed earlier, a half-built `.training.XXXX.tmp`. Made in a
    plain library, they hold plain text: turning encryption on must not keep them."""
    before = two_projects()
    root = P.projects_root()
    one, two = sorted(p.folder for p in P.list_projects())
    os.replace(one / P.TRAINING_DIR, one / ".training.old")
    shutil.copytree(one / ".training.old", one / ".training.k1ll3d00.tmp")
    shutil.copytree(two / P.TRAINING_DIR, two / ".training.old")
    shutil.copytree(two / P.TRAINING_DIR, two / ".training.h4lfb1lt.tmp")
    (two / P.TRAINING_DIR / ".seg-0009.txt.abcd1234.tmp").write_text(f"{SECRET} half written")

    P.encrypt_library(PASS)
    assert_no_plaintext_anywhere(root)
    P.decrypt_library(PASS)
    assert snapshot(root) == before  # the training folder that was only in `.training.old` is back


# ----------------------------------------------------------------------------- decrypted views


def views_of_a_killed_app() -> Path:
    """A child unlocks, makes decrypted views and is SIGKILLed: they stay in RAM."""
    two_projects()
    P.encrypt_library(PASS)
    child, views = start(VIEWS_SCRIPT, PASS)
    kill(child)
    assert views.is_dir() and any(p.is_file() for p in views.rglob("*"))
    return views


def _unlock():
    vault.lock(P.projects_root())
    P.unlock_library(PASS)


def _recovery_at_start():
    from app.gui.recovery import Recovery

    Recovery(None, None, None)


@pytest.mark.parametrize("next_run", [_unlock, P.finish_library_conversion, lambda: P.decrypt_library(PASS),
                                      _recovery_at_start], ids=["unlock", "finish", "decrypt", "app-start"])
def test_views_of_a_killed_app_are_removed_at_the_next_start_unlock_or_conversion(next_run):
    views = views_of_a_killed_app()
    next_run()
    assert not views.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_views_are_removed_when_the_app_is_terminated(sig):
    two_projects()
    P.encrypt_library(PASS)
    child, views = start(VIEWS_SCRIPT, PASS)
    assert views.is_dir()
    code = kill(child, sig)
    assert code != 0
    assert not views.exists()


def test_a_dead_owner_is_recognised_even_when_its_pid_was_reused():
    views = views_of_a_killed_app()
    other = subprocess.Popen(["sleep", "60"])  # a live process now has the dead owner's pid
    try:
        reused = views.with_name(f"{vault.VIEWS_PREFIX}{other.pid}-{views.name.split('-')[-1]}")
        os.replace(views, reused)
        _unlock()
        assert not reused.exists()
    finally:
        other.kill()
        other.wait()


def test_the_views_of_a_running_app_are_left_alone():
    two_projects()
    P.encrypt_library(PASS)
    child, views = start(VIEWS_SCRIPT, PASS)
    try:
        _unlock()
        P.finish_library_conversion()
        _recovery_at_start()
        assert views.is_dir() and any(p.is_file() for p in views.rglob("*"))
    finally:
        kill(child)


# The app's event loop runs no Python code while idle: only the wakeup the recovery module
# sets up lets SIGTERM's handler run (and the app end) at once.
IDLE_APP_SCRIPT = textwrap.dedent("""
    import sys
    from PySide6.QtCore import QCoreApplication, QTimer
    app = QCoreApplication([])
    from app import projects as P, vault
    from app.gui.recovery import Recovery
    P.unlock_library(sys.argv[1])
    for p in P.list_projects():
        p.audio_path
    recovery = Recovery(None, None, None)
    QTimer.singleShot(0, lambda: print(vault.views_dir(), flush=True))
    sys.exit(app.exec())
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_an_idle_app_ends_at_once_on_sigterm_without_its_views(sig):
    two_projects()
    P.encrypt_library(PASS)
    child, views = start(IDLE_APP_SCRIPT, PASS)
    assert views.is_dir() and any(p.is_file() for p in views.rglob("*"))
    try:
        child.send_signal(sig)
        assert child.wait(timeout=20) == -sig
    finally:
        kill(child)
    assert not views.exists()
