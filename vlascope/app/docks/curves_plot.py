"""A small line plot of the faithfulness curves (deletion and insertion of the shown map,
solid; of a random map, dashed), drawn with QPainter: no plotting library in the GUI."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from vlascope.core.saliency.faithfulness import FaithfulnessCurves

LINES = (("deletion", "#d62728", Qt.PenStyle.SolidLine),
         ("random_deletion", "#d62728", Qt.PenStyle.DashLine),
         ("insertion", "#1f77b4", Qt.PenStyle.SolidLine),
         ("random_insertion", "#1f77b4", Qt.PenStyle.DashLine))


class CurvesPlot(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("faithfulness-plot")
        self.curves: FaithfulnessCurves | None = None
        self.setMinimumHeight(100)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("action change from the clean frame as k% of the pixels are deleted "
                        "(red) or inserted (blue), most salient first; dashed: a random map")

    def set_curves(self, curves: FaithfulnessCurves | None) -> None:
        self.curves = curves
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), self.palette().base())
        area = QRectF(self.rect()).adjusted(30, 8, -8, -18)
        p.setPen(QPen(self.palette().text().color(), 1))
        p.drawRect(area)
        p.drawText(QRectF(area.left(), area.bottom() + 2, area.width(), 14),
                   Qt.AlignmentFlag.AlignCenter, "k (% of pixels, most salient first)")
        c = self.curves
        if c is None:
            p.drawText(area, Qt.AlignmentFlag.AlignCenter, "no curves yet")
            return
        top = max(max(getattr(c, name)) for name, _, _ in LINES) or 1.0
        p.drawText(QRectF(0, area.top() - 4, 28, 14), Qt.AlignmentFlag.AlignRight, f"{top:.2g}")
        p.drawText(QRectF(0, area.bottom() - 10, 28, 14), Qt.AlignmentFlag.AlignRight, "0")
        for name, colour, style in LINES:
            path = QPainterPath()
            for i, (k, v) in enumerate(zip(c.ks, getattr(c, name), strict=True)):
                pt = QPointF(area.left() + area.width() * k / 100.0,
                             area.bottom() - area.height() * v / top)
                if i == 0:
                    path.moveTo(pt)
                else:
                    path.lineTo(pt)
            p.setPen(QPen(QColor(colour), 2, style))
            p.drawPath(path)
