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


def luminance(color: QColor) -> float:
    """WCAG relative luminance."""
    def channel(v: float) -> float:
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    return 0.2126 * channel(color.redF()) + 0.7152 * channel(color.greenF()) + 0.0722 * channel(color.blueF())


def contrast(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio; 4.5 is the least for normal text."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


# Colours with meaning, per theme, each readable (contrast >= 4.5) on the rows it is drawn on:
# unsure words on the plain, alternate and playing rows; queue states on the list and on its
# selection (where they take the selection's text colour).
LIGHT = {"playing": "#ffe2a0", "unsure": "#a34700", "done": "#1b6b40", "failed": "#b0301f"}
DARK = {"playing": "#5a4610", "unsure": "#ffb46b", "done": "#6fd39a", "failed": "#ff8a80"}


def colors(palette: QPalette | None = None) -> dict[str, QColor]:
    """The meaning colours for `palette` (the application's by default)."""
    palette = palette or QApplication.palette()
    return {k: QColor(v) for k, v in (DARK if is_dark(palette) else LIGHT).items()}


# Small touches the palette cannot express: reason labels, the banner, queue states.
STYLE = """
QLabel#reason { color: %(muted)s; font-style: italic; }
QLabel#queueStatus[state="failed"] { color: %(failed)s; }
QLabel#queueStatus[state="done"] { color: %(done)s; }
QLabel#queueStatus[selected="true"] { color: palette(highlighted-text); }
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
    c = DARK if dark else LIGHT
    app.setStyleSheet(STYLE % {"muted": "#a0a5ab" if dark else "#6b7076", "done": c["done"], "failed": c["failed"]})
    return "dark" if dark else "light"
