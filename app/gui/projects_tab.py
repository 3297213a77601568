"""The Projects tab: every recording and opened file, newest first, searchable by name and text."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.projects import Project, list_projects
from engine.text.exporters import clock

STATUS_TEXT = {"ready": "", "recording": "unfinished recording", "transcribing": "not transcribed yet"}


class ProjectsTab(QWidget):
    open_project = Signal(object)
    make_training_data = Signal(object)
    deleted = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.search = QLineEdit(placeholderText="Search names and transcripts…")
        self.search.setClearButtonEnabled(True)
        self.table = QTableWidget(0, 5)
        self.table.setObjectName("projects")
        self.table.setHorizontalHeaderLabels(["Name", "Date", "Length", "Status", "Beginning"])
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        h = self.table.horizontalHeader()
        for c in (0, 1, 2, 3):
            h.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        h.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(lambda _: self._open())
        buttons = QHBoxLayout()
        for text, slot, tip in (("Open", self._open, "Open in the editor (Enter)"),
                                ("Rename…", self._rename, ""),
                                ("Use as training data", self._training,
                                 "Save the corrected transcript with its audio for the Trainer tab"),
                                ("Show folder", self._show_folder, ""),
                                ("Delete…", self._delete, "")):
            b = QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.search)
        lay.addWidget(self.table, 1)
        lay.addLayout(buttons)
        self._debounce = QTimer(self, singleShot=True, interval=250)
        self._debounce.timeout.connect(self.refresh)
        self.search.textChanged.connect(lambda _: self._debounce.start())
        self.projects: list[Project] = []

    def refresh(self) -> None:
        self.projects = list_projects(self.search.text())
        self.table.setRowCount(len(self.projects))
        for r, p in enumerate(self.projects):
            cells = (p.name, time.strftime("%Y-%m-%d %H:%M", time.localtime(p.created)),
                     clock(p.duration) if p.duration else "", STATUS_TEXT.get(p.status, p.status),
                     " ".join(p.preview.split())[:160])
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(str(p.folder) if c == 0 else text)
                self.table.setItem(r, c, item)

    def selected(self) -> Project | None:
        rows = self.table.selectionModel().selectedRows()
        return self.projects[rows[0].row()] if rows else None

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.selected():
            self._open()
        else:
            super().keyPressEvent(event)

    def _open(self):
        p = self.selected()
        if p:
            self.open_project.emit(p)

    def _rename(self):
        p = self.selected()
        if p:
            name, ok = QInputDialog.getText(self, "Rename project", "Name:", text=p.name)
            if ok and name.strip():
                p.rename(name)
                self.refresh()
                self.select(p)  # renaming makes it the newest: the selection follows it, not its row

    def select(self, project: Project) -> None:
        """Select `project`'s row, wherever the list now puts it."""
        for r, p in enumerate(self.projects):
            if p.folder == project.folder:
                self.table.selectRow(r)
                self.table.scrollToItem(self.table.item(r, 0))
                return

    def _training(self):
        p = self.selected()
        if p:
            self.make_training_data.emit(p)

    def _show_folder(self):
        p = self.selected()
        if p:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(p.folder)))

    def _delete(self):
        p = self.selected()
        if not p:
            return
        box = QMessageBox(QMessageBox.Icon.Question, "Delete project",
                          f"Delete “{p.name}” with its audio and transcript? This cannot be undone.",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setObjectName("deleteProject")
        box.setDefaultButton(QMessageBox.StandardButton.No)  # Enter must not delete
        box.setEscapeButton(QMessageBox.StandardButton.No)
        if box.exec() == QMessageBox.StandardButton.Yes:
            self.deleted.emit(p)
            p.delete()
            self.refresh()
