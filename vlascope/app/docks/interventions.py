"""Interventions: a counterfactual prompt, a visual perturbation from the catalogue, an
activation injection from a recorded episode, a layer ablation or the Features dock's
pinned steering, run A/B against the unmodified policy from the same seed. The effect is
shown as success of both runs, the action difference and the distance between the two
hand trajectories over time; the timeline draws both runs' actions. "Re-run" repeats the
shown episode's own interventions (they are recorded in every episode) against a fresh
baseline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QWidget,
)

from vlascope.core.interventions import COUNTERFACTUALS
from vlascope.core.perturbations import perturbation_kinds
from vlascope.core.workspace import RunSettings, Workspace

from . import Panel

KINDS = ("counterfactual prompt", "visual perturbation", "inject activations",
         "ablate layer", "steer (pinned features)")


class InterventionsDock(Panel):
    def __init__(self, workspace: Workspace, controller, features_dock,
                 parent: QWidget | None = None):
        super().__init__("Interventions", "dock-interventions", parent)
        self.ws, self.controller, self.features_dock = workspace, controller, features_dock
        self.result = None
        col = self.body
        form = QFormLayout()
        self.kind = QComboBox()
        self.kind.addItems(list(KINDS))
        form.addRow("intervention", self.kind)
        col.addLayout(form)
        self.pages = QStackedWidget()
        col.addWidget(self.pages)

        prompt = QWidget()
        f = QFormLayout(prompt)
        self.prompt_kind = QComboBox()
        self.prompt_kind.addItems([*COUNTERFACTUALS, "custom"])
        self.prompt_text = QLineEdit()
        self.prompt_text.setPlaceholderText("the instruction the policy reads (custom)")
        f.addRow("prompt", self.prompt_kind)
        f.addRow("text", self.prompt_text)
        perturb = QWidget()
        f = QFormLayout(perturb)
        self.perturbation = QComboBox()
        self.perturbation.addItems(perturbation_kinds())
        self.severity = QSpinBox()
        self.severity.setRange(1, 5)
        self.severity.setValue(3)
        f.addRow("perturbation", self.perturbation)
        f.addRow("severity", self.severity)
        inject = QWidget()
        f = QFormLayout(inject)
        self.source = QLineEdit()
        self.source.setPlaceholderText("episode recorded with --capture of the layer")
        browse = QPushButton("...")
        browse.clicked.connect(self._browse_source)
        row = QHBoxLayout()
        row.addWidget(self.source, 1)
        row.addWidget(browse)
        self.inject_layer = QComboBox()
        f.addRow("source", row)
        f.addRow("layer", self.inject_layer)
        ablate = QWidget()
        f = QFormLayout(ablate)
        self.ablate_layer = QComboBox()
        f.addRow("layer", self.ablate_layer)
        f.addRow(QLabel("its output is replaced by zeros"))
        steer = QWidget()
        f = QFormLayout(steer)
        f.addRow(QLabel("the Features dock's pinned sliders and ablation toggles"))
        for page in (prompt, perturb, inject, ablate, steer):
            self.pages.addWidget(page)
        self.kind.currentIndexChanged.connect(self.pages.setCurrentIndex)

        start = QFormLayout()
        self.start = QSpinBox()
        self.start.setRange(0, 100000)
        self.start.setToolTip("the step from which the intervention acts")
        start.addRow("from step", self.start)
        col.addLayout(start)
        buttons = QHBoxLayout()
        self.run = QPushButton("Run A/B")
        self.run.setToolTip("the unmodified and the intervened policy, same task and seed")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.rerun = QPushButton("Re-run shown episode")
        self.rerun.setToolTip("its recorded interventions, task and seed, against a fresh "
                              "baseline")
        for b in (self.run, self.cancel, self.rerun):
            buttons.addWidget(b)
        col.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        col.addWidget(self.progress)
        self.summary = QLabel("no comparison yet")
        self.summary.setWordWrap(True)
        col.addWidget(self.summary)
        self.plot = pg.PlotWidget()
        self.plot.setBackground("#202020")
        self.plot.setMinimumHeight(120)
        self.plot.addLegend(offset=(5, 5), labelTextSize="7pt")
        self.plot.setLabel("bottom", "step")
        self.diff_curve = self.plot.plot(pen="#f4a261", name="action difference")
        self.disp_curve = self.plot.plot(pen="#00e5ff", name="hand displacement")
        col.addWidget(self.plot, 1)

        self.make_scrollable()
        self.run.clicked.connect(lambda: self.controller.run_ab(self.interventions()))
        self.cancel.clicked.connect(lambda: self.controller.engine.cancel("ab"))
        self.rerun.clicked.connect(self.rerun_shown)
        controller.ab_state.connect(self._state)
        controller.ab_ready.connect(self.show_result)
        controller.policy_hooks.connect(self._show_layers)
        controller.policy_unavailable.connect(self._show_unavailable)

    def _show_layers(self, points: list) -> None:
        names = [p.name for p in points]
        for box in (self.inject_layer, self.ablate_layer):
            current = box.currentText()
            box.clear()
            box.addItems(names)
            if current in names:
                box.setCurrentText(current)

    def _show_unavailable(self, why: str) -> None:
        """Injection and layer ablation need hook points; the reason shows on their layers."""
        for box in (self.inject_layer, self.ablate_layer):
            box.setEnabled(not why)
            box.setToolTip(f"unavailable: {why}" if why else "")

    def _browse_source(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Source episode", "", "Episodes (*.h5)")
        if path:
            self.source.setText(path)

    def interventions(self) -> list[dict[str, Any]]:
        """The chosen setting as intervention records (a prompt given by its kind gets the
        task's instruction rewritten in the worker)."""
        start = self.start.value()
        kind = KINDS[self.kind.currentIndex()]
        if kind == "counterfactual prompt":
            variant = self.prompt_kind.currentText()
            text = self.prompt_text.text() if variant == "custom" else None
            return [{"kind": "prompt", "text": text, "variant": variant, "start": start}]
        if kind == "visual perturbation":
            return [{"kind": "perturb", "perturbation": self.perturbation.currentText(),
                     "severity": self.severity.value(), "start": start}]
        if kind == "inject activations":
            return [{"kind": "inject", "source": self.source.text(),
                     "layer": self.inject_layer.currentText(), "start": start}]
        if kind == "ablate layer":
            return [{"kind": "ablate_layer", "layer": self.ablate_layer.currentText(),
                     "start": start}]
        return [{**iv, "start": start} for iv in self.features_dock.interventions()]

    def rerun_shown(self) -> None:
        rec = self.ws.recording
        if rec is None:
            self.summary.setText("open or record an episode first")
            return
        meta = rec.metadata
        run = RunSettings(scene=meta.get("scene", self.ws.run.scene),
                          policy=self.ws.run.policy, device=self.ws.run.device,
                          task=meta.get("task", ""), variant=meta.get("variant", ""),
                          seed=int(meta.get("seed", 0)))
        self.controller.run_ab(list(meta.get("interventions", [])), run=run)

    def _state(self, state: str) -> None:
        busy = state == "running"
        self.run.setEnabled(not busy)
        self.rerun.setEnabled(not busy)
        self.cancel.setEnabled(busy)
        self.progress.setRange(0, 0 if busy else 1)  # busy: an indeterminate bar
        if state in ("failed", "cancelled"):
            self.summary.setText(f"A/B run {state}")

    def show_result(self, result) -> None:
        self.result = result
        s = result.summary()

        def run_text(prefix: str) -> str:
            ok = "success" if s[f"{prefix}_success"] else "failure"
            handled = s[f"{prefix}_handled"] or "nothing"
            return f"{ok} in {s[f'{prefix}_steps']} steps, moved {handled}"

        kinds = ", ".join(i["kind"] for i in result.interventions) or "none"
        self.summary.setText(f"A (unmodified): {run_text('baseline')}\n"
                             f"B ({kinds}): {run_text('intervened')}\n"
                             f"max hand displacement {s['max_displacement']:.3f}, mean "
                             f"action difference {s['mean_action_diff']:.3f}")
        steps = np.arange(len(result.action_diff))
        self.diff_curve.setData(steps, result.action_diff)
        self.disp_curve.setData(steps, result.displacement)
