"""The scene viewer: every camera side by side with the saliency overlay on top, and the
run controls (policy, task, variant, seed, instruction, reset / play / step)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QRectF, Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QSpinBox,
    QStyle,
    QToolButton,
    QWidget,
)

from vlascope.core.colormap import lookup_table, normalise
from vlascope.core.display import display_size, upsample
from vlascope.core.episode import policy_instruction
from vlascope.core.metrics import top_k_mask
from vlascope.core.workspace import Workspace

from . import Panel
from .outline import outline_item, show_outline
from .path_overlay import PathOverlay, show_paths

FIRST_RUN_HINT = ("Pick a scene, policy and task above, then press <b>Play</b> (Space) "
                  "to run the policy<br>and <b>Explain frame</b> for its saliency map; or "
                  "open a recorded episode<br>(Ctrl+O, or drop an .h5 file on the window).")


class CameraView:
    """One camera: frame, overlay and outline images in a locked-aspect view box whose
    coordinates are the policy image's pixels, whatever resolution is shown: a display
    render, the smoothly upsampled overlay and anything drawn on top share them."""

    def __init__(self, layout: pg.GraphicsLayout, name: str, col: int, row: int = 0,
                 title: str | None = None):
        self.name = name
        self.box = layout.addViewBox(row=2 * row + 1, col=col, lockAspect=True,
                                     invertY=True, enableMouse=False)
        self.title = layout.addLabel(title or name, row=2 * row, col=col)
        self.frame = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setLookupTable(lookup_table())
        self.overlay.setLevels((0.0, 1.0))
        self.outline = outline_item()  # the top-k% edge, as in Regions
        self.box.addItem(self.frame)
        self.box.addItem(self.overlay)
        self.box.addItem(self.outline)
        self.path = PathOverlay(self.box)  # planned vs executed hand path
        self.shape: tuple[int, int] | None = None  # the policy image's (H, W)
        self.shown: tuple[int, int] | None = None  # the (H, W) of the image on screen

    def show_frame(self, image: np.ndarray, base: tuple[int, int] | None = None) -> None:
        """``image`` stretched over the policy image's ``base`` (H, W) (default: its own)."""
        base = tuple(base or image.shape[:2])
        self.frame.setImage(image, autoLevels=False, levels=(0, 255))
        self.shown = image.shape[:2]
        self.frame.setRect(QRectF(0, 0, base[1], base[0]))
        if self.shape != base:
            self.shape = base
            self.box.setRange(xRange=(0, base[1]), yRange=(0, base[0]), padding=0)

    def show_overlay(self, saliency: np.ndarray | None, opacity: float) -> None:
        if saliency is None or self.shape is None:
            self.overlay.clear()
            return
        values = normalise(saliency)
        if self.shown is not None and values.shape != self.shown:
            values = upsample(values, self.shown)  # smooth over a display render
        self.overlay.setImage(values, autoLevels=False, levels=(0.0, 1.0))
        self.overlay.setRect(QRectF(0, 0, self.shape[1], self.shape[0]))
        self.overlay.setOpacity(opacity)

    def show_top(self, top: np.ndarray | None) -> None:
        """The top-k% outline, drawn at the shown image's resolution."""
        show_outline(self.outline, top, self.shown)
        if top is not None and self.shape is not None:
            self.outline.setRect(QRectF(0, 0, self.shape[1], self.shape[0]))

    def view_pixels(self) -> tuple[int, int]:
        """The (H, W) device pixels the view box covers on screen."""
        rect = self.box.sceneBoundingRect()
        ratio = self.box.scene().views()[0].devicePixelRatioF() if self.box.scene() else 1.0
        return int(rect.height() * ratio), int(rect.width() * ratio)


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
        self.seed_box.setMinimumWidth(90)  # not as wide as its largest seed: the row fits
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
        # short names are shown whole; task names (LIBERO's run to 80 characters) are cut
        # to 12 characters with the whole name in the tooltip
        for box in (self.scene_box, self.policy_box, self.device_box, self.variant_box):
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.task_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.task_box.setMinimumContentsLength(12)
        row.addStretch(1)
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
        self.graphics.installEventFilter(self)
        col.addWidget(self.graphics, 1)
        self.policy_view = False  # show the policy's own frames instead of display renders
        self.display_requested = None  # set by the window: fn((H, W) | None)
        self._display: tuple[int, int] | None = None
        self._resized = QTimer(self)
        self._resized.setSingleShot(True)
        self._resized.setInterval(150)
        self._resized.timeout.connect(self.request_display)
        self.caption = QLabel("")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # a long caption (A|B titles) is clipped, never widens the dock past the screen
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        col.addWidget(self.caption)
        self.views: dict[str, CameraView] = {}  # the shown episode's (B when comparing)
        self.other_views: dict[str, CameraView] = {}  # run A's, beside them, when comparing

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
        workspace.baseline_changed.connect(self._rebuild)
        workspace.step_changed.connect(lambda _t: self.refresh())
        workspace.saliency_changed.connect(self._saliency_arrived)
        workspace.saliency_settings_changed.connect(lambda _s: self.refresh_overlays())
        self._rebuild()  # the first-run hint until there is something to show
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
        name = self.task_box.currentText()  # whole in the tooltip: the picker may cut it
        self.task_box.setToolTip(f"task: {name}" if name else "task")
        words = self.task_box.currentData()
        self.instruction.setPlaceholderText(f"{words}  (type to change the prompt)"
                                            if words else "instruction")

    def _policy_picked(self, name: str) -> None:
        if name and name != self.ws.run.policy and self.policy_change_requested:
            self.policy_change_requested(name, self.ws.run.device)

    def _device_picked(self, device: str) -> None:
        if device and device != self.ws.run.device and self.policy_change_requested:
            self.policy_change_requested(self.ws.run.policy, device)

    # display resolution -----------------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self.graphics and event.type() == QEvent.Type.Resize:
            self._resized.start()  # ask for the new size once resizing settles
        return super().eventFilter(watched, event)

    def set_policy_view(self, on: bool) -> None:
        """Show exactly the policy's input frames (View menu) instead of display renders."""
        self.policy_view = on
        self.request_display()
        self.refresh()

    def wanted_display(self) -> tuple[int, int] | None:
        """The display render size that fills the camera views, None when the policy's
        frames are shown (or are already as large as the views)."""
        if self.policy_view:
            return None
        for view in self.views.values():
            if view.shape is not None:
                return display_size(view.shape, view.view_pixels())
        return None

    def request_display(self) -> None:
        size = self.wanted_display()
        if size != self._display:
            self._display = size
            if self.display_requested is not None:
                self.display_requested(size)

    # drawing ----------------------------------------------------------------------------
    def _rebuild(self, _recording: object = None) -> None:
        self.graphics.clear()
        self.views, self.other_views = {}, {}
        rec, other = self.ws.recording, self.ws.comparison
        if rec is not None and other is not None:  # A | B: a column per run, camera rows
            for i, cam in enumerate(rec.cameras):
                if cam in other.cameras:
                    self.other_views[cam] = CameraView(self.graphics.ci, cam, 0, i,
                                                       f"A: {cam}")
                self.views[cam] = CameraView(self.graphics.ci, cam, 1, i, f"B: {cam}")
        elif rec is not None:
            for i, cam in enumerate(rec.cameras):
                self.views[cam] = CameraView(self.graphics.ci, cam, i)
        if not self.views:
            self.graphics.ci.addLabel(FIRST_RUN_HINT, row=0, col=0, color="#d0d0d0",
                                      size="11pt")
        self.refresh()
        QTimer.singleShot(0, self.request_display)  # once the views are laid out

    def _show(self, view: CameraView, policy: np.ndarray | None,
              display: np.ndarray | None) -> None:
        """A display render when there is one and the policy's view is not asked for."""
        if display is not None and not self.policy_view:
            base = policy.shape[:2] if policy is not None else view.shape
            view.show_frame(display, base)
        elif policy is not None:
            view.show_frame(policy)

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
        self._overlays(self.views, self.ws.maps_at() or {})
        self._paths(self.views, self.ws.recording, self.ws.step)
        if self.other_views:
            self._overlays(self.other_views, self.ws.comparison_maps_at() or {})
            self._paths(self.other_views, self.ws.comparison, self.ws.comparison_step() or 0)

    def _paths(self, views: dict[str, CameraView], rec, t: int) -> None:
        """Planned vs executed hand path, in the policy image's pixels (the views' own)."""
        show_paths({c: v.path for c, v in views.items()}, rec, t,
                   {c: v.shape for c, v in views.items()}, self.paths_on)

    def _overlays(self, views: dict[str, CameraView], maps: dict[str, np.ndarray]) -> None:
        shown = {c: m for c, m in maps.items() if c in views}
        # the joint top k% over the cameras, as NMR@k counts it
        top = top_k_mask(shown, self.ws.saliency.k) if shown and self.outline_on else {}
        for cam, view in views.items():
            view.show_overlay(maps.get(cam), self.ws.saliency.opacity)
            view.show_top(top.get(cam))

    def refresh(self) -> None:
        """Draw the current step's frames and overlays."""
        rec = self.ws.recording
        if rec is None or rec.n_steps == 0:
            preview = getattr(rec, "preview", None) or {}
            crisp = getattr(rec, "preview_display", None) or {}
            for cam, v in self.views.items():
                v.overlay.clear()
                if cam in preview:
                    self._show(v, preview[cam], crisp.get(cam))
                else:
                    v.frame.clear()
            if rec is not None:
                self.caption.setText(f"{rec.title}  |  \"{policy_instruction(rec.metadata)}\""
                                     "  |  ready: press play (Space)")
            return
        t = self.ws.step
        self._frames(self.views, rec, t)
        caption = f"{rec.title}  |  step {t + 1}/{rec.n_steps}"
        other, s = self.ws.comparison, self.ws.comparison_step()
        if other is not None and s is not None:
            self._frames(self.other_views, other, s)
            ended = "" if s == t else f" (A ended at step {other.n_steps})"
            caption = f"A: {other.title}  |  B: {caption}{ended}"
        self.refresh_overlays()
        words = policy_instruction(rec.metadata)
        self.caption.setText(f"{caption}  |  \"{words}\"")

    def _frames(self, views: dict[str, CameraView], rec, t: int) -> None:
        for cam, view in views.items():
            display = None if self.policy_view else rec.display_frame(t, cam)
            # the policy's frame only when shown, or to learn its size once
            policy = rec.frame(t, cam) if display is None or view.shape is None else None
            self._show(view, policy, display)
