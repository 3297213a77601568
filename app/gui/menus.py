"""The menu bar and the window-wide shortcuts.

Each entry calls a public method of the pane it acts on; the actions are added to the window
too, so their shortcuts work whichever tab or widget has the focus.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QWidget

from app.gui.transcribe_tab import TranscribeTab
from app.gui.workers import show_error
from app.projects import Project
from app.templates import list_templates, user_dir
from engine.text.exporters import FORMATS


class TemplateMenu(QMenu):
    """"New from template": read each time it opens, so a new or fixed file shows at once, and a
    broken one is listed with the reason instead of hiding the rest."""

    chosen = Signal(object)  # Template
    message = Signal(str, int)  # for the status bar: text, milliseconds

    def __init__(self, title: str, parent: QWidget):
        super().__init__(title, parent)
        self.aboutToShow.connect(self.fill)

    def fill(self) -> None:
        self.clear()
        templates, errors = list_templates()
        for t in templates:
            self.addAction(t.name, lambda checked=False, t=t: self.chosen.emit(t))
        for e in errors:
            name = e.path.name if e.path else "template"
            self.addAction(f"{name} (cannot be used)",
                           lambda checked=False, e=e: show_error(self.parentWidget(), "Template", str(e)))
        self.addSeparator()
        self.addAction("Open my templates folder", self._open_folder)

    def _open_folder(self) -> None:
        folder = user_dir()
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
        self.message.emit(f"your templates: {folder} (UTF-8 .txt or .md files)", 10000)


class Menus:
    """File, Edit and Playback for `window`, acting on the Transcribe tab `tab`."""

    def __init__(self, window: QMainWindow, tab: TranscribeTab, make_training_data: Callable[[Project], object]):
        self.window = window
        document, dictation, files = tab.document, tab.dictation, tab.files
        act = self._act
        bar = window.menuBar()
        file = self.file_menu = bar.addMenu("&File")
        act("&Open audio or video…", files.choose_files, QKeySequence.StandardKey.Open, file)
        self.record_action = act("&Record / stop", dictation.toggle_recording, "Ctrl+R", file)
        file.setToolTipsVisible(True)
        panel = dictation.record_panel
        panel.availability_changed.connect(self._record_available)
        self._record_available(panel.unavailable)
        self.template_menu = TemplateMenu("New from &template", window)
        self.template_menu.chosen.connect(tab.new_from_template)
        self.template_menu.message.connect(window.statusBar().showMessage)
        file.addMenu(self.template_menu)
        self.export_menu = QMenu("&Export", window)
        for fmt in FORMATS:
            act(fmt.upper() + "…", lambda checked=False, f=fmt: document.export_dialog(f), None, self.export_menu)
        file.addMenu(self.export_menu)
        document.export_btn.setMenu(self.export_menu)  # the Export button opens the same menu
        act("Export…", lambda: document.export_dialog(None), "Ctrl+E")
        act("&Copy transcript", lambda: document.copy_to_clipboard(), "Ctrl+Shift+C", file)
        act("Use as &training data", lambda: tab.project and make_training_data(tab.project), None, file)
        file.addSeparator()
        act("&Quit", window.close, QKeySequence.StandardKey.Quit, file)

        edit = bar.addMenu("&Edit")
        undo = document.editor.undo_stack.createUndoAction(window, "&Undo")
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        redo = document.editor.undo_stack.createRedoAction(window, "&Redo")
        redo.setShortcut(QKeySequence.StandardKey.Redo)
        edit.addAction(undo)
        edit.addAction(redo)
        window.addAction(undo)
        window.addAction(redo)
        edit.addSeparator()
        act("&Find…", lambda: document.find(), QKeySequence.StandardKey.Find, edit)
        act("Find and &replace…", lambda: document.find(replace=True), "Ctrl+H", edit)
        edit.addSeparator()
        editor = document.editor
        for a in (editor.split_action, editor.merge_action, editor.insert_action):
            edit.addAction(a)  # their keys work in the editor; here they are found

        play = bar.addMenu("P&layback")
        act("&Play / pause", document.player.toggle, "Ctrl+Space", play)
        act("Play from &selected segment", document.editor.play_current, "Ctrl+Return", play)
        act("&Back 5 seconds", lambda: document.player.skip(-5), "Alt+Left", play)
        act("&Forward 5 seconds", lambda: document.player.skip(5), "Alt+Right", play)
        act("&Slower", lambda: document.change_speed(-1), "Ctrl+[", play)
        act("F&aster", lambda: document.change_speed(1), "Ctrl+]", play)

    def _record_available(self, reason: str | None) -> None:
        """Without a microphone Record does nothing: greyed out, saying why."""
        self.record_action.setEnabled(reason is None)
        self.record_action.setToolTip(f"Recording is off: {reason}" if reason else "Start or stop recording (Ctrl+R)")

    def _act(self, text: str, slot, shortcut=None, menu: QMenu | None = None) -> QAction:
        a = QAction(text, self.window)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.triggered.connect(slot)
        if menu is not None:
            menu.addAction(a)
        self.window.addAction(a)
        return a
