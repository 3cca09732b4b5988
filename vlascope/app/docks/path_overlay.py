"""Planned vs executed in a camera view: the hand path the shown step's chunk plans, a
polyline fading towards its end (the far future is the least certain), and the path the
hand then took beside it. One graphics item per path, drawn from arrays in ``paint``, so a
step costs two ``setData`` calls, whatever the horizon."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen

from vlascope.core.paths import EXECUTED_RGB, PLANNED_RGB

PLANNED, EXECUTED = PLANNED_RGB, EXECUTED_RGB  # the policy's intention, what happened
FADE_TO = 0.2  # the last planned segment's opacity


class PolylineItem(pg.GraphicsObject):
    """A polyline in view (pixel) coordinates with per-segment opacity fading from 1 to
    ``fade_to``; NaN points break it. ``points`` is what is drawn, for tests and export."""

    def __init__(self, colour: tuple[int, int, int], width: float = 2.0,
                 fade_to: float = 1.0, dots: bool = False, pad: float = 4.0):
        super().__init__()
        self.colour, self.width, self.fade_to, self.dots = colour, width, fade_to, dots
        self.pad = pad  # in view units: the bounding box's margin for the pen
        self.points = np.zeros((0, 2))
        self._rect = QRectF()
        self._strokes: list[tuple[QPen, list]] = []
        self.clip: QRectF | None = None  # the image's rectangle: nothing drawn outside it
        self.setZValue(10)

    def setData(self, points: np.ndarray | None) -> None:  # noqa: N802 - pyqtgraph's name
        self.prepareGeometryChange()
        self.points = np.zeros((0, 2)) if points is None else np.asarray(points, float)
        finite = self.points[np.isfinite(self.points).all(axis=1)]
        if len(finite):
            (x0, y0), (x1, y1) = finite.min(axis=0), finite.max(axis=0)
            pad = self.pad
            self._rect = QRectF(x0 - pad, y0 - pad, x1 - x0 + 2 * pad, y1 - y0 + 2 * pad)
        else:
            self._rect = QRectF()
        self._strokes = self._build(self.points)
        self.update()

    def _pen(self, alpha: float, width: float) -> QPen:
        pen = QPen(QColor(*self.colour, int(255 * alpha)))
        pen.setCosmetic(True)  # screen pixels, whatever the zoom
        pen.setWidthF(width)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        return pen

    def _build(self, pts: np.ndarray) -> list[tuple[QPen, list]]:
        """Pens and shapes once per step; ``paint`` (every repaint) only draws them."""
        n = len(pts)
        if n == 0:
            return []
        alphas = np.linspace(1.0, self.fade_to, max(1, n - 1))
        ok = np.isfinite(pts).all(axis=1)
        strokes: list[tuple[QPen, list]] = []
        for i in range(n - 1):
            if ok[i] and ok[i + 1]:
                strokes.append((self._pen(alphas[i], self.width),
                                [QLineF(*pts[i], *pts[i + 1])]))
        if self.dots:
            for i in np.nonzero(ok)[0]:
                strokes.append((self._pen(alphas[min(i, len(alphas) - 1)], self.width * 2.5),
                                [QPointF(*pts[i])]))
        return strokes

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return self._rect

    def paint(self, painter: QPainter, *_args) -> None:
        if not self._strokes:
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self.clip is not None:
            painter.setClipRect(self.clip)
        for pen, shapes in self._strokes:
            painter.setPen(pen)
            shape = shapes[0]
            if isinstance(shape, QLineF):
                painter.drawLine(shape)
            else:
                painter.drawPoint(shape)


class PathOverlay:
    """The two polylines of one camera view."""

    def __init__(self, box: pg.ViewBox):
        self.executed = PolylineItem(EXECUTED, width=2.0)
        self.planned = PolylineItem(PLANNED, width=2.0, fade_to=FADE_TO, dots=True)
        for item in (self.executed, self.planned):
            box.addItem(item)
            item.setVisible(False)

    def show(self, paths: tuple[np.ndarray, np.ndarray] | None,
             shape: tuple[int, int] | None = None) -> None:
        """``paths``: (planned, executed) pixel coordinates in an image of ``shape``
        (H, W), drawn only inside it (a point near a wrist camera projects far outside);
        None hides both."""
        on = paths is not None
        clip = QRectF(0, 0, shape[1], shape[0]) if shape else None
        self.planned.clip = self.executed.clip = clip
        self.planned.setData(paths[0] if on else None)
        self.executed.setData(paths[1] if on else None)
        self.planned.setVisible(on)
        self.executed.setVisible(on)


def show_paths(overlays: dict, recording, t: int, shapes: dict, on: bool) -> None:
    """Draw step ``t``'s planned and executed hand paths on every camera's overlay, in the
    shown image's pixels (``shapes``: camera -> the shown frame's (H, W)); hidden when off,
    or when the recording has no path."""
    paths = None
    if on and recording is not None and recording.n_steps and 0 <= t < recording.n_steps:
        paths = recording.planned_path(t, {c: s for c, s in shapes.items() if s})
    for cam, overlay in overlays.items():
        overlay.show((paths or {}).get(cam), shapes.get(cam))


class ChunkFan:
    """The timeline's fan: per action dimension the chunk executed at the shown step, from
    the step that predicted it on, fading into the future over the executed curves."""

    def __init__(self, plot: pg.PlotWidget, pens: list[str]):
        self.plot, self.pens = plot, pens
        self.lines: list[PolylineItem] = []
        self.on = True

    def show(self, recording, t: int) -> None:
        chunk = None
        if self.on and recording is not None and 0 <= t < recording.n_steps:
            chunk = np.asarray(recording.action_chunk(t), float)
        dims = 0 if chunk is None else chunk.shape[1]
        while len(self.lines) < dims:
            colour = QColor(self.pens[len(self.lines) % len(self.pens)])
            line = PolylineItem((colour.red(), colour.green(), colour.blue()), width=1.5,
                                fade_to=FADE_TO, dots=True, pad=0.05)
            self.plot.addItem(line, ignoreBounds=True)  # no re-ranging per step
            self.lines.append(line)
        if chunk is not None:
            origin = t - recording.chunk_index(t)
            xs = origin + np.arange(len(chunk), dtype=float)
        for d, line in enumerate(self.lines):
            line.setData(np.column_stack([xs, chunk[:, d]]) if d < dims else None)
