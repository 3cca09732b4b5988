"""Many same-sized points drawn as one image rasterized with numpy, for the atlas.

pyqtgraph's ScatterPlotItem draws each point with QPainter and keeps a record and a brush
object per point: at 130,000 points its first drawing and every colour change took 0.5-1.2
s on the GUI thread, and every zoom step drew all points again (docs/benchmarks.md). The
atlas needs none of what that costs (one size, no outline, no per-point symbol), so here
every point is a filled disc of ``SIZE_PX`` pixels written straight into an ARGB image at
the view's pixel resolution: a colour change is an array, a zoom step one numpy pass.
Points are drawn in index order (a later point covers an earlier one), as QPainter would.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage

SIZE_PX = 5  # the disc's diameter in device pixels (pyqtgraph's size=5)
_R = SIZE_PX / 2
_OFFSETS = np.array([(dx, dy) for dy in range(-int(_R), int(_R) + 1)
                     for dx in range(-int(_R), int(_R) + 1) if dx * dx + dy * dy <= _R * _R],
                    np.int32)


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 colours -> opaque ARGB32 words, as QImage stores them."""
    rgb = np.asarray(rgb, np.uint32)
    return (0xFF000000 | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).astype(np.uint32)


def rasterize(px: np.ndarray, py: np.ndarray, colours: np.ndarray, width: int,
              height: int) -> np.ndarray:
    """A (height, width) ARGB32 image with a disc per point centred at pixel position
    (px, py) (floats, pixel units, y down); transparent elsewhere."""
    reach = int(_R)  # a disc's pixels lie within this many of its centre pixel
    pad = 2 * reach  # drawn into a frame this much larger, so no disc needs clipping
    wide = width + 2 * pad
    image = np.zeros((height + 2 * pad) * wide, np.uint32)
    with np.errstate(invalid="ignore"):  # NaN positions are not drawn
        cx, cy = np.floor(px), np.floor(py)
        near = (cx >= -reach) & (cx < width + reach) & (cy >= -reach) & (cy < height + reach)
    centre = ((cy[near] + pad) * wide + cx[near] + pad).astype(np.int32)
    offsets = (_OFFSETS[:, 1] * wide + _OFFSETS[:, 0]).astype(np.int32)
    # point-major (n, offsets): numpy writes a 1-D fancy assignment in order, so the last
    # point over a pixel wins, as in painter's order (numpy does not promise it; the
    # tests compare with drawing each point in turn)
    image[(centre[:, None] + offsets[None, :]).ravel()] = np.repeat(colours[near], len(offsets))
    return image.reshape(height + 2 * pad, wide)[pad:pad + height, pad:pad + width].copy()


class PointRaster(pg.GraphicsObject):
    """Points in data coordinates, drawn as discs of SIZE_PX pixels from an image made
    for the view's current range and size (remade only when either or the data change)."""

    def __init__(self):
        super().__init__()
        self.xy = np.zeros((0, 2))
        self.colours = np.zeros(0, np.uint32)  # ARGB32 per point
        self._bounds = QRectF()
        self._version = 0
        self._key: tuple | None = None
        self._image: QImage | None = None
        self._pixels: np.ndarray | None = None  # the QImage's buffer, kept alive
        self.rasterized = 0  # how many images were made (tests: zoom makes one)

    def set_data(self, xy: np.ndarray, colours: np.ndarray) -> None:
        """Positions (N, 2) and their ARGB32 colours (N,)."""
        self.prepareGeometryChange()
        self.xy = np.asarray(xy, np.float64)
        self.colours = np.asarray(colours, np.uint32)
        if len(self.xy):
            lo, hi = self.xy.min(0), self.xy.max(0)
            self._bounds = QRectF(lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])
        else:
            self._bounds = QRectF()
        self._version += 1
        self.update()

    def colour_of(self, i: int) -> tuple[int, int, int]:
        c = int(self.colours[i])
        return (c >> 16) & 0xFF, (c >> 8) & 0xFF, c & 0xFF

    # pyqtgraph's auto-range asks these
    def dataBounds(self, ax: int, frac: float = 1.0, orthoRange=None):
        if not len(self.xy):
            return (None, None)
        return float(self.xy[:, ax].min()), float(self.xy[:, ax].max())

    def pixelPadding(self) -> float:
        return _R

    def boundingRect(self) -> QRectF:
        vb = self.getViewBox()
        if vb is None or self._bounds.isNull():
            return QRectF(self._bounds)
        sx, sy = vb.viewPixelSize()
        return self._bounds.adjusted(-_R * sx, -_R * sy, _R * sx, _R * sy)

    def viewTransformChanged(self) -> None:
        self.prepareGeometryChange()  # the pixel padding is in data units
        super().viewTransformChanged()

    def paint(self, painter, option, widget=None) -> None:
        vb = self.getViewBox()
        if vb is None or not len(self.xy):
            return
        view = vb.viewRect()  # the data range the view box shows, its whole pixel size
        if not view.width() > 0 or not view.height() > 0:  # not laid out yet
            return
        dpr = painter.device().devicePixelRatioF() if painter.device() else 1.0
        w, h = max(1, round(vb.width() * dpr)), max(1, round(vb.height() * dpr))
        key = (view.x(), view.y(), view.width(), view.height(), w, h, self._version)
        if key != self._key:
            self._make_image(view, w, h)
            self._key = key
        # the image spans the view rect: pixel row v holds data y = top + v * height / h,
        # and the view's transform puts it where pyqtgraph puts the data (y up)
        painter.drawImage(view, self._image)

    def _make_image(self, view: QRectF, w: int, h: int) -> None:
        px = (self.xy[:, 0] - view.x()) * (w / view.width())
        py = (self.xy[:, 1] - view.y()) * (h / view.height())
        pixels = rasterize(px, py, self.colours, w, h)
        # the QImage reads the array's memory: the array lives as long as the image
        self._image = QImage(pixels.data, w, h, 4 * w, QImage.Format.Format_ARGB32_Premultiplied)
        self._pixels = pixels
        self.rasterized += 1
