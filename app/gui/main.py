"""`steno gui`: start the desktop app."""

from __future__ import annotations

import logging
import os
import sys
import traceback

log = logging.getLogger("steno.app")


def _excepthook(window_ref):
    """A bug in a slot is logged and shown; the app keeps running and nothing is lost."""

    def hook(kind, value, tb):
        from app.gui.workers import describe_error, show_error

        log.error("uncaught error:\n%s", "".join(traceback.format_exception(kind, value, tb)))
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)
            return
        show_error(window_ref[0], "Steno", describe_error(value))

    return hook


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication

    # Fractional scaling (125%, 150%) as the desktop asks, instead of rounding to 1x or 2x.
    app = QApplication.instance()
    if app is None:  # the policy can only be set before the application object exists
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication([sys.argv[0]] + list(argv or []))
    app.setApplicationName("Steno")
    app.setApplicationDisplayName("Steno")
    app.setOrganizationName("Steno")
    app.setWindowIcon(QIcon.fromTheme("audio-input-microphone"))

    from app.gui.theme import apply_theme
    from app.gui.workers import setup_logging
    from app.settings import AppSettings

    path = setup_logging()
    log.info("Steno starting; log file %s", path)
    settings = AppSettings.load()
    apply_theme(app, settings.theme)

    from app.gui.window import MainWindow

    window_ref = [None]
    sys.excepthook = _excepthook(window_ref)
    window = MainWindow(settings)
    window_ref[0] = window
    window.show()
    code = app.exec()
    sys.excepthook = sys.__excepthook__
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
