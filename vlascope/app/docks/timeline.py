"""The timeline: a slider and a plot of the executed action dimensions, success and NMR over
the rollout. Dragging the slider or the plot's cursor scrubs frames, overlays and plots
together; dashed lines mark where interventions started."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget

from vlascope.core.compare import step_distance
from vlascope.core.workspace import Workspace

from . import Panel
from .path_overlay import ChunkFan

_PENS = ["#e63946", "#2a9d8f", "#457b9d", "#f4a261", "#8d99ae", "#b5838d", "#6a994e"]


class TimelineDock(Panel):
    def __init__(self, workspace: Workspace, parent: QWidget | None = None):
        super().__init__("Timeline", "dock-timeline", parent)
        self.ws = workspace
        col = self.body
        row = QHBoxLayout()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setTracking(True)
        self.label = QLabel("no rollout")
        self.label.setMinimumWidth(110)
        row.addWidget(self.slider, 1)
        row.addWidget(self.label)
        col.addLayout(row)

        self.plot = pg.PlotWidget()
        self.plot.setBackground("#202020")
        self.plot.setMinimumHeight(140)
        self.plot.addLegend(offset=(5, 5), labelTextSize="7pt")
        self.plot.setLabel("bottom", "step")
        self.plot.setMouseEnabled(x=True, y=False)
        self.cursor = pg.InfiniteLine(pos=0, angle=90, movable=True,
                                      pen=pg.mkPen("#ffffff", width=2))
        self.plot.addItem(self.cursor)
        col.addWidget(self.plot, 1)

        self.action_curves: list[pg.PlotDataItem] = []
        self.success_curve = self.plot.plot([], [], pen=pg.mkPen("#80ed99", width=2),
                                            name="success", stepMode=None)
        self.nmr_points = pg.ScatterPlotItem(size=7, brush=pg.mkBrush("#ffd166"), name="NMR")
        self.plot.addItem(self.nmr_points)
        self.markers: list[pg.InfiniteLine] = []
        self.baseline_curves: list[pg.PlotDataItem] = []
        self.gap_curve: pg.PlotDataItem | None = None  # |B - A| per step, when comparing
        # A policy's open-loop predictions on the recorded frames (dotted) and their
        # distance from the recorded actions, where computed (open_loop.py)
        self.open_loop_curves: list[pg.PlotDataItem] = []
        self.open_loop_gap: pg.PlotDataItem | None = None
        self.fan = ChunkFan(self.plot, _PENS)  # the shown step's chunk, planned vs executed
        self._span = 0

        self.slider.valueChanged.connect(self.ws.set_step)
        self.cursor.sigPositionChanged.connect(self._cursor_dragged)
        self.plot.scene().sigMouseClicked.connect(self._plot_clicked)
        workspace.recording_changed.connect(lambda _r: self._reload(new=True))
        workspace.steps_appended.connect(lambda _n: self._reload())
        workspace.step_changed.connect(self._follow)
        workspace.interventions_changed.connect(lambda _i: self._draw_markers())
        workspace.baseline_changed.connect(self._draw_baseline)
        workspace.open_loop_changed.connect(lambda _n: self._draw_open_loop())
        workspace.saliency_changed.connect(lambda _t: self._draw_nmr())
        workspace.saliency_settings_changed.connect(lambda _s: self._draw_nmr())
        workspace.regions_changed.connect(lambda _f: self._draw_nmr())
        self._reload(new=True)

    def _reload(self, new: bool = False) -> None:
        rec = self.ws.recording
        n = rec.n_steps if rec is not None else 0
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, n - 1))
        self.slider.blockSignals(False)
        actions = rec.actions() if rec is not None and n else np.zeros((0, 0))
        while len(self.action_curves) < actions.shape[1]:
            i = len(self.action_curves)
            self.action_curves.append(self.plot.plot(
                [], [], pen=pg.mkPen(_PENS[i % len(_PENS)], width=1), name=f"a{i}"))
        steps = np.arange(n)
        for i, curve in enumerate(self.action_curves):
            if i < actions.shape[1]:
                curve.setData(steps, actions[:, i])
            else:
                curve.setData([], [])
        if n:
            self.success_curve.setData(steps, rec.successes().astype(np.float32))
        else:
            self.success_curve.setData([], [])
        # The x range grows in blocks, so the axis is not re-laid out on every live step.
        span = max(1, n - 1) if new or rec is None else -(-max(1, n - 1) // 50) * 50
        if new or span != self._span:
            self._span = span
            self.plot.setXRange(0, span, padding=0.02)
        if new:
            self._draw_markers()
            self._draw_nmr()
            self._draw_open_loop()
        self._follow(self.ws.step)

    def _draw_open_loop(self) -> None:
        """The actions a policy predicts on the recorded frames, dotted in the recorded
        actions' colours, and how far they are from the recorded ones at each step."""
        for c in self.open_loop_curves:
            self.plot.removeItem(c)
        self.open_loop_curves, self.open_loop_gap = [], None
        rec = self.ws.recording
        predicted = rec.open_loop_actions() if rec is not None else {}
        if not predicted:
            return
        name, actions = next(reversed(predicted.items()))
        self.open_loop_curves, self.open_loop_gap = self._draw_beside(
            actions, rec.actions(), Qt.PenStyle.DotLine, f"|{name} - recorded|",
            (199, 125, 255))

    def _draw_baseline(self, actions) -> None:
        """A/B: run A's actions, dashed, in the same colours, and how far B's action is
        from A's at each step (the norm of the difference, filled)."""
        for c in self.baseline_curves:
            self.plot.removeItem(c)
        self.baseline_curves, self.gap_curve = [], None
        if actions is None:
            return
        rec = self.ws.recording
        self.baseline_curves, self.gap_curve = self._draw_beside(
            actions, rec.actions() if rec is not None else None, Qt.PenStyle.DashLine,
            "|B-A|", (248, 249, 250))

    def _draw_beside(self, actions: np.ndarray, shown: np.ndarray | None, style: Qt.PenStyle,
                     gap_name: str, rgb: tuple[int, int, int],
                     ) -> tuple[list[pg.PlotDataItem], pg.PlotDataItem | None]:
        """Other actions over the shown episode's, in the same colours drawn ``style``, and
        the distance between the two per step, filled (none where the widths differ);
        returns every item added (the distance last) and the distance curve."""
        steps = np.arange(len(actions))
        items = []
        for i in range(actions.shape[1]):
            pen = pg.mkPen(_PENS[i % len(_PENS)], width=1, style=style)
            items.append(pg.PlotDataItem(steps, actions[:, i], pen=pen))
        gap = step_distance(actions, shown) if shown is not None else []
        gap_curve = None
        if len(gap):
            gap_curve = pg.PlotDataItem(np.arange(len(gap)), gap, name=gap_name,
                                        pen=pg.mkPen(rgb, width=2), fillLevel=0.0,
                                        brush=pg.mkBrush(*rgb, 50))
            items.append(gap_curve)
        for item in items:
            self.plot.addItem(item)
        return items, gap_curve

    def _draw_markers(self) -> None:
        for m in self.markers:
            self.plot.removeItem(m)
        self.markers = []
        for iv in self.ws.interventions:
            start = int(iv.get("start", iv.get("step", 0)))
            line = pg.InfiniteLine(pos=start, angle=90, movable=False,
                                   pen=pg.mkPen("#ff006e", width=1, style=Qt.PenStyle.DashLine),
                                   label=str(iv.get("kind", "intervention")),
                                   labelOpts={"position": 0.9, "color": "#ff006e"})
            self.plot.addItem(line)
            self.markers.append(line)

    def _draw_nmr(self) -> None:
        xs, ys = [], []
        for t in self.ws.cached_steps():
            value = self.ws.nmr_at(t)
            if value is not None and np.isfinite(value):
                xs.append(t)
                ys.append(value)
        self.nmr_points.setData(xs, ys)

    def _follow(self, t: int) -> None:
        n = self.ws.n_steps
        self.slider.blockSignals(True)
        self.slider.setValue(t)
        self.slider.blockSignals(False)
        self.cursor.blockSignals(True)
        self.cursor.setValue(t)
        self.cursor.blockSignals(False)
        self.label.setText(f"step {t + 1} / {n}" if n else "no rollout")
        self.fan.show(self.ws.recording, t)

    def set_fan(self, on: bool) -> None:
        """Show the chunk predicted at the shown step (View > Planned vs executed path)."""
        self.fan.on = on
        self.fan.show(self.ws.recording, self.ws.step)

    def _cursor_dragged(self) -> None:
        self.ws.set_step(int(round(self.cursor.value())))

    def _plot_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        pos = self.plot.plotItem.vb.mapSceneToView(event.scenePos())
        self.ws.set_step(int(round(pos.x())))
