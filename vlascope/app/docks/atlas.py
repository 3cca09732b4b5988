"""The atlas: every SAE feature as a point (PCA of the decoder directions at once, UMAP when
its background job is done), coloured by a chosen statistic. Hover shows a feature's
label, a click selects it in the feature browser, Shift+drag draws a lasso that selects a
group.

Fluid at 16k points: the colour of every point is set once per map; hover and selection
redraw only two small overlay items, and the nearest point is found with numpy in screen
space (benchmarks/atlas.py measures it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from matplotlib import colormaps
from matplotlib.path import Path as PolygonPath
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from vlascope.core.sae.atlas import pca_embedding

from . import Panel

HOVER_PX = 8  # how near (pixels) the cursor must be to a point to hover it


class AtlasView(pg.PlotWidget):
    picked = Signal(int)  # a feature clicked
    lassoed = Signal(list)  # features inside a lasso
    hovered = Signal(int)  # a feature under the cursor (-1: none)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setBackground("#202020")
        self.hideAxis("left")
        self.hideAxis("bottom")
        self.setAspectLocked(False)
        self.xy = np.zeros((0, 2))
        self.labels: list[str] = []
        self.base = pg.ScatterPlotItem(size=5, pen=None, pxMode=True)
        self.selection = pg.ScatterPlotItem(size=9, pen=pg.mkPen("#00e5ff", width=1.5),
                                            brush=None, pxMode=True)
        self.hover_mark = pg.ScatterPlotItem(size=12, pen=pg.mkPen("#ffffff", width=2),
                                             brush=None, pxMode=True)
        self.lasso_curve = pg.PlotCurveItem(pen=pg.mkPen("#00e5ff", width=1,
                                                         style=Qt.PenStyle.DashLine))
        self.tip = pg.TextItem(color="#ffffff", anchor=(0, 1), fill="#000000a0")
        for item in (self.base, self.selection, self.hover_mark, self.lasso_curve, self.tip):
            self.addItem(item)
        self.tip.setZValue(10)
        self.tip.hide()
        self.hover = -1
        self.selected: list[int] = []
        self._lasso: list[tuple[float, float]] | None = None
        self.scene().sigMouseMoved.connect(self._moved)
        self.scene().sigMouseClicked.connect(self._clicked)
        self.plotItem.vb.setMouseEnabled(x=True, y=True)

    # content ----------------------------------------------------------------------------
    def set_points(self, xy: np.ndarray, values: np.ndarray, labels: Sequence[str],
                   cmap: str = "viridis") -> None:
        """Place the features and colour them by ``values`` (one brush per point, once)."""
        self.xy = np.asarray(xy, np.float64)
        self.labels = list(labels)
        v = np.asarray(values, np.float64)
        span = np.ptp(v) if len(v) else 0.0
        norm = (v - v.min()) / span if span > 0 else np.zeros_like(v)
        # 256 shared brushes instead of one per point: 16k QBrush objects cost seconds
        levels = (colormaps[cmap](np.linspace(0, 1, 256)) * 255).astype(np.uint8)
        palette = [pg.mkBrush(*c) for c in levels]
        brushes = [palette[i] for i in (norm * 255).astype(np.int64)]
        self.base.setData(pos=self.xy, brush=brushes)
        self.set_selection(self.selected if len(self.selected) else [])
        self.autoRange()

    def set_selection(self, features: Sequence[int]) -> None:
        self.selected = [f for f in features if 0 <= f < len(self.xy)]
        self.selection.setData(pos=self.xy[self.selected] if self.selected else np.zeros((0, 2)))

    # interaction ------------------------------------------------------------------------
    def nearest(self, scene_pos: QPointF) -> int:
        """The feature within HOVER_PX pixels of a scene position, else -1."""
        if not len(self.xy):
            return -1
        vb = self.plotItem.vb
        p = vb.mapSceneToView(scene_pos)
        px = vb.viewPixelSize()  # data units per pixel, (x, y)
        d = ((self.xy[:, 0] - p.x()) / px[0]) ** 2 + ((self.xy[:, 1] - p.y()) / px[1]) ** 2
        i = int(np.argmin(d))
        return i if d[i] <= HOVER_PX ** 2 else -1

    def hover_at(self, scene_pos: QPointF) -> int:
        i = self.nearest(scene_pos)
        if i != self.hover:
            self.hover = i
            if i < 0:
                self.hover_mark.setData(pos=np.zeros((0, 2)))
                self.tip.hide()
            else:
                self.hover_mark.setData(pos=self.xy[i:i + 1])
                label = self.labels[i] if i < len(self.labels) else ""
                self.tip.setText(f"f{i}" + (f": {label}" if label else ""))
                self.tip.setPos(*self.xy[i])
                self.tip.show()
            self.hovered.emit(i)
        return i

    def _moved(self, scene_pos: QPointF) -> None:
        if self._lasso is not None:
            p = self.plotItem.vb.mapSceneToView(scene_pos)
            self._lasso.append((p.x(), p.y()))
            pts = np.asarray(self._lasso)
            self.lasso_curve.setData(pts[:, 0], pts[:, 1])
            return
        self.hover_at(scene_pos)

    def _clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._lasso is not None:
            return
        i = self.nearest(event.scenePos())
        if i >= 0:
            self.set_selection([i])
            self.picked.emit(i)

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and \
                event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            p = self.plotItem.vb.mapSceneToView(self.mapToScene(event.position().toPoint()))
            self._lasso = [(p.x(), p.y())]
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._lasso is not None:
            self._moved(self.mapToScene(event.position().toPoint()))
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._lasso is not None:
            inside = self.inside(self._lasso)
            self._lasso = None
            self.lasso_curve.setData([], [])
            self.set_selection(inside)
            self.lassoed.emit(inside)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def inside(self, polygon: Sequence[tuple[float, float]]) -> list[int]:
        if len(polygon) < 3 or not len(self.xy):
            return []
        return np.flatnonzero(PolygonPath(np.asarray(polygon)).contains_points(self.xy)).tolist()


COLOUR_BY = {"density": lambda fs: fs.stats.density,
             "mean activation": lambda fs: fs.stats.mean_active,
             "peak step": lambda fs: fs.step_max.argmax(0).astype(float)}


class AtlasDock(Panel):
    """The atlas of the Features dock's SAE: PCA at once, UMAP when its job finishes."""

    def __init__(self, features_dock, parent: QWidget | None = None):
        super().__init__("Atlas", "dock-atlas", parent)
        self.features_dock = features_dock
        self.features = None
        self.job = None
        self.embed_fn = None  # None: UMAP (tests pass a quicker reducer)
        self._umap_started = False
        row = QHBoxLayout()
        self.colour = QComboBox()
        self.colour.addItems(list(COLOUR_BY))
        self.method = QLabel("no SAE yet")
        row.addWidget(QLabel("colour by"))
        row.addWidget(self.colour)
        row.addWidget(self.method, 1)
        self.body.addLayout(row)
        self.view = AtlasView()
        self.body.addWidget(self.view, 1)
        self.hint = QLabel("hover: label · click: select · Shift+drag: lasso a group")
        self.body.addWidget(self.hint)
        self._poll = QTimer(self)
        self._poll.setInterval(500)
        self._poll.timeout.connect(self._check_job)
        self.colour.currentTextChanged.connect(lambda _t: self._draw())
        self.view.picked.connect(features_dock.select_feature)
        self.view.lassoed.connect(features_dock.show_only)
        features_dock.controller.features_ready.connect(self.show_features)
        features_dock.feature_selected.connect(lambda f: self.view.set_selection([f]))
        self.visibilityChanged.connect(lambda shown: shown and self.shown() and
                                       self._start_umap())

    def show_features(self, features) -> None:
        """PCA of the decoder directions at once; UMAP (cached beside the SAE) starts in
        the background when the atlas is first shown, so a hidden atlas costs nothing."""
        self.features = features
        self.directions = features.sae.W_dec.detach().float().cpu().numpy()
        self.xy = pca_embedding(self.directions)
        self.method.setText("PCA")
        self._umap_started = False
        self._draw()
        if self.shown():
            self._start_umap()

    def shown(self) -> bool:
        """On screen, not merely alive behind another tab."""
        return self.isVisible() and not self.visibleRegion().isEmpty()

    def _start_umap(self) -> None:
        from vlascope.core.sae.atlas import atlas, atlas_job

        if self.features is None or self._umap_started or not self.features.path:
            return
        self._umap_started = True
        cache = Path(self.features.path) / "atlas.npz"
        xy, kind = atlas(self.directions, cache, background=True, embed_fn=self.embed_fn)
        if kind == "umap":
            self.xy = xy
            self.method.setText("UMAP")
            self._draw()
            return
        self.job = atlas_job(cache)
        self.method.setText("PCA (UMAP computing...)")
        self._poll.start()

    def _draw(self) -> None:
        if self.features is None:
            return
        values = COLOUR_BY[self.colour.currentText()](self.features)
        self.view.set_points(self.xy, values, self.features.stats.labels)

    def _check_job(self) -> None:
        job = self.job
        if job is None or not job.done:
            return
        self._poll.stop()
        self.job = None
        emb = job.result(0)
        if emb is not None and len(emb) == len(self.xy):
            self.xy = emb
            self.method.setText("UMAP")
            self._draw()
        else:
            self.method.setText(f"PCA (UMAP failed: {job.error})" if job.error else "PCA")
