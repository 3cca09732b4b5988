"""Start the inspector: check that there is a screen to show it on, build the application
and the window, run the event loop."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from vlascope.core.errors import VLAScopeError


def check_display(environ: dict[str, str] | None = None, platform: str = sys.platform) -> None:
    """A clear message instead of Qt's abort when no display is available."""
    env = os.environ if environ is None else environ
    if not platform.startswith("linux") or env.get("QT_QPA_PLATFORM"):
        return
    if not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        raise VLAScopeError(
            "no display found (DISPLAY and WAYLAND_DISPLAY are unset): the inspector window "
            "needs a desktop session. Every analysis also runs headless: see `vlascope "
            "--help`; `vlascope screenshot` renders the window offscreen to a PNG.")


def run_app(argv: Sequence[str] = (), episode: str | None = None) -> int:
    check_display()
    os.environ.setdefault("MUJOCO_GL", "egl")
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    app.setApplicationName("VLAScope")
    app.setOrganizationName("VLAScope")
    window = MainWindow()
    window.show()
    window.start()
    if episode:
        window.open_episode(episode)
    return app.exec()
