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


def open_window(episode: str | None = None, weights: str | None = None, window=None,
                **run: str):
    """Show the window and start it on the given run settings (``policy``, ``scene``,
    ``task``, ``device``; unset ones keep the remembered choice), loading the policy from
    ``weights`` when given, and open ``episode``."""
    from .main_window import MainWindow

    window = window or MainWindow()
    given = {k: v for k, v in run.items() if v}
    if given:
        window.workspace.update_run(**given)
    window.show()
    window.start(weights=weights)
    if episode:
        window.open_episode(episode)
    return window


def app_icon():
    """VLAScope's icon, the same file `vlascope install-desktop` installs."""
    from PySide6.QtGui import QIcon

    from vlascope.desktop_integration import icon_file

    return QIcon(str(icon_file()))


def run_app(argv: Sequence[str] = (), episode: str | None = None, **options: str) -> int:
    check_display()
    os.environ.setdefault("MUJOCO_GL", "egl")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    app.setApplicationName("VLAScope")
    app.setOrganizationName("VLAScope")
    # the installed desktop entry's name (Wayland matches windows to it) and its icon
    app.setDesktopFileName("vlascope")
    app.setWindowIcon(app_icon())
    window = open_window(episode, **options)  # noqa: F841 - kept alive by the event loop
    return app.exec()
