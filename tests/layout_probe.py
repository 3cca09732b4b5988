"""Open the inspector for the first time on the offscreen screen this process was given
(``QT_QPA_PLATFORM=offscreen:configfile=...``), raise every dock in turn and report, as
JSON, the window's geometry against the screen's and every control a dock cuts off; the
screenshots go beside the report. Run by tests/test_layouts.py in a fresh process per
screen size, since a Qt process has one set of screens.

    python tests/layout_probe.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSlider,
    QWidget,
)

CONTROLS = (QAbstractButton, QComboBox, QLabel, QLineEdit, QAbstractSpinBox, QSlider)


def pause(app: QApplication, seconds: float) -> None:
    """Process events for ``seconds``; sleeping in Python lets the worker thread have the
    GIL (QTest.qWait keeps it while it waits, which starved the policy load 20-fold)."""
    end = time.monotonic() + seconds
    while True:
        app.processEvents()
        if time.monotonic() >= end:
            return
        time.sleep(0.02)


def wait_until(app: QApplication, done, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            raise TimeoutError("the window did not get ready")
        pause(app, 0.05)


def in_scroll_area(widget: QWidget, top: QWidget) -> bool:
    w = widget.parentWidget()
    while w is not None and w is not top:
        if isinstance(w, QScrollArea):
            return True
        w = w.parentWidget()
    return False


def cut_off(dock) -> list[str]:
    """Controls of a raised dock narrower than their minimum, or reaching past its right
    edge; a sideways scroll bar. (Scrolling down a tall panel is allowed.)"""
    found = []
    body = dock.widget()
    for area in [body, *body.findChildren(QScrollArea)]:
        if isinstance(area, QScrollArea) and area.horizontalScrollBar().isVisible():
            found.append("a horizontal scroll bar")
    for c in body.findChildren(QWidget):
        if not isinstance(c, CONTROLS) or not c.isVisible():
            continue
        if isinstance(c, QLineEdit) and isinstance(c.parentWidget(), QAbstractSpinBox):
            continue  # a spin box's own editor
        text = c.text() if hasattr(c, "text") and callable(c.text) else ""
        text = text or (c.currentText() if isinstance(c, QComboBox) else "")
        name = f"{type(c).__name__} '{text}'"
        hint = c.minimumSizeHint()
        if isinstance(c, QComboBox) and c.sizeAdjustPolicy() == \
                QComboBox.SizeAdjustPolicy.AdjustToContents:
            hint = c.sizeHint()  # shown whole, or it is cut off
        if c.width() + 1 < hint.width():
            found.append(f"{name} is {c.width()} px wide, needs {hint.width()}")
        right = c.mapTo(body, c.rect().topRight()).x()
        if not in_scroll_area(c, body) and right > body.width() + 1:
            found.append(f"{name} reaches {right} px, the dock is {body.width()} px")
    return found


def main(out: Path) -> None:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from vlascope.app.main_window import MainWindow
    from vlascope.core.plugins import PluginRegistry

    home = Path(tempfile.mkdtemp())
    settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(registry=PluginRegistry.discover(), settings=settings,
                        record_dir=home / "recordings")
    window.show()
    QTest.qWaitForWindowExposed(window)
    window.start()
    wait_until(app, lambda: window.workspace.recording is not None
               and window.scene_dock.task_box.count() > 0 and not window.engine.busy())
    pause(app, 0.3)
    screen = window.screen().availableGeometry()
    report = {"screen": [screen.x(), screen.y(), screen.width(), screen.height()],
              "window": [window.x(), window.y(), window.width(), window.height()],
              "frame": [window.frameGeometry().width(), window.frameGeometry().height()],
              "docks": {}}
    for dock in window.docks:
        dock.raise_()
        pause(app, 0.1)
        report["docks"][dock.windowTitle()] = {
            "visible": dock.isVisible() and not dock.visibleRegion().isEmpty(),
            "cut_off": cut_off(dock)}
        window.grab().save(str(out / f"{dock.objectName()}.png"))
    window.saliency_dock.raise_()
    pause(app, 0.1)
    window.grab().save(str(out / "window.png"))
    (out / "report.json").write_text(json.dumps(report, indent=1))
    window.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
