"""Real mouse events, shared by the GUI tests here and in the scene plugins (``tests/`` is on
pytest's path). Qt's offscreen platform drops the held button from QTest's moves (and
QTest's moves go through a cursor it may not move), so events are sent raw, through Qt, as
the window system delivers them."""

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

NO_BUTTON, LEFT = Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton
NO_MODIFIER = Qt.KeyboardModifier.NoModifier


def mouse(widget, kind, pos, button=NO_BUTTON, buttons=NO_BUTTON, modifiers=NO_MODIFIER):
    """One raw mouse event at widget position ``pos``."""
    pos = QPointF(pos)
    QApplication.sendEvent(widget, QMouseEvent(kind, pos, widget.mapToGlobal(pos), button,
                                                buttons, modifiers))


def raw_drag(widget, points, button=LEFT, modifiers=NO_MODIFIER):
    """Press at the first widget position, move through the rest holding ``button``,
    release at the last (one point: a click)."""
    pts = [QPoint(*p) if isinstance(p, tuple) else p for p in points]
    mouse(widget, QEvent.Type.MouseButtonPress, pts[0], button, button, modifiers)
    for p in pts[1:]:
        mouse(widget, QEvent.Type.MouseMove, p, NO_BUTTON, button, modifiers)
    mouse(widget, QEvent.Type.MouseButtonRelease, pts[-1], button, NO_BUTTON, modifiers)


def plot_to_widget(view, x, y) -> QPoint:
    """A pyqtgraph PlotWidget's data coordinates -> the widget position that shows them."""
    return view.mapFromScene(view.plotItem.vb.mapViewToScene(QPointF(x, y)))


def at(dock, x, y) -> QPoint:
    """Frame pixel (x, y) -> the canvas viewport position that shows it."""
    scene_pt = dock.label_item.mapToScene(QPointF(x, y))
    return dock.graphics.mapFromScene(scene_pt)


def send(dock, kind, pos, buttons=LEFT):
    """A left-button event on the region dock's canvas."""
    mouse(dock.graphics.viewport(), kind, pos,
          NO_BUTTON if kind == QEvent.Type.MouseMove else LEFT, buttons)


def drag(dock, points):
    """Press at the first point, move through the rest with the button held, release."""
    pts = [at(dock, x, y) for x, y in points]
    send(dock, QEvent.Type.MouseButtonPress, pts[0])
    for p in pts[1:]:
        send(dock, QEvent.Type.MouseMove, p)
    send(dock, QEvent.Type.MouseButtonRelease, pts[-1], Qt.MouseButton.NoButton)
