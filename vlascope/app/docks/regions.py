"""Painting the causal regions: the shown step's camera frame at its own resolution with the
labels on top (ground truth + the user's edits), tools to correct them, a legend that is also
the class picker, propagation over steps, live NMR@k, and files in and out.

All editing goes through the workspace's ``RegionAnnotation`` (core), which keeps undo
history and autosaves; this dock only turns mouse and keys into its operations and draws.
Keys act while the canvas has the focus (they take precedence over the window's shortcuts
there): B brush, E eraser, F fill, P polygon/lasso, O object, 0-3 class, [ ] brush size,
Ctrl+Z / Ctrl+Shift+Z undo/redo, Enter closes a polygon, Esc drops it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QColor, QIcon, QKeyEvent, QMouseEvent, QPen, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGraphicsEllipseItem,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QToolButton,
    QWidget,
)

from vlascope.core.annotation import read_label_png, write_label_png
from vlascope.core.errors import VLAScopeError
from vlascope.core.metrics import fit_labels, mask_step, top_k_mask
from vlascope.core.regions import (
    ACTION_CRITICAL,
    LABEL_COLORS,
    LABEL_NAMES,
    NUISANCE,
    SUPPORT,
    UNLABELED,
)
from vlascope.core.toolkit_io import read_masks, write_masks
from vlascope.core.workspace import Workspace

from . import Panel, nmr_text
from .outline import outline_item, show_outline

TOOLS = {"brush": ("Brush", Qt.Key.Key_B), "eraser": ("Eraser", Qt.Key.Key_E),
         "fill": ("Fill", Qt.Key.Key_F), "polygon": ("Polygon", Qt.Key.Key_P),
         "object": ("Object", Qt.Key.Key_O)}
TOOL_TIPS = {
    "brush": "Paint the chosen class (B)",
    "eraser": "Remove your edits under the brush: the ground truth shows again (E)",
    "fill": "Fill the connected area under the click with the class (F)",
    "polygon": "Click corners and press Enter, or drag a lasso (P)",
    "object": "Give the clicked simulator object the class in every step and camera (O)",
}
CLASS_ORDER = (ACTION_CRITICAL, SUPPORT, NUISANCE, UNLABELED)
CLASS_KEYS = {Qt.Key.Key_0: UNLABELED, Qt.Key.Key_1: ACTION_CRITICAL, Qt.Key.Key_2: SUPPORT,
              Qt.Key.Key_3: NUISANCE}
DEFAULT_OPACITY = {ACTION_CRITICAL: 0.55, SUPPORT: 0.45, NUISANCE: 0.35, UNLABELED: 0.0}


class RegionDock(Panel):
    """Region annotation of the shown rollout, one camera at a time."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None):
        super().__init__("Regions", "dock-regions", parent)
        self.ws = workspace
        self.tool = "brush"
        self.label = NUISANCE
        self.opacity = dict(DEFAULT_OPACITY)
        self.visible = {k: True for k in LABEL_NAMES}
        self.camera = ""
        self._stroke: tuple[float, float] | None = None  # last brush point while dragging
        self._lasso: list[tuple[float, float]] = []
        self._dragged = False
        self._vertices: list[tuple[float, float]] = []
        col = self.body

        row = QHBoxLayout()
        self.camera_box = QComboBox()
        self.camera_box.setToolTip("camera to annotate")
        row.addWidget(self.camera_box)
        self.tool_group = QButtonGroup(self)
        self.tool_buttons: dict[str, QToolButton] = {}
        for name, (text, _key) in TOOLS.items():
            b = QToolButton()
            b.setText(text)
            b.setCheckable(True)
            b.setToolTip(TOOL_TIPS[name])
            self.tool_group.addButton(b)
            self.tool_buttons[name] = b
            b.clicked.connect(lambda _=False, n=name: self.set_tool(n))
            row.addWidget(b)
        self.size = QSpinBox()
        self.size.setRange(1, 80)
        self.size.setValue(4)
        self.size.setPrefix("size ")
        self.size.setSuffix(" px")
        self.size.setToolTip("brush and eraser radius ([ and ])")
        row.addWidget(self.size)
        row.addStretch(1)
        col.addLayout(row)

        legend = QGridLayout()
        self.class_buttons: dict[int, QToolButton] = {}
        self.show_boxes: dict[int, QCheckBox] = {}
        self.opacity_sliders: dict[int, QSlider] = {}
        self.class_group = QButtonGroup(self)
        for i, k in enumerate(CLASS_ORDER):
            r, g, b = LABEL_COLORS[k]
            swatch = QToolButton()
            swatch.setCheckable(True)
            swatch.setText(f"{k}  {LABEL_NAMES[k]}")
            swatch.setToolTip(f"paint {LABEL_NAMES[k]} (key {k})")
            icon = QPixmap(14, 14)
            icon.fill(QColor(r, g, b))
            swatch.setIcon(QIcon(icon))
            swatch.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            swatch.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            swatch.clicked.connect(lambda _=False, k=k: self.set_label(k))
            self.class_group.addButton(swatch)
            show = QCheckBox("show")
            show.setChecked(True)
            show.toggled.connect(lambda on, k=k: self._set_visible(k, on))
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, 100)
            slider.setValue(int(self.opacity[k] * 100))
            slider.setToolTip(f"opacity of {LABEL_NAMES[k]}")
            slider.valueChanged.connect(lambda v, k=k: self._set_opacity(k, v / 100.0))
            legend.addWidget(swatch, i, 0)
            legend.addWidget(show, i, 1)
            legend.addWidget(slider, i, 2)
            self.class_buttons[k], self.show_boxes[k], self.opacity_sliders[k] = \
                swatch, show, slider
        col.addLayout(legend)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#202020")
        self.graphics.setMinimumSize(240, 200)
        self.graphics.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.graphics.setMouseTracking(True)
        self.graphics.viewport().setMouseTracking(True)
        self.box = self.graphics.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.frame_item = pg.ImageItem(axisOrder="row-major")
        self.label_item = pg.ImageItem(axisOrder="row-major")
        self.outline_item = outline_item()
        for item in (self.frame_item, self.label_item, self.outline_item):
            self.box.addItem(item)
        self.cursor = QGraphicsEllipseItem()
        self.cursor.setPen(QPen(QColor(255, 255, 255, 200), 0))
        self.cursor.setVisible(False)
        self.box.addItem(self.cursor)
        self.path_item = pg.PlotCurveItem(pen=pg.mkPen((255, 255, 255), width=1))
        self.box.addItem(self.path_item)
        col.addWidget(self.graphics, 1)
        self.under_cursor = QLabel("-")
        self.under_cursor.setObjectName("regions-under-cursor")
        col.addWidget(self.under_cursor)

        row = QHBoxLayout()
        self.k = QDoubleSpinBox()
        self.k.setRange(0.1, 100.0)
        self.k.setSuffix(" %")
        self.k.setPrefix("k ")
        self.k.setValue(workspace.saliency.k)
        self.k.setToolTip("NMR@k: the share of the top k% salient pixels that are not "
                          "action-critical or support")
        self.outline = QCheckBox("outline top-k")
        self.outline.setChecked(True)
        self.nmr_frame = QLabel("NMR: -")
        self.nmr_frame.setObjectName("regions-nmr-frame")
        self.nmr_episode = QLabel("episode: -")
        for w in (self.k, self.outline, self.nmr_frame, self.nmr_episode):
            row.addWidget(w)
        row.addStretch(1)
        col.addLayout(row)

        row = QHBoxLayout()
        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.range_from = QSpinBox()
        self.range_to = QSpinBox()
        self.range_from.setPrefix("steps ")
        self.range_to.setPrefix("to ")
        self.propagate_button = QPushButton("Copy edits")
        self.propagate_button.setToolTip("copy this frame's edits onto the steps in range")
        self.clear_button = QPushButton("Clear frame")
        self.clear_button.setToolTip("drop this frame's edits: back to the ground truth")
        for w in (self.undo_button, self.redo_button, self.range_from, self.range_to,
                  self.propagate_button, self.clear_button):
            row.addWidget(w)
        row.addStretch(1)
        col.addLayout(row)
        row = QHBoxLayout()
        self.import_button = QPushButton("Import...")
        self.import_button.setToolTip("the toolkit's masks (mask_{view}_rgb.npy) or a PNG "
                                      "label map")
        self.export_button = QPushButton("Export...")
        self.export_button.setToolTip("a folder of the toolkit's masks (all steps) or a PNG "
                                      "label map (this frame)")
        self.saved = QLabel("")
        self.saved.setObjectName("regions-saved")
        for w in (self.import_button, self.export_button, self.saved):
            row.addWidget(w)
        row.addStretch(1)
        col.addLayout(row)

        self.camera_box.currentTextChanged.connect(self._camera_picked)
        self.k.valueChanged.connect(self._k_edited)
        self.outline.toggled.connect(lambda _on: self.redraw())
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        self.propagate_button.clicked.connect(self.propagate)
        self.clear_button.clicked.connect(self.clear_frame)
        self.import_button.clicked.connect(self._import_dialog)
        self.export_button.clicked.connect(self._export_dialog)
        self.graphics.viewport().installEventFilter(self)
        self.graphics.installEventFilter(self)
        workspace.recording_changed.connect(self._recording_changed)
        workspace.steps_appended.connect(lambda _n: self._update_range())
        workspace.step_changed.connect(lambda _t: self.redraw())
        workspace.saliency_changed.connect(lambda _t: self.redraw())
        workspace.saliency_settings_changed.connect(self._settings_changed)
        workspace.regions_changed.connect(lambda _f: self.redraw())
        self.visibilityChanged.connect(lambda shown: shown and self.redraw())
        self.set_tool("brush")
        self.set_label(NUISANCE)
        self._update_lut()
        self._recording_changed(workspace.recording)

    # state ------------------------------------------------------------------------------
    @property
    def annotation(self):
        return self.ws.annotation

    def set_tool(self, name: str) -> None:
        if name not in TOOLS:
            raise VLAScopeError(f"unknown tool '{name}'")
        self.tool = name
        self.tool_buttons[name].setChecked(True)
        self._vertices = []
        self.path_item.setData([], [])
        self.cursor.setVisible(False)

    def set_label(self, label: int) -> None:
        self.label = label
        self.class_buttons[label].setChecked(True)

    def _set_visible(self, label: int, on: bool) -> None:
        self.visible[label] = on
        self._update_lut()

    def _set_opacity(self, label: int, value: float) -> None:
        self.opacity[label] = value
        self._update_lut()

    def _update_lut(self) -> None:
        lut = np.zeros((256, 4), np.uint8)
        for k, rgb in LABEL_COLORS.items():
            lut[k, :3] = rgb
            lut[k, 3] = int(255 * self.opacity[k]) if self.visible[k] else 0
        self.label_item.setLookupTable(lut)
        self.label_item.update()

    def _k_edited(self, value: float) -> None:
        self.ws.update_saliency(k=float(value))  # the spin box keeps k within (0, 100]

    def _settings_changed(self, s) -> None:
        if abs(self.k.value() - s.k) > 1e-9:
            self.k.blockSignals(True)
            self.k.setValue(s.k)
            self.k.blockSignals(False)
        self.redraw()

    def _recording_changed(self, rec) -> None:
        self.camera_box.blockSignals(True)
        self.camera_box.clear()
        if rec is not None:
            self.camera_box.addItems(list(rec.cameras))
            if self.camera in rec.cameras:
                self.camera_box.setCurrentText(self.camera)
        self.camera = self.camera_box.currentText()
        self.camera_box.blockSignals(False)
        self._vertices = []
        self._update_range()
        self.redraw()

    def _camera_picked(self, name: str) -> None:
        self.camera = name
        self.redraw()

    def _update_range(self) -> None:
        """Steps for propagation; the end follows a growing rollout while it sits at the end."""
        n = max(self.ws.n_steps, 1)
        at_end = self.range_to.value() >= self.range_to.maximum()
        for box in (self.range_from, self.range_to):
            box.setRange(0, n - 1)
        if at_end:
            self.range_to.setValue(n - 1)

    # drawing ----------------------------------------------------------------------------
    def redraw(self) -> None:
        """Frame, labels, top-k outline and the NMR figures of the shown step (only while
        the dock is on screen: a tab behind another costs nothing during a live run)."""
        if not self.isVisible():
            return
        ann, rec, cam = self.annotation, self.ws.recording, self.camera
        if ann is None or rec is None or cam not in ann.cameras:
            for item in (self.frame_item, self.label_item, self.outline_item):
                item.clear()
            self.nmr_frame.setText("NMR: - (nothing to annotate yet)")
            self.nmr_episode.setText("episode: -")
            self.saved.setText("")
            return
        t = self.ws.step
        frame = rec.frame(t, cam)
        first = self.frame_item.image is None or self.frame_item.image.shape[:2] != frame.shape[:2]
        self.frame_item.setImage(frame, autoLevels=False, levels=(0, 255))
        self.label_item.setImage(ann.labels(cam, t), autoLevels=False, levels=(0, 255))
        if first:
            self.box.setRange(xRange=(0, frame.shape[1]), yRange=(0, frame.shape[0]),
                              padding=0)
        maps = self.ws.maps_at(t)
        top = (top_k_mask(maps, self.ws.saliency.k)[cam]
               if maps and self.outline.isChecked() and cam in maps else None)
        show_outline(self.outline_item, top)
        self._show_nmr()
        store = ann.store
        self.saved.setText(f"autosaved to {store.folder.name}/" if store is not None
                           else "not saved: this rollout has no file")
        self.undo_button.setEnabled(ann.can_undo)
        self.redo_button.setEnabled(ann.can_redo)

    def _show_nmr(self) -> None:
        self.nmr_frame.setText(nmr_text(self.ws))
        mean, n = self.ws.nmr_episode()
        self.nmr_episode.setText("episode: -" if mean is None
                                 else f"episode: {mean:.3f} ({n} steps)")

    def _redraw_labels(self) -> None:
        """Only the label layer: what a brush dab changes (the stroke-to-screen path)."""
        ann = self.annotation
        if ann is not None and self.camera in ann.cameras:
            self.label_item.setImage(ann.labels(self.camera, self.ws.step), autoLevels=False,
                                     levels=(0, 255))

    # mouse and keys ---------------------------------------------------------------------
    def image_point(self, pos: QPointF) -> tuple[float, float]:
        """Viewport position -> (x, y) in frame pixels."""
        p = self.label_item.mapFromScene(self.graphics.mapToScene(pos.toPoint()))
        return float(p.x()), float(p.y())

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        try:
            return self._event(obj, event)
        except VLAScopeError as e:  # a bad click or a failed save: say so, keep going
            self._stroke = None
            self._tell(str(e))
            return True

    def _event(self, obj: QObject, event: QEvent) -> bool:
        kind = event.type()
        if obj is self.graphics.viewport() and isinstance(event, QMouseEvent):
            if kind == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
                self.graphics.setFocus()
                self._press(self.image_point(event.position()))
                return True
            if kind == QEvent.Type.MouseMove:
                self._move(self.image_point(event.position()),
                           bool(event.buttons() & Qt.MouseButton.LeftButton))
                return True
            if kind == QEvent.Type.MouseButtonRelease and \
                    event.button() == Qt.MouseButton.LeftButton:
                self._release(self.image_point(event.position()))
                return True
            if kind == QEvent.Type.MouseButtonDblClick and self.tool == "polygon":
                self._close_polygon()
                return True
        if obj is self.graphics and isinstance(event, QKeyEvent):
            if kind == QEvent.Type.ShortcutOverride and self._handles(event):
                event.accept()  # the canvas's keys win over the window's shortcuts here
                return True
            if kind == QEvent.Type.KeyPress and self._handles(event):
                self._key(event)
                return True
        return super().eventFilter(obj, event)

    def _handles(self, event: QKeyEvent) -> bool:
        key, mods = event.key(), event.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        if ctrl:
            return key in (Qt.Key.Key_Z, Qt.Key.Key_Y)
        return key in CLASS_KEYS or key in {k for _t, k in TOOLS.values()} or key in (
            Qt.Key.Key_BracketLeft, Qt.Key.Key_BracketRight, Qt.Key.Key_Return,
            Qt.Key.Key_Enter, Qt.Key.Key_Escape)

    def _key(self, event: QKeyEvent) -> None:
        key, mods = event.key(), event.modifiers()
        if mods & Qt.KeyboardModifier.ControlModifier:
            if key == Qt.Key.Key_Y or mods & Qt.KeyboardModifier.ShiftModifier:
                self.redo()
            else:
                self.undo()
        elif key in CLASS_KEYS:
            self.set_label(CLASS_KEYS[key])
        elif key == Qt.Key.Key_BracketLeft:
            self.size.setValue(self.size.value() - 1)
        elif key == Qt.Key.Key_BracketRight:
            self.size.setValue(self.size.value() + 1)
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._close_polygon()
        elif key == Qt.Key.Key_Escape:
            self._vertices = []
            self.path_item.setData([], [])
        else:
            for name, (_text, k) in TOOLS.items():
                if k == key:
                    self.set_tool(name)

    def _press(self, p: tuple[float, float]) -> None:
        ann, t, cam = self.annotation, self.ws.step, self.camera
        if ann is None or cam not in ann.cameras:
            return
        self._dragged = False
        if self.tool in ("brush", "eraser"):
            ann.begin()
            self._stroke = p
            ann.paint(cam, t, p, p, self.size.value(), self._paint_label())
            self._redraw_labels()
        elif self.tool == "fill":
            ann.fill(cam, t, int(p[0]), int(p[1]), self.label)
        elif self.tool == "polygon":
            self._lasso = [p]
        elif self.tool == "object":
            ann.assign_object(cam, t, int(p[0]), int(p[1]), self.label)

    def _move(self, p: tuple[float, float], held: bool) -> None:
        self._hover(p)
        ann = self.annotation
        if not held or ann is None:
            return
        if self._stroke is not None:
            self._dragged = True
            ann.paint(self.camera, self.ws.step, self._stroke, p, self.size.value(),
                      self._paint_label())
            self._stroke = p
            self._redraw_labels()
        elif self.tool == "polygon" and self._lasso:
            self._dragged = True
            self._lasso.append(p)
            xs, ys = zip(*self._lasso, strict=True)
            self.path_item.setData(list(xs), list(ys))

    def _release(self, p: tuple[float, float]) -> None:
        ann = self.annotation
        if ann is None:
            return
        if self._stroke is not None:
            self._stroke = None
            ann.commit()  # one undo step, saved
        elif self.tool == "polygon" and self._lasso:
            lasso, self._lasso = self._lasso, []
            if self._dragged and len(lasso) >= 3:  # a lasso: fill it now
                ann.fill_polygon(self.camera, self.ws.step, lasso, self.label)
                self.path_item.setData([], [])
            else:  # a click: one more corner
                self._vertices.append(p)
                xs, ys = zip(*self._vertices, strict=True)
                self.path_item.setData(list(xs), list(ys))

    def _close_polygon(self) -> None:
        ann, vertices = self.annotation, self._vertices
        self._vertices = []
        self.path_item.setData([], [])
        if ann is not None and len(vertices) >= 3:
            ann.fill_polygon(self.camera, self.ws.step, vertices, self.label)

    def _paint_label(self) -> int | None:
        return None if self.tool == "eraser" else self.label

    def _hover(self, p: tuple[float, float]) -> None:
        ann, cam = self.annotation, self.camera
        if ann is None or cam not in ann.cameras:
            return
        x, y = int(np.floor(p[0])), int(np.floor(p[1]))
        h, w = ann.shapes[cam]
        r = self.size.value()
        self.cursor.setRect(p[0] - r, p[1] - r, 2 * r, 2 * r)
        self.cursor.setVisible(self.tool in ("brush", "eraser"))
        if not (0 <= x < w and 0 <= y < h):
            self.under_cursor.setText("-")
            return
        t = self.ws.step
        label, edited = ann.label_at(cam, t, x, y)
        source = "edited" if edited else "ground truth"
        obj = ann.object_at(cam, t, x, y)
        name = self.ws.recording.segment_names().get(obj, "") if obj else ""
        self.under_cursor.setText(f"({x}, {y}): {LABEL_NAMES[label]} ({source})"
                                  + (f"  |  object: {name}" if name else ""))

    def _tell(self, message: str) -> None:
        self.under_cursor.setText(message)
        window = self.window()
        if hasattr(window, "statusBar"):
            window.statusBar().showMessage(message, 8000)

    # commands ---------------------------------------------------------------------------
    def undo(self) -> None:
        if self.annotation is not None:
            self.annotation.undo()

    def redo(self) -> None:
        if self.annotation is not None:
            self.annotation.redo()

    def propagate(self) -> int:
        ann = self.annotation
        if ann is None:
            return 0
        a, b = sorted((self.range_from.value(), self.range_to.value()))
        return ann.propagate(self.camera, self.ws.step, range(a, b + 1))

    def clear_frame(self) -> None:
        if self.annotation is not None:
            self.annotation.clear(self.camera, self.ws.step)

    def export_file(self, path: str | Path) -> Path:
        """``.png``: this frame's labels; otherwise a folder that receives the toolkit's
        ``masks/mask_{view}_rgb.npy`` of every step."""
        ann, path = self.annotation, Path(path)
        if ann is None:
            raise VLAScopeError("nothing to export: run or open an episode")
        if path.suffix.lower() == ".png":
            return write_label_png(path, ann.labels(self.camera, self.ws.step))
        steps = range(ann.n_steps)
        labels = {c: np.stack([ann.labels(c, t) for t in steps]) for c in ann.cameras}
        return write_masks(path, labels)[0].parent

    def import_file(self, path: str | Path) -> int:
        """The counterpart of ``export_file`` (a mask folder or one of its files): the
        labels become edits over the seed, mask frames taken for each step and resized as
        the toolkit does."""
        ann, path = self.annotation, Path(path)
        if ann is None:
            raise VLAScopeError("nothing to import into: run or open an episode")
        if path.suffix.lower() == ".png":
            labels = read_label_png(path, ann.shapes[self.camera])
            return ann.import_labels({self.camera: labels[None]}, [self.ws.step])
        masks = read_masks(path, ann.cameras)
        steps = range(ann.n_steps)
        fitted = {c: np.stack([fit_labels(m[mask_step(len(m), t, ann.n_steps)], ann.shapes[c])
                               for t in steps]) for c, m in masks.items()}
        return ann.import_labels(fitted, list(steps))

    def _import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import regions", "",
            "Toolkit masks (mask_*_rgb.npy);;PNG label map (*.png)")
        if path:
            self._guard(lambda: self.import_file(path), f"imported {path}")

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export regions (a folder for toolkit masks)", "toolkit",
            "Toolkit masks folder (*);;PNG label map (*.png)")
        if path:
            self._guard(lambda: self.export_file(path), f"exported {path}")

    def _guard(self, action, done: str) -> None:
        try:
            action()
        except VLAScopeError as e:
            window = self.window()
            if hasattr(window, "show_error"):
                window.show_error("Regions", str(e))
            self._tell(str(e))
        else:
            self._tell(done)
