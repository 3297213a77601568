"""Light and dark palettes on the Fusion style, which looks the same on every desktop."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory


def system_is_dark() -> bool:
    try:
        return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark
    except AttributeError:  # Qt before 6.5
        return False


def dark_palette() -> QPalette:
    p = QPalette()
    c = {
        QPalette.ColorRole.Window: "#26282b", QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1d1f21", QPalette.ColorRole.AlternateBase: "#2a2d31",
        QPalette.ColorRole.ToolTipBase: "#33363a", QPalette.ColorRole.ToolTipText: "#f0f0f0",
        QPalette.ColorRole.PlaceholderText: "#8a8f96", QPalette.ColorRole.Text: "#e6e6e6",
        QPalette.ColorRole.Button: "#33363a", QPalette.ColorRole.ButtonText: "#e6e6e6",
        QPalette.ColorRole.BrightText: "#ff6b6b", QPalette.ColorRole.Link: "#6aa6ff",
        QPalette.ColorRole.Highlight: "#3d6fb6", QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Mid: "#4a4e54", QPalette.ColorRole.Dark: "#151618", QPalette.ColorRole.Light: "#45494f",
        QPalette.ColorRole.Midlight: "#3a3d42", QPalette.ColorRole.Shadow: "#000000",
    }
    for role, color in c.items():
        p.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7b7f85"))
    return p


def light_palette() -> QPalette:
    p = QApplication.style().standardPalette()
    p.setColor(QPalette.ColorRole.AlternateBase, QColor("#f4f6f8"))
    p.setColor(QPalette.ColorRole.Highlight, QColor("#2f6fdb"))
    return p


# Small touches the palette cannot express: reason labels, the banner, queue states.
STYLE = """
QLabel#reason { color: %(muted)s; font-style: italic; }
QLabel#queueStatus[state="failed"] { color: #c0392b; }
QLabel#queueStatus[state="done"] { color: #2e8b57; }
QFrame#banner { border: 1px solid #d9a400; border-radius: 4px; background: rgba(255, 200, 0, 40); }
QLabel#projectTitle { font-size: 13pt; font-weight: 600; }
QLabel#recordClock { font-family: monospace; font-size: 13pt; }
QLabel#placeholder { color: %(muted)s; font-size: 12pt; }
"""


def apply_theme(app: QApplication, name: str = "system") -> str:
    """Set the palette for `name` (system | light | dark); returns the one used."""
    app.setStyle(QStyleFactory.create("Fusion"))
    dark = name == "dark" or (name == "system" and system_is_dark())
    app.setPalette(dark_palette() if dark else light_palette())
    app.setStyleSheet(STYLE % {"muted": "#a0a5ab" if dark else "#6b7076"})
    return "dark" if dark else "light"
