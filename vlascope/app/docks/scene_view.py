"""The scene viewer: every camera side by side with the saliency overlay on top, and the
run controls (policy, task, variant, seed, instruction, reset / play / step)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QStyle,
    QToolButton,
    QWidget,
)

from vlascope.core.colormap import lookup_table, normalise
from vlascope.core.episode import policy_instruction
from vlascope.core.metrics import top_k_mask
from vlascope.core.workspace import Workspace

from . import Panel
from .outline import outline_item, show_outline
from .path_overlay import PathOverlay, show_paths


class CameraView:
    """One camera: frame image and overlay image in a locked-aspect view box."""

    def __init__(self, layout: pg.GraphicsLayout, name: str, col: int):
        self.name = name
        self.box = layout.addViewBox(row=1, col=col, lockAspect=True, invertY=True,
                                     enableMouse=False)
        self.title = layout.addLabel(name, row=0, col=col)
        self.frame = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setLookupTable(lookup_table())
        self.overlay.setLevels((0.0, 1.0))
        self.outline = outline_item()  # the top-k% edge, as in Regions
        self.box.addItem(self.frame)
        self.box.addItem(self.overlay)
        self.box.addItem(self.outline)
        self.path = PathOverlay(self.box)  # planned vs executed hand path
        self.shape: tuple[int, int] | None = None

    def show_frame(self, image: np.ndarray) -> None:
        self.frame.setImage(image, autoLevels=False, levels=(0, 255))
        if self.shape != image.shape[:2]:
            self.shape = image.shape[:2]
            self.box.setRange(xRange=(0, image.shape[1]), yRange=(0, image.shape[0]),
                              padding=0)

    def show_overlay(self, saliency: np.ndarray | None, opacity: float) -> None:
        if saliency is None:
            self.overlay.clear()
            return
        self.overlay.setImage(normalise(saliency), autoLevels=False, levels=(0.0, 1.0))
        self.overlay.setOpacity(opacity)


class SceneViewDock(Panel):
    """Cameras + run controls. Reads the workspace; acts through the window's actions."""

    def __init__(self, workspace: Workspace, actions: dict[str, QAction],
                 parent: QWidget | None = None):
        super().__init__("Scene", "dock-scene", parent)
        self.ws = workspace
        self.outline_on = True
        self.paths_on = True  # View > Planned vs executed path
        col = self.body

        row = QHBoxLayout()
        self.scene_box = QComboBox()
        self.scene_box.setToolTip("scene plugin")
        row.addWidget(self.scene_box)
        self.policy_box = QComboBox()
        self.policy_box.setToolTip("policy plugin")
        self.task_box = QComboBox()
        self.task_box.setToolTip("task")
        self.variant_box = QComboBox()
        self.variant_box.setToolTip("scene variant")
        self.device_box = QComboBox()
        self.device_box.addItems(["auto", "cpu", "cuda"])
        self.device_box.setToolTip("where the policy runs: auto = CUDA (half precision) when "
                                   "a GPU is present, else CPU")
        self.seed_box = QSpinBox()
        self.seed_box.setRange(0, 2**31 - 1)
        self.seed_box.setPrefix("seed ")
        row.addWidget(self.policy_box)
        if "connect" in actions:  # a policy served by another process or machine
            self.connect_button = QToolButton()  # an icon: the row stays as narrow
            self.connect_button.setDefaultAction(actions["connect"])
            self.connect_button.setIcon(self.style().standardIcon(
                QStyle.StandardPixmap.SP_DriveNetIcon))
            self.connect_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
            self.connect_button.setToolTip("Connect to a policy server (vlascope serve or "
                                           "openpi)")
            row.addWidget(self.connect_button)
        for w in (self.device_box, self.task_box, self.variant_box, self.seed_box):
            row.addWidget(w)
        col.addLayout(row)

        row = QHBoxLayout()
        self.instruction = QLineEdit()
        self.instruction.setPlaceholderText("instruction (empty: the task's own)")
        self.instruction.setToolTip("A different instruction is a counterfactual prompt; "
                                    "it applies from the next reset.")
        row.addWidget(self.instruction, 1)
        for name in ("reset", "play", "step"):
            button = QToolButton()
            button.setDefaultAction(actions[name])
            row.addWidget(button)
        col.addLayout(row)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#202020")
        self.graphics.setMinimumSize(320, 200)
        col.addWidget(self.graphics, 1)
        self.caption = QLabel("Press play (Space) to run the policy, or open an episode.")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        col.addWidget(self.caption)
        self.views: dict[str, CameraView] = {}

        self.task_box.currentTextChanged.connect(self._task_picked)
        self.variant_box.currentTextChanged.connect(
            lambda v: v and self.ws.update_run(variant=v))
        self.policy_box.currentTextChanged.connect(self._policy_picked)
        self.scene_box.currentIndexChanged.connect(self._scene_picked)
        self.device_box.currentTextChanged.connect(self._device_picked)
        self.seed_box.valueChanged.connect(lambda s: self.ws.update_run(seed=int(s)))
        self.instruction.editingFinished.connect(
            lambda: self.ws.update_run(instruction=self.instruction.text().strip() or None))
        workspace.run_changed.connect(self.show_run)
        workspace.recording_changed.connect(self._rebuild)
        workspace.step_changed.connect(lambda _t: self.refresh())
        workspace.saliency_changed.connect(self._saliency_arrived)
        workspace.saliency_settings_changed.connect(lambda _s: self.refresh_overlays())
        self.policy_change_requested = None  # set by the window: fn(name, device)
        self.scene_change_requested = None  # set by the window: fn(name)

    # choices ----------------------------------------------------------------------------
    def set_scenes(self, installed: list[str], not_installed: dict[str, str]) -> None:
        """Scene plugins; first-party ones that are not installed are listed as "name (not
        installed)" with how to install them in the tooltip (picking one says so)."""
        self.scene_box.blockSignals(True)
        self.scene_box.clear()
        for name in installed:
            self.scene_box.addItem(name, name)
        for name, hint in not_installed.items():
            self.scene_box.addItem(f"{name} (not installed)", name)
            self.scene_box.setItemData(self.scene_box.count() - 1, hint,
                                       Qt.ItemDataRole.ToolTipRole)
        index = self.scene_box.findData(self.ws.run.scene)
        self.scene_box.setCurrentIndex(max(index, 0))
        self.scene_box.blockSignals(False)

    def _scene_picked(self, index: int) -> None:
        name = self.scene_box.itemData(index)
        if name and name != self.ws.run.scene and self.scene_change_requested:
            self.scene_change_requested(name)
            current = self.scene_box.findData(self.ws.run.scene)  # refused: back to the old
            if current >= 0 and current != self.scene_box.currentIndex():
                self.scene_box.blockSignals(True)
                self.scene_box.setCurrentIndex(current)
                self.scene_box.blockSignals(False)

    def set_choices(self, policies: list[str], tasks: list[tuple[str, str]],
                    variants: list[str]) -> None:
        """Fill the pickers (tasks as (name, instruction)) and select the run's values."""
        run = self.ws.run
        for box, items, current in ((self.policy_box, policies, run.policy),
                                    (self.variant_box, variants, run.variant)):
            box.blockSignals(True)
            box.clear()
            box.addItems(items)
            if current in items:
                box.setCurrentText(current)
            box.blockSignals(False)
        self.task_box.blockSignals(True)
        self.task_box.clear()
        for name, instruction in tasks:
            self.task_box.addItem(name, instruction)
        if run.task:
            self.task_box.setCurrentText(run.task)
        self.task_box.blockSignals(False)
        self.seed_box.blockSignals(True)
        self.seed_box.setValue(run.seed)
        self.seed_box.blockSignals(False)
        self.instruction.setText(run.instruction or "")
        self._show_task_instruction()
        self.ws.update_run(task=self.task_box.currentText(),
                           variant=self.variant_box.currentText())

    def show_run(self, run) -> None:
        """Keep the pickers in step with the workspace (a failed load, a restored run)."""
        for box, value in ((self.policy_box, run.policy), (self.task_box, run.task),
                           (self.variant_box, run.variant), (self.device_box, run.device)):
            if value and box.findText(value) >= 0 and box.currentText() != value:
                box.blockSignals(True)
                box.setCurrentText(value)
                box.blockSignals(False)
        if self.seed_box.value() != run.seed:
            self.seed_box.blockSignals(True)
            self.seed_box.setValue(run.seed)
            self.seed_box.blockSignals(False)

    def _task_picked(self, name: str) -> None:
        if name:
            self.ws.update_run(task=name)
            self._show_task_instruction()

    def _show_task_instruction(self) -> None:
        words = self.task_box.currentData()
        self.instruction.setPlaceholderText(f"{words}  (type to change the prompt)"
                                            if words else "instruction")

    def _policy_picked(self, name: str) -> None:
        if name and name != self.ws.run.policy and self.policy_change_requested:
            self.policy_change_requested(name, self.ws.run.device)

    def _device_picked(self, device: str) -> None:
        if device and device != self.ws.run.device and self.policy_change_requested:
            self.policy_change_requested(self.ws.run.policy, device)

    # drawing ----------------------------------------------------------------------------
    def _rebuild(self, _recording: object = None) -> None:
        self.graphics.clear()
        self.views = {}
        rec = self.ws.recording
        if rec is not None:
            for i, cam in enumerate(rec.cameras):
                self.views[cam] = CameraView(self.graphics.ci, cam, i)
        self.refresh()

    def _saliency_arrived(self, t: int) -> None:
        if t == self.ws.step:
            self.refresh_overlays()

    def set_outline(self, on: bool) -> None:
        """Show the top-k% outline of the shown map over the cameras (View menu)."""
        self.outline_on = on
        self.refresh_overlays()

    def set_paths(self, on: bool) -> None:
        """Show the planned vs executed hand path over the cameras (View menu)."""
        self.paths_on = on
        self.refresh_overlays()

    def refresh_overlays(self) -> None:
        maps = self.ws.maps_at() or {}
        shown = {c: m for c, m in maps.items() if c in self.views}
        # the joint top k% over the cameras, as NMR@k counts it
        top = top_k_mask(shown, self.ws.saliency.k) if shown and self.outline_on else {}
        for cam, view in self.views.items():
            view.show_overlay(maps.get(cam), self.ws.saliency.opacity)
            show_outline(view.outline, top.get(cam))
        show_paths({c: v.path for c, v in self.views.items()}, self.ws.recording, self.ws.step,
                   {c: v.shape for c, v in self.views.items()}, self.paths_on)

    def refresh(self) -> None:
        """Draw the current step's frames and overlays."""
        rec = self.ws.recording
        if rec is None or rec.n_steps == 0:
            preview = getattr(rec, "preview", None) or {}
            for cam, v in self.views.items():
                v.overlay.clear()
                if cam in preview:
                    v.show_frame(preview[cam])
                else:
                    v.frame.clear()
            if rec is not None:
                self.caption.setText(f"{rec.title}  |  \"{policy_instruction(rec.metadata)}\""
                                     "  |  ready: press play (Space)")
            return
        t = self.ws.step
        for cam, view in self.views.items():
            view.show_frame(rec.frame(t, cam))
        self.refresh_overlays()
        words = policy_instruction(rec.metadata)
        self.caption.setText(f"{rec.title}  |  step {t + 1}/{rec.n_steps}  |  \"{words}\"")
