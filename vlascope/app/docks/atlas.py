"""The atlas: every SAE feature as a point (PCA of the decoder directions at once, UMAP when
its background job is done), of one layer or of several layers side by side, coloured by
layer or by a chosen statistic. Hover shows a feature's (layer, feature) and label, a click
selects it in the feature browser (switching the browser to its layer), Shift+drag draws a
lasso that selects a group.

Fluid at 130k points (benchmarks/atlas.py; pyqtgraph against vispy in
docs/architecture.md): the points are one image rasterized with numpy for the view's range
(``PointRaster``), remade only when the map, its colours or the range change, so hover and
selection repaint only small overlay items over it; the point under the cursor comes from
a KD-tree built once per map (``PointIndex``), not a scan of every point per mouse move.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from matplotlib import colormaps
from matplotlib.path import Path as PolygonPath
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from vlascope.core.sae.atlas_layers import (
    STATISTICS,
    AtlasLayer,
    AtlasPoints,
    PointIndex,
    decoder_directions,
    lay_out,
    layer_from_features,
)

from . import Panel
from .point_raster import PointRaster, pack_rgb

HOVER_PX = 8  # how near (pixels) the cursor must be to a point to hover it
NAN_COLOUR = (90, 90, 90)  # a point whose layer lacks the statistic
ALL_LAYERS = "all layers"


class _Scatter(pg.ScatterPlotItem):
    """Points that leave clicks to the view: pyqtgraph's own click handling looks for the
    spots under the cursor by building an object per point (0.4 s at 130k)."""

    def mouseClickEvent(self, ev) -> None:
        ev.ignore()


class AtlasView(pg.PlotWidget):
    picked = Signal(int)  # a point clicked (its index)
    picked_key = Signal(str, int)  # the same click as (layer, feature)
    lassoed = Signal(list)  # points inside a lasso (indices)
    lassoed_keys = Signal(list)  # the same as [(layer, feature), ...]
    hovered = Signal(int)  # a point under the cursor (-1: none)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setBackground("#202020")
        self.hideAxis("left")
        self.hideAxis("bottom")
        self.setAspectLocked(False)
        self.xy = np.zeros((0, 2))
        self.labels: Sequence[str] = ()
        self.points: AtlasPoints | None = None
        self.index = PointIndex(self.xy)
        self.base = PointRaster()
        self.selection = _Scatter(size=9, pen=pg.mkPen("#00e5ff", width=1.5),
                                            brush=None, pxMode=True)
        self.hover_mark = _Scatter(size=12, pen=pg.mkPen("#ffffff", width=2),
                                             brush=None, pxMode=True)
        self.lasso_curve = pg.PlotCurveItem(pen=pg.mkPen("#00e5ff", width=1,
                                                         style=Qt.PenStyle.DashLine))
        self.tip = pg.TextItem(color="#ffffff", anchor=(0, 1), fill="#000000a0")
        for item in (self.base, self.selection, self.hover_mark, self.lasso_curve, self.tip):
            self.addItem(item)
        self.tip.setZValue(10)
        self.tip.hide()
        self.names: list[pg.TextItem] = []  # each layer's name above its tile
        self.hover = -1
        self.selected: list[int] = []
        self._lasso: list[tuple[float, float]] | None = None
        # Moves are taken in mouseMoveEvent, not from the scene's sigMouseMoved: pyqtgraph
        # drops moves that follow another within 1/mouseRateLimit s, so the last move of
        # a quick gesture (where the cursor stops) could leave a stale hover.
        self.scene().sigMouseClicked.connect(self._clicked)
        self.plotItem.vb.setMouseEnabled(x=True, y=True)

    # content ----------------------------------------------------------------------------
    def set_points(self, xy: np.ndarray, values: np.ndarray, labels: Sequence[str] = (),
                   cmap: str = "viridis", *, points: AtlasPoints | None = None,
                   categorical: bool = False) -> None:
        """Place the points and colour them by ``values`` (a 256-step colour map, or one
        colour per category with ``categorical``; NaN grey), once per map. ``points`` says
        which (layer, feature) each point is; without it point i is feature i."""
        xy = np.asarray(xy, np.float64)
        if xy.shape != self.xy.shape or not np.array_equal(xy, self.xy):
            self.index = PointIndex(xy)  # a colour change keeps the map, and its tree
        self.xy = xy
        self.labels = labels
        self.points = points
        v = np.asarray(values, np.float64)
        ok = np.isfinite(v)
        if categorical:
            levels = (np.asarray(colormaps[cmap].colors)[:, :3] * 255).astype(np.uint8)
            idx = np.where(ok, np.nan_to_num(v).astype(np.int64) % len(levels), len(levels))
        else:
            lo = v[ok].min() if ok.any() else 0.0
            span = v[ok].max() - lo if ok.any() else 0.0
            norm = (v - lo) / span if span > 0 else np.zeros_like(v)
            levels = (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
            idx = np.where(ok, (np.nan_to_num(norm) * 255).astype(np.int64), 256)
        palette = pack_rgb(np.vstack([levels, NAN_COLOUR]))
        self.base.set_data(self.xy, palette[idx])
        self._set_names(points)
        self.hover = -1
        self.hover_mark.setData(pos=np.zeros((0, 2)))
        self.tip.hide()
        self.set_selection(self.selected if len(self.selected) else [])
        self.autoRange()

    def _set_names(self, points: AtlasPoints | None) -> None:
        for item in self.names:
            self.removeItem(item)
        self.names = []
        if points is None or len(points.tiles) < 2:
            return
        for name, (x0, _y0, _x1, y1) in zip(points.names, points.tiles, strict=True):
            item = pg.TextItem(name, color="#d0d0d0", anchor=(0, 1))
            item.setPos(x0, y1)
            self.addItem(item)
            self.names.append(item)

    def set_selection(self, indices: Sequence[int]) -> None:
        """Ring these points (indices into the shown points)."""
        self.selected = [int(f) for f in indices if 0 <= f < len(self.xy)]
        self.selection.setData(pos=self.xy[self.selected] if self.selected else np.zeros((0, 2)))

    def key(self, i: int) -> tuple[str, int]:
        """(layer, feature) of point ``i`` ("" and i without layers)."""
        return self.points.key(i) if self.points is not None else ("", int(i))

    def text(self, i: int) -> str:
        """The hover label: layer, feature id and the feature's label."""
        if self.points is not None:
            layer, f = self.points.key(i)
            label = self.points.label(i)
            return f"{layer} · f{f}" + (f": {label}" if label else "")
        label = self.labels[i] if i < len(self.labels) else ""
        return f"f{i}" + (f": {label}" if label else "")

    # interaction ------------------------------------------------------------------------
    def nearest(self, scene_pos: QPointF) -> int:
        """The point within HOVER_PX pixels of a scene position, else -1."""
        if not len(self.xy):
            return -1
        vb = self.plotItem.vb
        p = vb.mapSceneToView(scene_pos)
        px = vb.viewPixelSize()  # data units per pixel, (x, y)
        return self.index.nearest(p.x(), p.y(), px, HOVER_PX)

    def hover_at(self, scene_pos: QPointF) -> int:
        i = self.nearest(scene_pos)
        if i != self.hover:
            self.hover = i
            if i < 0:
                self.hover_mark.setData(pos=np.zeros((0, 2)))
                self.tip.hide()
            else:
                self.hover_mark.setData(pos=self.xy[i:i + 1])
                self.tip.setText(self.text(i))
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
            self.picked_key.emit(*self.key(i))

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and \
                event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            p = self.plotItem.vb.mapSceneToView(self.mapToScene(event.position().toPoint()))
            self._lasso = [(p.x(), p.y())]
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        self._moved(self.mapToScene(event.position().toPoint()))
        if self._lasso is not None:
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
            self.lassoed_keys.emit([self.key(i) for i in inside] if self.points is None
                                   else self.points.keys(inside))
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def inside(self, polygon: Sequence[tuple[float, float]]) -> list[int]:
        """The points inside a polygon (data coordinates), in index order."""
        if len(polygon) < 3 or not len(self.xy):
            return []
        poly = np.asarray(polygon)
        lo, hi = poly.min(0), poly.max(0)  # only the points in its box are tested
        box = np.flatnonzero((self.xy[:, 0] >= lo[0]) & (self.xy[:, 0] <= hi[0]) &
                             (self.xy[:, 1] >= lo[1]) & (self.xy[:, 1] <= hi[1]))
        hit = PolygonPath(poly).contains_points(self.xy[box])
        return box[hit].tolist()


def umap_cache(sae_path: str) -> Path:
    """Where an SAE's UMAP map is cached: ``atlas.npz`` in its folder (an SAE opened by
    its sae.json shares the trained folder's cache; an Action Atlas ``sae_best.pt`` gets
    ``sae_best.atlas.npz`` beside it)."""
    p = Path(sae_path)
    if p.is_dir():
        return p / "atlas.npz"
    if p.name in ("sae.json", "sae.safetensors"):
        return p.parent / "atlas.npz"
    return p.parent / f"{p.stem}.atlas.npz"


class AtlasDock(Panel):
    """The atlas of the SAEs the Features dock has shown, one per layer (a newer SAE of a
    layer replaces the older): PCA at once, UMAP per layer when its job finishes.

    The Features dock browses one SAE at a time; the atlas keeps every layer it was given
    (trained, loaded, or added here with "Add SAEs...", which loads each file through the
    Features dock so that its statistics are measured on the shown episode like any
    other), so features can be compared across layers. A click or a lasso on another
    layer's points switches the Features dock to that layer."""

    def __init__(self, features_dock=None, parent: QWidget | None = None):
        super().__init__("Atlas", "dock-atlas", parent)
        self.features_dock = features_dock
        self.features = None  # the FeatureSet most recently shown
        self.feature_sets: dict[str, object] = {}  # layer -> FeatureSet
        self.layers: dict[str, AtlasLayer] = {}
        self.points: AtlasPoints | None = None
        self.xy = np.zeros((0, 2))
        self.job = None
        self._job_layer = ""
        self.embed_fn = None  # None: UMAP (tests pass a quicker reducer)
        self._umap_queue: list[str] = []
        self._umap_started: set[str] = set()
        self.lasso_keys: list[tuple[str, int]] = []
        row = QHBoxLayout()
        self.layer_pick = QComboBox()
        self.layer_pick.addItem(ALL_LAYERS)
        self.layer_pick.setToolTip("show every layer's features side by side, or one layer")
        self.colour = QComboBox()
        self.colour.addItems([*STATISTICS, "layer"])
        self.add = QPushButton("Add SAEs...")
        self.add.setToolTip("load more SAEs (other layers) into the atlas; each is measured "
                            "on the shown episode")
        self.method = QLabel("no SAE yet")
        row.addWidget(self.layer_pick)
        row.addWidget(QLabel("colour by"))
        row.addWidget(self.colour)
        row.addWidget(self.add)
        self.body.addLayout(row)
        self.body.addWidget(self.method)
        self.view = AtlasView()
        self.body.addWidget(self.view, 1)
        self.hint = QLabel("hover: label · click: select · Shift+drag: lasso a group")
        self.hint.setWordWrap(True)
        self.body.addWidget(self.hint)
        self._poll = QTimer(self)
        self._poll.setInterval(500)
        self._poll.timeout.connect(self._check_job)
        self.colour.currentTextChanged.connect(lambda _t: self._draw())
        self.layer_pick.currentTextChanged.connect(lambda _t: self._draw())
        self.add.clicked.connect(self._add_files)
        self.view.picked_key.connect(self.select)
        self.view.lassoed_keys.connect(self._lassoed)
        if features_dock is not None:  # None: a bare atlas (pictures, benchmarks)
            features_dock.controller.features_ready.connect(self.show_features)
            features_dock.feature_selected.connect(self._feature_selected)
        else:
            self.add.hide()
        self.visibilityChanged.connect(lambda shown: shown and self.shown() and
                                       self._start_umap())

    # layers -----------------------------------------------------------------------------
    def show_features(self, features) -> None:
        """Add (or replace) the layer of a FeatureSet: PCA of its decoder directions at
        once; UMAP (cached beside the SAE) starts in the background when the atlas is
        first shown, so a hidden atlas costs nothing."""
        old = self.feature_sets.get(features.layer)
        self.features = features
        self.feature_sets[features.layer] = features
        if old is features and features.layer in self.layers:  # re-measured: same map
            lay = self.layers[features.layer]
            lay.stats = layer_from_features(features, lay.xy, lay.method).stats
        else:
            self.layers[features.layer] = layer_from_features(features)
            self._umap_started.discard(features.layer)
            if features.layer in self._umap_queue:
                self._umap_queue.remove(features.layer)
        self._sync_picker()
        self._draw()
        if self.shown():
            self._start_umap()

    def add_layer(self, layer: AtlasLayer) -> None:
        """A layer from elsewhere (a precomputed map, a benchmark): shown, not browsable."""
        self.layers[layer.name] = layer
        self._sync_picker()
        self._draw()

    def _sync_picker(self) -> None:
        names = [ALL_LAYERS, *self.layers]
        current = [self.layer_pick.itemText(i) for i in range(self.layer_pick.count())]
        if names != current:
            keep = self.layer_pick.currentText()
            self.layer_pick.blockSignals(True)
            self.layer_pick.clear()
            self.layer_pick.addItems(names)
            self.layer_pick.setCurrentText(keep if keep in names else ALL_LAYERS)
            self.layer_pick.blockSignals(False)

    def _add_files(self) -> None:
        from .features import SAE_FILTER

        paths, _ = QFileDialog.getOpenFileNames(self, "Add SAEs to the atlas", "",
                                                SAE_FILTER)
        for path in paths:  # the engine runs them one after another
            self.features_dock.controller.load_features(
                path, self.features_dock.layer.currentText())

    def shown(self) -> bool:
        """On screen, not merely alive behind another tab."""
        return self.isVisible() and not self.visibleRegion().isEmpty()

    # UMAP, one layer at a time ------------------------------------------------------------
    def _start_umap(self) -> None:
        for name, lay in self.layers.items():
            if name in self.feature_sets and lay.path and name not in self._umap_started \
                    and lay.method != "UMAP":
                self._umap_started.add(name)
                self._umap_queue.append(name)
        if self.job is None:
            self._next_umap()

    def _next_umap(self) -> None:
        """Start the next queued layer's UMAP (a cached one is applied at once): one job at
        a time, so two cores are not split between several fits."""
        from vlascope.core.sae.atlas import atlas, atlas_job

        while self._umap_queue:
            name = self._umap_queue.pop(0)
            fs = self.feature_sets.get(name)
            if fs is None or name not in self.layers:
                continue
            cache = umap_cache(fs.path)
            xy, kind = atlas(decoder_directions(fs), cache, background=True,
                             embed_fn=self.embed_fn)
            if kind == "umap":
                self._set_map(name, xy)
                continue
            self.job, self._job_layer = atlas_job(cache), name
            self._show_method()
            self._poll.start()
            return
        self._show_method()

    def _set_map(self, name: str, xy: np.ndarray) -> None:
        lay = self.layers[name]
        if len(xy) == lay.n:
            lay.xy, lay.method = np.asarray(xy, np.float32), "UMAP"
            self._draw()

    def _check_job(self) -> None:
        job = self.job
        if job is None or not job.done:
            return
        self._poll.stop()
        self.job = None
        emb = job.result(0)
        name = self._job_layer
        if emb is not None and name in self.layers:
            self._set_map(name, emb)
        elif job.error is not None and name in self.layers:
            self.layers[name].method = f"PCA (UMAP failed: {job.error})"
        self._next_umap()

    def _show_method(self) -> None:
        shown = self.points.layers if self.points is not None else []
        if not shown:
            self.method.setText("no SAE yet")
            return
        if len(shown) == 1:
            lay = shown[0]
            busy = self.job is not None and self._job_layer == lay.name
            self.method.setText("PCA (UMAP computing...)" if busy else lay.method)
            return
        umap = sum(lay.method == "UMAP" for lay in shown)
        text = f"{len(self.points):,} features in {len(shown)} layers; UMAP {umap} of " \
               f"{len(shown)}"
        if self.job is not None:
            text += f" (computing {self._job_layer}...)"
        self.method.setText(text)

    # drawing and selection ----------------------------------------------------------------
    def _draw(self) -> None:
        if not self.layers:
            return
        pick = self.layer_pick.currentText()
        only = pick if pick in self.layers else None
        self.points = lay_out(list(self.layers.values()), only)
        self.xy = self.points.xy
        by = self.colour.currentText()
        values = self.points.values(by)
        self.view.set_points(self.xy, values, points=self.points,
                             cmap="tab10" if by == "layer" else "viridis",
                             categorical=by == "layer")
        self._feature_selected_now()
        self._show_method()

    def select(self, layer: str, feature: int) -> None:
        """Show a feature of a layer in the Features dock (switching it to that layer)."""
        fs = self.feature_sets.get(layer)
        if fs is None or self.features_dock is None:
            return
        if self.features_dock.features is not fs:
            self.features_dock.show_features(fs)
        self.features_dock.select_feature(feature)

    def _lassoed(self, keys: list) -> None:
        """The Features dock lists the lassoed features of the layer holding most of them
        (it browses one layer); all of them, per layer, stay in ``lasso_keys``."""
        self.lasso_keys = list(keys)
        ringed = list(self.view.selected)  # the lasso's points, before the browser moves
        per_layer: dict[str, list[int]] = {}
        for layer, f in keys:
            per_layer.setdefault(layer, []).append(f)
        if not per_layer:
            return
        summary = ", ".join(f"{name} {len(fs)}" for name, fs in per_layer.items())
        self.hint.setText(f"lasso: {len(keys)} features ({summary})")
        layer = max(per_layer, key=lambda name: len(per_layer[name]))
        fs = self.feature_sets.get(layer)
        if fs is None or self.features_dock is None:
            return
        if self.features_dock.features is not fs:
            self.features_dock.show_features(fs)  # selects its densest feature...
        self.features_dock.show_only(per_layer[layer])
        self.view.set_selection(ringed)  # ...but the atlas keeps the lassoed group ringed

    def _feature_selected(self, feature: int) -> None:
        fs = self.features_dock.features if self.features_dock is not None else None
        if fs is not None and self.points is not None:
            self.view.set_selection(self.points.index_of(fs.layer, [feature]))

    def _feature_selected_now(self) -> None:
        f = self.features_dock.selected_feature() if self.features_dock is not None \
            else None
        if f is not None:
            self._feature_selected(f)
