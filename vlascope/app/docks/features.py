"""Features: train or load an SAE on a layer of the loaded policy over the shown episode,
browse its features (searchable, sortable), see the selected one over the episode's steps,
its top frames with the token that fired, and its map on the current frame; pin features
to steer (alpha from -4 to 4) or ablate them in the live rollout from the next step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from vlascope.core.colormap import blend
from vlascope.core.features import FeatureSet
from vlascope.core.workspace import Workspace

from . import Panel
from .feature_table import FeatureTableModel

N_EFFECTS = 32  # features whose ablation effect "Measure effects" computes
N_TOP = 6
THUMB = 96
ALPHA_SCALE = 10  # slider units per unit of alpha
# vlascope SAEs are opened by a file of their folder; Action Atlas' by their checkpoint
SAE_FILTER = "SAEs (sae.json sae.safetensors sae_best.pt *.pt);;All files (*)"


def to_pixmap(image: np.ndarray, size: int | None = None) -> QPixmap:
    """(H, W, 3) uint8 -> QPixmap (scaled to ``size`` pixels high when given)."""
    img = np.ascontiguousarray(image[..., :3])
    h, w = img.shape[:2]
    qimg = QImage(img.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    pix = QPixmap.fromImage(qimg)
    return pix.scaledToHeight(size, Qt.TransformationMode.SmoothTransformation) if size else pix


class SteerRow(QWidget):
    """One pinned feature: alpha slider (0 is off) and an ablate toggle."""

    def __init__(self, feature: int, on_change, on_remove):
        super().__init__()
        self.feature = feature
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel(f"f{feature}"))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(-4 * ALPHA_SCALE, 4 * ALPHA_SCALE)
        self.slider.setValue(0)
        self.slider.setToolTip("steering strength alpha (x the feature's mean activation); "
                               "0 is off")
        self.value = QLabel("α 0.0")
        self.value.setMinimumWidth(44)
        self.ablate = QCheckBox("ablate")
        self.remove = QPushButton("×")
        self.remove.setFixedWidth(24)
        for w in (self.slider, self.value, self.ablate, self.remove):
            row.addWidget(w, 1 if w is self.slider else 0)
        self.slider.valueChanged.connect(
            lambda v: self.value.setText(f"α {v / ALPHA_SCALE:+.1f}"))
        self.slider.sliderReleased.connect(on_change)
        self.slider.valueChanged.connect(lambda _v: not self.slider.isSliderDown()
                                         and on_change())
        self.ablate.toggled.connect(lambda _c: on_change())
        self.remove.clicked.connect(lambda: on_remove(self))

    @property
    def alpha(self) -> float:
        return self.slider.value() / ALPHA_SCALE


class FeaturesDock(Panel):
    feature_selected = Signal(int)

    def __init__(self, workspace: Workspace, controller, parent: QWidget | None = None):
        super().__init__("Features", "dock-features", parent)
        self.ws, self.controller = workspace, controller
        self.features: FeatureSet | None = None
        col = self.body

        form = QFormLayout()
        self.layer = QComboBox()
        self.layer.setToolTip("hook point whose visual tokens the SAE reads")
        form.addRow("layer", self.layer)
        sizes = QHBoxLayout()
        self.expansion, self.k, self.steps = QSpinBox(), QSpinBox(), QSpinBox()
        for box, lo, hi, value, tip in (
                (self.expansion, 1, 64, 4, "features per input dimension"),
                (self.k, 1, 1024, 16, "active features per token (TopK)"),
                (self.steps, 10, 100000, 300, "training steps")):
            box.setRange(lo, hi)
            box.setValue(value)
            box.setToolTip(tip)
        for name, box in (("×", self.expansion), ("k", self.k), ("steps", self.steps)):
            sizes.addWidget(QLabel(name))
            sizes.addWidget(box)
        form.addRow("SAE", sizes)
        col.addLayout(form)
        buttons = QGridLayout()
        self.train = QPushButton("Train SAE")
        self.train.setToolTip("Capture the layer over the shown episode and train an SAE")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.load = QPushButton("Load SAE...")
        self.load.setToolTip("Open a saved SAE (its sae.json) or an Action Atlas sae_best.pt; "
                             "an Atlas layer vlascope cannot map reads the layer picked above")
        self.save = QPushButton("Save SAE as...")
        self.save.setEnabled(False)
        self.effects = QPushButton("Measure effects")
        self.effects.setToolTip(f"ablate each of the {N_EFFECTS} densest features alone over "
                                "the episode's frames: the largest action change")
        self.effects.setEnabled(False)
        # two rows, so the dock fits beside the scene on a 1366 px screen
        for i, b in enumerate((self.train, self.cancel, self.effects, self.load, self.save)):
            buttons.addWidget(b, i // 3, i % 3)
        col.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        col.addWidget(self.progress)
        self.status = QLabel("no SAE yet")
        self.status.setWordWrap(True)
        col.addWidget(self.status)
        self.loss_plot = pg.PlotWidget()
        self.loss_plot.setBackground("#202020")
        self.loss_plot.setFixedHeight(70)
        self.loss_plot.addLegend(offset=(5, 5), labelTextSize="7pt")
        self.loss_curve = self.loss_plot.plot(pen="#f4a261", name="loss")
        self.fve_curve = self.loss_plot.plot(pen="#2a9d8f", name="FVE")
        col.addWidget(self.loss_plot)
        self._history: list[tuple[int, float, float]] = []

        self.search = QLineEdit()
        self.search.setPlaceholderText("filter features: id or label")
        col.addWidget(self.search)
        self.model = FeatureTableModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        # columns share the dock's width instead of scrolling sideways
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setMinimumSectionSize(40)
        self.table.setMinimumHeight(120)
        self.table.horizontalHeader().setSortIndicator(1, Qt.SortOrder.DescendingOrder)
        self.table.setSortingEnabled(True)  # a header click: FeatureTableModel.sort
        col.addWidget(self.table, 2)

        self.tabs = QTabWidget()  # the selected feature | steering
        feature_page, steer_page = QWidget(), QWidget()
        self.tabs.addTab(feature_page, "Selected feature")
        self.tabs.addTab(steer_page, "Steering")
        col.addWidget(self.tabs, 3)
        detail_col = QVBoxLayout(feature_page)
        detail_col.setContentsMargins(2, 2, 2, 2)
        self.detail = QLabel("select a feature")
        self.detail.setWordWrap(True)
        detail_col.addWidget(self.detail)
        self.step_plot = pg.PlotWidget()
        self.step_plot.setBackground("#202020")
        self.step_plot.setFixedHeight(80)
        self.step_plot.setLabel("bottom", "step")
        self.step_curve = self.step_plot.plot(pen="#e9c46a")
        self.step_cursor = pg.InfiniteLine(pos=0, angle=90, pen="#ffffff")
        self.step_plot.addItem(self.step_cursor)
        self.step_plot.scene().sigMouseClicked.connect(self._step_plot_clicked)
        detail_col.addWidget(self.step_plot)
        tops = QGridLayout()
        self.thumbs: list[QPushButton] = []
        for i in range(N_TOP):
            b = QPushButton()
            b.setFlat(True)
            b.setFixedSize(THUMB + 8, THUMB + 8)
            b.clicked.connect(lambda _c=False, i=i: self._jump_to_top(i))
            tops.addWidget(b, i // 3, i % 3)  # 3 a row: fits a narrow dock
            self.thumbs.append(b)
        detail_col.addLayout(tops)
        self._top: list[tuple[int, int, float]] = []
        self.frame_map = QLabel()
        self.frame_map.setMinimumHeight(THUMB)
        self.frame_map.setAlignment(Qt.AlignmentFlag.AlignCenter)
        detail_col.addWidget(self.frame_map, 1)
        self.store = QPushButton("Store its map in the episode (for video)")
        self.store.setToolTip("the feature's map over every step, written into the shown "
                              "episode's file like a saliency map; File > Export video can "
                              "then show it")
        detail_col.addWidget(self.store)

        steer_col = QVBoxLayout(steer_page)
        steer_note = QLabel("Pinned features act on the live rollout from the next step "
                            "(and on every rollout started after).")
        steer_note.setWordWrap(True)
        steer_col.addWidget(steer_note)
        self.ablate_layer = QCheckBox("ablate the whole layer (zeros)")
        steer_col.addWidget(self.ablate_layer)
        self.steer_rows_layout = QGridLayout()
        self.pin = QPushButton("Pin selected feature")
        self.steer_rows_layout.addWidget(self.pin, 0, 0)
        steer_col.addLayout(self.steer_rows_layout)
        steer_col.addStretch(1)
        self.steer_rows: list[SteerRow] = []

        self.make_scrollable()
        self._map_timer = QTimer(self)
        self._map_timer.setSingleShot(True)
        self._map_timer.setInterval(80)
        self._map_timer.timeout.connect(self._request_map)

        self.train.clicked.connect(self._train)
        self.cancel.clicked.connect(lambda: controller.engine.cancel("train-features"))
        self.load.clicked.connect(self._load)
        self.save.clicked.connect(self._save)
        self.effects.clicked.connect(self._measure_effects)
        self.search.textChanged.connect(self._filter)
        self.table.selectionModel().selectionChanged.connect(
            lambda _new, _old: self._selection_changed())
        self.pin.clicked.connect(self.pin_selected)
        self.store.clicked.connect(self._store_maps)
        self.ablate_layer.toggled.connect(lambda _c: self._steering_changed())
        controller.policy_hooks.connect(self._show_layers)
        controller.policy_unavailable.connect(self._show_unavailable)
        controller.features_progress.connect(self._progress)
        controller.features_ready.connect(self.show_features)
        controller.feature_map_ready.connect(self._map_ready)
        workspace.step_changed.connect(self._step_changed)
        workspace.recording_changed.connect(lambda _r: self._clear_map())

    # layers and training ----------------------------------------------------------------
    def _show_layers(self, points: list) -> None:
        current = self.layer.currentText()
        names = [p.name for p in points if p.name == "tokens.visual" or "visual" in p.tokens]
        if self.features is not None and self.features.layer not in [p.name for p in points]:
            self.unpin_all()  # another policy: its SAE and pins no longer apply
        self.layer.clear()
        self.layer.addItems(names)
        resid = [n for n in names if n.endswith(".resid")]
        pick = current if current in names else (resid[len(resid) // 2] if resid else "")
        if pick:
            self.layer.setCurrentText(pick)

    def _show_unavailable(self, why: str) -> None:
        """A policy without hook points (a plain openpi server) says why training is off."""
        self.train.setEnabled(not why)
        self.train.setToolTip(why or "Capture the layer over the shown episode and train "
                              "an SAE")
        self.layer.setToolTip(why or "hook point whose visual tokens the SAE reads")
        if why:
            self.status.setText(f"unavailable: {why}")
        elif self.status.text().startswith("unavailable: "):
            self.status.setText("")

    def _train(self) -> None:
        if not self.layer.currentText():
            self.status.setText("the loaded policy exposes no layer with visual tokens")
            return
        self._history.clear()
        self.status.setText(f"capturing {self.layer.currentText()} ...")
        self.controller.train_features(self.layer.currentText(), self.expansion.value(),
                                       self.k.value(), self.steps.value())

    def _load(self) -> None:
        """Pick an SAE by one of its files: ours (sae.json) or an Action Atlas checkpoint
        (sae_best.pt), whose layer, where vlascope knows none, is the layer picked above."""
        path, _ = QFileDialog.getOpenFileName(self, "Open an SAE", "", SAE_FILTER)
        if path:
            self.controller.load_features(path, self.layer.currentText())

    def _save(self) -> None:
        from vlascope.core.sae import save_sae

        folder = QFileDialog.getExistingDirectory(self, "Save the SAE into folder")
        if folder and self.features is not None:
            save_sae(self.features.sae, folder)
            self.status.setText(f"SAE saved in {folder}")

    def _store_maps(self) -> None:
        f = self.selected_feature()
        if f is not None and self.features is not None:
            self.controller.store_feature_maps(self.features, f)

    def _measure_effects(self) -> None:
        if self.features is not None:
            densest = np.argsort(-self.features.stats.density)[:N_EFFECTS]
            self.controller.feature_effects(self.features, [int(f) for f in densest])

    def _progress(self, phase: str, done: int, total: int, info: dict) -> None:
        busy = phase != "done"
        for b in (self.train, self.load, self.save, self.effects):
            b.setEnabled(not busy and (b in (self.train, self.load) or
                                       self.features is not None))
        self.cancel.setEnabled(busy)
        if not busy:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("%p%")
            return
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{phase} %p%")
        if phase == "train" and "loss" in info:
            self._history.append((done, info["loss"], info.get("fve", np.nan)))
            if done == total or done % 10 == 0:
                h = np.asarray(self._history)
                self.loss_curve.setData(h[:, 0], h[:, 1] / max(h[:, 1].max(), 1e-12))
                self.fve_curve.setData(h[:, 0], h[:, 2])
                self.status.setText(f"training: step {done}/{total}, loss {info['loss']:.4g}, "
                                    f"FVE {info.get('fve', float('nan')):.3f}")

    # the browser ------------------------------------------------------------------------
    def show_features(self, features: FeatureSet) -> None:
        keep = self.selected_feature() if features is self.features else None
        self.features = features
        self.save.setEnabled(True)
        self.effects.setEnabled(True)
        rep = features.result.report if features.result is not None else None
        quality = (f", held-out FVE {rep.fve:.3f}, L0 {rep.l0:.1f}, "
                   f"dead {rep.dead_fraction:.0%}") if rep is not None else ""
        self.status.setText(f"{features.n_features} features on {features.layer} from "
                            f"{len(features.samples.x)} vectors{quality}; saved in "
                            f"{features.path}")
        self.model.set_features(features)  # sorted as the header says, filter kept
        self.select_feature(keep if keep is not None else
                            int(np.argmax(features.stats.density)))

    def _filter(self, text: str) -> None:
        self.model.set_filter(text)

    def shown_features(self) -> list[int]:
        """The features the table lists, top to bottom (after sorting and filtering)."""
        return self.model.shown()

    def show_only(self, features: list[int]) -> None:
        """List only these features (a lasso on the atlas); clear the filter to see all."""
        self.search.setText("lasso:" + ",".join(str(f) for f in features))

    def select_feature(self, feature: int) -> None:
        row = self.model.row_of(feature)
        if row >= 0:
            self.table.selectRow(row)
            self.table.scrollTo(self.model.index(row, 0))

    def selected_feature(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.feature_at(rows[0].row()) if rows else None

    def _selection_changed(self) -> None:
        f = self.selected_feature()
        if f is None or self.features is None:
            return
        fs = self.features
        label = fs.stats.labels[f]
        self.detail.setText(f"feature {f}: density {fs.stats.density[f]:.3f}, mean active "
                            f"{fs.stats.mean_active[f]:.3g}" + (f", {label}" if label else ""))
        values = fs.step_max[:, f]
        self.step_curve.setData(np.arange(len(values)), values)
        self._top = fs.top_frames(f, N_TOP)
        self._draw_thumbs()
        self._map_timer.start()
        self.feature_selected.emit(f)

    def _draw_thumbs(self) -> None:
        rec, fs = self.ws.recording, self.features
        for i, button in enumerate(self.thumbs):
            if rec is None or fs is None or i >= len(self._top) or \
                    self._top[i][0] >= rec.n_steps:
                button.setIcon(QPixmap())
                button.setToolTip("")
                continue
            step, token, value = self._top[i]
            cam, r, c, grid = fs.cell(token)
            frame = rec.frame(step, cam)
            pix = to_pixmap(frame)
            painter = QPainter(pix)
            painter.setPen(QPen(QColor("#00e5ff"), max(1, pix.width() // 48)))
            h, w = frame.shape[:2]
            painter.drawRect(int(c * w / grid[1]), int(r * h / grid[0]),
                             int(w / grid[1]), int(h / grid[0]))
            painter.end()
            button.setIcon(pix.scaledToHeight(THUMB))
            button.setIconSize(pix.scaledToHeight(THUMB).size())
            button.setToolTip(f"step {step}, {cam} token ({r}, {c}): {value:.3g}")

    def _jump_to_top(self, i: int) -> None:
        if i < len(self._top):
            self.ws.set_step(self._top[i][0])

    def _step_plot_clicked(self, event) -> None:
        if self.features is None:
            return
        x = self.step_plot.getPlotItem().vb.mapSceneToView(event.scenePos()).x()
        rec = self.ws.recording
        if rec is not None and rec.n_steps:
            self.ws.set_step(int(np.clip(round(x), 0, rec.n_steps - 1)))

    # the current frame ------------------------------------------------------------------
    def _step_changed(self, t: int) -> None:
        self.step_cursor.setValue(t)
        if self.features is not None and self.isVisible():
            self._map_timer.start()

    def _request_map(self) -> None:
        f = self.selected_feature()
        if f is not None and self.features is not None and self.ws.recording is not None \
                and self.isVisible():
            self.controller.feature_map(self.features, f)

    def _map_ready(self, feature: int, t: int, maps: dict) -> None:
        rec = self.ws.recording
        if rec is None or feature != self.selected_feature() or t >= rec.n_steps:
            return
        panels = [blend(rec.frame(t, cam), m, 0.9) for cam, m in maps.items()]
        height = min(p.shape[0] for p in panels)
        strip = np.concatenate([p[:height] for p in panels], axis=1)
        self.frame_map.setPixmap(to_pixmap(strip, 2 * THUMB))
        self.frame_map.setToolTip(f"feature {feature} at step {t}")
        self.last_map = (feature, t, maps)

    def _clear_map(self) -> None:
        self.frame_map.clear()
        self._top = []

    # steering ---------------------------------------------------------------------------
    def pin_selected(self) -> None:
        f = self.selected_feature()
        if f is None or self.features is None or any(r.feature == f for r in self.steer_rows):
            return
        row = SteerRow(f, self._steering_changed, self._unpin)
        self.steer_rows.append(row)
        self.steer_rows_layout.addWidget(row, len(self.steer_rows), 0)

    def unpin_all(self) -> None:
        for row in list(self.steer_rows):
            self.steer_rows.remove(row)
            row.setParent(None)
            row.deleteLater()

    def _unpin(self, row: SteerRow) -> None:
        self.steer_rows.remove(row)
        row.setParent(None)
        row.deleteLater()
        self._steering_changed()

    def interventions(self) -> list[dict[str, Any]]:
        """The pinned features' settings as interventions (alpha 0 and no ablation: off),
        and the whole layer's ablation when ticked."""
        out: list[dict[str, Any]] = []
        layer = self.features.layer if self.features is not None else self.layer.currentText()
        if self.ablate_layer.isChecked() and layer:
            out.append({"kind": "ablate_layer", "layer": layer})
        if self.features is None:
            return out
        ablate = [r.feature for r in self.steer_rows if r.ablate.isChecked()]
        if ablate:
            out.append({"kind": "ablate_features", "sae": self.features.path,
                        "layer": self.features.layer, "features": ablate})
        for r in self.steer_rows:
            if r.alpha and not r.ablate.isChecked():
                out.append({"kind": "steer", "sae": self.features.path,
                            "layer": self.features.layer, "feature": r.feature,
                            "alpha": r.alpha})
        return out

    def _steering_changed(self) -> None:
        self.controller.set_steering(self.interventions())
