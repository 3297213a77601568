"""A message across the top of the window with a few buttons: it never blocks, and is easy to dismiss."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton


class Banner(QFrame):
    """Offers that can wait for the user (recover work, install a model) without a modal dialog."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.buttons = QHBoxLayout()
        lay = QHBoxLayout(self)
        lay.addWidget(self.label, 1)
        lay.addLayout(self.buttons)
        self.hide()

    def show_message(self, text: str, actions: list[tuple[str, object]]) -> None:
        while self.buttons.count():
            w = self.buttons.takeAt(0).widget()
            if w:
                w.deleteLater()
        self.label.setText(text)
        for label, slot in actions + [("Dismiss", self.hide)]:
            b = QPushButton(label)
            b.clicked.connect(slot)
            self.buttons.addWidget(b)
        self.show()
