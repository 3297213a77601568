"""Crash recovery at start: what the last run left unfinished is offered back, never lost.

A run records itself as the session when it starts and removes the record when it closes;
a record found at start means the last run did not close properly, and it names the project
that was open. Unfinished work (a recording never stopped, a transcription never done,
journaled edits) is offered in the banner and finished in the Transcribe tab.

Decrypted copies of an encrypted library's audio that a killed run left in RAM are deleted
at start, and this run's own are deleted when SIGTERM or SIGHUP ends it (app/vault.py).
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, QSocketNotifier, Signal

from app import projects as P
from app import vault
from app.gui.banner import Banner
from app.gui.transcribe_tab import TranscribeTab
from app.projects import Project

UNFINISHED = {"recording": "unfinished recording", "transcribing": "not transcribed yet"}
_signal_wakeup: tuple | None = None  # (read socket, write socket, notifier): made once, kept for the process


def guard_plain_copies() -> None:
    """Delete the decrypted copies a killed run left, and have SIGTERM/SIGHUP delete this
    run's before it ends."""
    vault.clean_stale_views()
    vault.remove_views_on_signals()
    _wake_python_on_signals()


def _wake_python_on_signals() -> None:
    """Python runs a signal handler only when Python code runs, and Qt's event loop may run
    none for minutes: a SIGTERM would wait that long. The signal's byte written to a socket
    the loop watches wakes it at once. Left alone when something else set a wakeup fd."""
    global _signal_wakeup
    app = QCoreApplication.instance()
    if _signal_wakeup is not None or app is None:
        return
    r, w = socket.socketpair()
    r.setblocking(False)
    w.setblocking(False)
    try:
        previous = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        r.close()
        w.close()
        return
    if previous != -1:
        signal.set_wakeup_fd(previous)
        r.close()
        w.close()
        return
    notifier = QSocketNotifier(r.fileno(), QSocketNotifier.Type.Read, app)
    notifier.activated.connect(lambda *_: _drain(r))
    _signal_wakeup = (r, w, notifier)


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(64):
            pass
    except OSError:
        pass


class Recovery(QObject):
    """Offers and finishes the work found at start; `previous_session` is the crashed run's record."""

    recovered = Signal()  # projects were finished or reopened

    def __init__(self, previous_session: dict | None, tab: TranscribeTab, banner: Banner, parent=None):
        super().__init__(parent)
        self.previous_session = previous_session
        self.tab = tab
        self.banner = banner
        guard_plain_copies()

    def offer(self) -> bool:
        """Show what a crash left in the banner; False when there is nothing to offer."""
        problems = [p for p in P.unfinished_projects() if not self.tab.busy_with(p)]
        crashed = self.previous_session is not None
        last = (self.previous_session or {}).get("project")
        if not (problems or (crashed and last)):
            return False
        names = ", ".join(f"“{p.name}” ({UNFINISHED.get(p.status, 'unsaved edits')})" for p in problems[:4])
        more = f" and {len(problems) - 4} more" if len(problems) > 4 else ""
        head = "Steno did not close properly last time." if crashed else "Some work was left unfinished."
        text = f"{head} {('Found: ' + names + more + '.') if problems else ''} Nothing is lost: recover it now?"
        self.banner.show_message(text, [("Recover", self.recover_all)])
        return True

    def recover_all(self) -> None:
        """Finish every unfinished project, and reopen the one the crashed run had open."""
        self.banner.hide()
        last = (self.previous_session or {}).get("project")
        for project in P.unfinished_projects():
            if not self.tab.busy_with(project):
                self.tab.recover_project(project)
        if last and self.tab.project is None and Path(last, P.PROJECT_FILE).is_file():
            self.tab.open_project(Project.load(Path(last)))
        self.previous_session = None
        self.recovered.emit()
