"""Real mouse events on the region dock's canvas, shared by the GUI tests here and in the
scene plugins (``tests/`` is on pytest's path). Qt's offscreen platform drops the held
button from QTest's moves, so a drag is sent as raw press / move / release events."""

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication


def at(dock, x, y) -> QPoint:
    """Frame pixel (x, y) -> the canvas viewport position that shows it."""
    scene_pt = dock.label_item.mapToScene(QPointF(x, y))
    return dock.graphics.mapFromScene(scene_pt)


def send(dock, kind, pos, buttons=Qt.MouseButton.LeftButton):
    button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else \
        Qt.MouseButton.LeftButton
    vp = dock.graphics.viewport()
    ev = QMouseEvent(kind, QPointF(pos), QPointF(vp.mapToGlobal(pos)), button, buttons,
                     Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, ev)


def drag(dock, points):
    """Press at the first point, move through the rest with the button held, release."""
    pts = [at(dock, x, y) for x, y in points]
    send(dock, QEvent.Type.MouseButtonPress, pts[0])
    for p in pts[1:]:
        send(dock, QEvent.Type.MouseMove, p)
    send(dock, QEvent.Type.MouseButtonRelease, pts[-1], Qt.MouseButton.NoButton)
