"""Saliency controls: method and parameters, overlay opacity, compute / cancel with progress,
live mode, and NMR@k of the current frame."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QWidget,
)

from vlascope.core.errors import VLAScopeError
from vlascope.core.saliency import ISS_METHODS, METHODS
from vlascope.core.saliency.iss import ESTIMATORS
from vlascope.core.workspace import SaliencySettings, Workspace

from . import Panel, nmr_text
from .curves_plot import CurvesPlot


class SaliencyDock(Panel):
    def __init__(self, workspace: Workspace, controller, parent: QWidget | None = None):
        super().__init__("Saliency", "dock-saliency", parent)
        self.ws, self.controller = workspace, controller
        col = self.body
        form = QFormLayout()
        self.method = QComboBox()
        self.method.addItems(list(METHODS))
        self.estimator = QComboBox()
        self.estimator.addItems(list(ESTIMATORS))
        self.estimator.setToolTip("toolkit: the ISS toolkit's own definition; "
                                  "toolkit-improved: the same map with fewer forward passes "
                                  "(stratified masks + control variate); rise*: our earlier "
                                  "per-camera masks")
        self.n_masks = QSpinBox()
        self.n_masks.setRange(1, 100000)
        self.p_keep = QDoubleSpinBox()
        self.p_keep.setRange(0.01, 0.99)
        self.p_keep.setSingleStep(0.05)
        self.sigma = QDoubleSpinBox()
        self.sigma.setRange(0.0, 100.0)
        self.grid = QSpinBox()
        self.grid.setRange(1, 64)
        self.k = QDoubleSpinBox()
        self.k.setRange(0.1, 100.0)
        self.k.setSuffix(" %")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        for label, w in (("method", self.method), ("estimator", self.estimator),
                         ("masks N", self.n_masks), ("keep p", self.p_keep),
                         ("blur sigma", self.sigma), ("grid", self.grid),
                         ("NMR k", self.k), ("opacity", self.opacity)):
            form.addRow(label, w)
        col.addLayout(form)
        self.live = QCheckBox("live: explain every step as the rollout runs")
        col.addWidget(self.live)
        live_row = QHBoxLayout()
        live_row.addWidget(QLabel("live budget"))
        self.budget = QSpinBox()
        self.budget.setRange(2, 10000)
        self.budget.setSuffix(" passes/step")
        self.budget.setToolTip("Live mode explains every step with this many forward passes "
                               "(budget - 1 masks) and pools each map with its neighbours in "
                               "time, so maps keep up with the rollout; a step's map is "
                               "refined as later steps arrive (shown once the rollout pauses)")
        live_row.addWidget(self.budget)
        col.addLayout(live_row)
        self.pooling = QLabel("")
        self.pooling.setObjectName("live-pooling")
        col.addWidget(self.pooling)
        row = QHBoxLayout()
        self.compute = QPushButton("Explain frame")
        self.compute.setShortcut("E")
        self.compute.setToolTip("Compute the overlay of the current step (E)")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        row.addWidget(self.compute)
        row.addWidget(self.cancel)
        col.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        col.addWidget(self.progress)
        self.nmr = QLabel("NMR@10: -")
        self.nmr.setObjectName("nmr-label")
        font = self.nmr.font()
        font.setPointSize(font.pointSize() + 2)
        font.setBold(True)
        self.nmr.setFont(font)
        col.addWidget(self.nmr)
        self.faithful = QPushButton("Faithfulness")
        self.faithful.setToolTip("Deletion and insertion curves of the shown map against a "
                                 "random map's: does deleting its top pixels move the actions "
                                 "first, does showing only them bring the actions back? "
                                 "(44 forward passes)")
        col.addWidget(self.faithful)
        self.curves = CurvesPlot()
        col.addWidget(self.curves)
        self.faithful_text = QLabel("")
        self.faithful_text.setObjectName("faithfulness-label")
        self.faithful_text.setWordWrap(True)
        self.faithful_text.setToolTip("A faithful map moves the actions early when its top "
                                      "pixels are deleted (deletion area above the random "
                                      "map's) and brings them back early when only they are "
                                      "shown (insertion area below the random map's)")
        col.addWidget(self.faithful_text)
        self.curves.hide()  # shown with curves: no height taken before (small screens)
        self.faithful_text.hide()
        col.addStretch(1)

        self._load(workspace.saliency)
        for w in (self.method, self.estimator):
            w.currentTextChanged.connect(self._edited)
        for w in (self.n_masks, self.p_keep, self.sigma, self.grid, self.k, self.budget):
            w.valueChanged.connect(self._edited)
        self.opacity.valueChanged.connect(
            lambda v: self.ws.update_saliency(opacity=v / 100.0))
        self.live.toggled.connect(self._live_toggled)
        self.compute.clicked.connect(lambda: controller.explain())
        self.cancel.clicked.connect(controller.cancel_saliency)
        self.faithful.clicked.connect(lambda: controller.faithfulness())
        controller.faithfulness_ready.connect(self._show_curves)
        controller.saliency_progress.connect(self._progress)
        workspace.saliency_settings_changed.connect(self._settings_changed)
        workspace.step_changed.connect(lambda _t: self._show_nmr())
        workspace.step_changed.connect(lambda _t: self._show_curves(None, None))
        workspace.saliency_changed.connect(lambda _t: self._show_nmr())
        workspace.recording_changed.connect(lambda _r: self._show_nmr())
        workspace.regions_changed.connect(lambda _f: self._show_nmr())

    def _load(self, s: SaliencySettings) -> None:
        widgets = (self.method, self.estimator, self.n_masks, self.p_keep, self.sigma,
                   self.grid, self.k, self.opacity, self.live, self.budget)
        for w in widgets:
            w.blockSignals(True)
        self.method.setCurrentText(s.method)
        self.estimator.setCurrentText(s.estimator)
        self.n_masks.setValue(s.n_masks)
        self.p_keep.setValue(s.p_keep)
        self.sigma.setValue(s.sigma)
        self.grid.setValue(s.grid)
        self.k.setValue(s.k)
        self.opacity.setValue(int(round(s.opacity * 100)))
        self.live.setChecked(s.live)
        self.budget.setValue(s.budget)
        for w in widgets:
            w.blockSignals(False)
        iss = s.method in ISS_METHODS
        for w in (self.estimator, self.n_masks, self.p_keep, self.grid, self.budget):
            w.setEnabled(iss)
        self.sigma.setEnabled(s.method == "iss")

    def _edited(self, *_args) -> None:
        try:
            self.ws.update_saliency(
                method=self.method.currentText(), estimator=self.estimator.currentText(),
                n_masks=self.n_masks.value(), p_keep=round(self.p_keep.value(), 4),
                sigma=self.sigma.value(), grid=self.grid.value(), k=self.k.value(),
                budget=self.budget.value())
        except VLAScopeError as e:
            self.controller.status.emit(str(e))

    def _settings_changed(self, s: SaliencySettings) -> None:
        self._load(s)
        self._show_nmr()

    def _live_toggled(self, on: bool) -> None:
        self.ws.update_saliency(live=on)
        if on and self.ws.n_steps:
            self.controller.explain_live()

    def _progress(self, done: int, total: int) -> None:
        busy = total > 0
        self.cancel.setEnabled(busy)
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done if busy else 0)

    def _show_curves(self, t: int | None, curves) -> None:
        """The curves of step ``t`` (cleared when another step is shown)."""
        if curves is not None and t != self.ws.step:
            return
        self.curves.set_curves(curves)
        self.curves.setVisible(curves is not None)
        self.faithful_text.setVisible(curves is not None)
        if curves is None:
            self.faithful_text.setText("")
            return
        a = curves.areas()
        self.faithful_text.setText(
            f"step {t}: deletion area {a['deletion']:.3f} (random {a['random_deletion']:.3f})"
            f", insertion {a['insertion']:.3f} (random {a['random_insertion']:.3f})")

    def _show_nmr(self) -> None:
        self.nmr.setText(nmr_text(self.ws))
        h = self.ws.live_bandwidth()
        steps = len(self.ws.live_steps())
        if h is None:
            self.pooling.setText("")
        else:
            span = ("not pooled" if h == 0 else "pooled over all of them" if h == float("inf")
                    else f"pooled over ~{h:g} steps")
            self.pooling.setText(f"live maps: {steps} steps at {self.ws.saliency.budget} "
                                 f"passes each, {span}")
