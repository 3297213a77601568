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


def _x_display_reachable(display: str) -> bool:
    """Whether an X server answers at `display`, asked through libxcb (what Qt's xcb plugin
    uses); True when libxcb cannot be loaded, so Qt gives its own answer."""
    import ctypes
    import ctypes.util

    try:
        xcb = ctypes.CDLL(ctypes.util.find_library("xcb") or "libxcb.so.1")
    except OSError:
        return True
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(display.encode(), None)
    try:
        return xcb.xcb_connection_has_error(conn) == 0
    finally:
        xcb.xcb_disconnect(conn)


HEADLESS_HINT = ("the app needs a desktop session; without one use the command line (steno transcribe FILE), "
                 "or run the app on a virtual display (xvfb-run steno gui)")


def display_problem() -> str | None:
    """Why the app cannot open a window here, in one line, or None. Without a display Qt
    aborts the process (exit 134) after a screenful of plugin messages."""
    if not sys.platform.startswith("linux"):
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith(("xcb", "wayland")):
        return None  # offscreen, vnc, eglfs...: chosen on purpose, Qt knows what it needs
    wayland = os.environ.get("WAYLAND_DISPLAY", "")
    if wayland and not platform.startswith("xcb"):
        runtime = os.environ.get("XDG_RUNTIME_DIR", "")
        if os.path.exists(wayland if os.path.isabs(wayland) else os.path.join(runtime, wayland)):
            return None
    display = os.environ.get("DISPLAY", "")
    if not display:
        why = f"the Wayland display {wayland} does not answer and DISPLAY is not set" if wayland \
            else "neither DISPLAY nor WAYLAND_DISPLAY is set"
        return f"no display found ({why}): {HEADLESS_HINT}"
    if not _x_display_reachable(display):
        return f"no display found (nothing answers at DISPLAY={display}): {HEADLESS_HINT}"
    return None


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    problem = display_problem()
    if problem is not None:
        print(f"steno: error: {problem}", file=sys.stderr)
        return 1
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
