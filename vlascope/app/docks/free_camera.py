"""Free camera dock: look around the shown step's scene as in MuJoCo's viewer (left drag
orbits, right / middle / Shift+left drag pans, the wheel zooms, a click names the body),
with contacts, forces, body frames, region colours and the planned hand path in 3D.

Rendering and state live in ``core/free_camera.py``; this dock turns mouse events into
camera moves and follows the workspace's cursor. The simulator model of a rollout comes
from ``model_source`` (the main window builds it on the worker thread: a scene of the
rollout's kind, reset to its task, seed and variant)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mujoco
import numpy as np
from PySide6.QtCore import QPointF, QSize, Qt, QTimer
from PySide6.QtGui import QImage, QMouseEvent, QPainter, QWheelEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from vlascope.core.errors import VLAScopeError
from vlascope.core.free_camera import (
    FORCE_M_PER_N,
    ORBIT,
    PAN,
    FreeCamera,
    FreeCameraUnavailable,
    Selection,
    SimulatorModel,
    check_state_metadata,
    no_state_message,
)
from vlascope.core.recording import FileRecording, Recording
from vlascope.core.workspace import Workspace

from . import Panel

# model_source(metadata, done): call done(SimulatorModel) or done(message) later (or now).
ModelSource = Callable[[dict[str, Any], Callable[[SimulatorModel | str], None]], None]
CLICK_SLOP = 3  # pixels a press may move and still be a click
MAX_SIDE = 1024  # the largest render side (MuJoCo's offscreen buffer)


class FreeCameraView(QWidget):
    """Shows the latest render and turns drags, clicks and the wheel into camera moves."""

    def __init__(self, dock: FreeCameraDock):
        super().__init__()
        self.dock = dock
        self.image: QImage | None = None
        self.frames = 0  # renders shown (tests and the benchmark wait on it)
        self._press: QPointF | None = None
        self._last: QPointF | None = None
        self._moved = False
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(False)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(640, 480)

    def render_size(self) -> tuple[int, int]:
        """(H, W) pixels the view shows now."""
        ratio = self.devicePixelRatioF()
        return (min(MAX_SIDE, max(16, round(self.height() * ratio))),
                min(MAX_SIDE, max(16, round(self.width() * ratio))))

    def show_frame(self, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        self._rgb = np.ascontiguousarray(rgb)  # QImage borrows the buffer
        self.image = QImage(self._rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        self.frames += 1
        self.repaint()

    def paintEvent(self, _event: Any) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.GlobalColor.black)
        if self.image is not None:
            p.drawImage(self.rect(), self.image)
        p.end()

    def _pixel(self, pos: QPointF) -> tuple[float, float]:
        h, w = self.dock.camera.size if self.dock.camera else self.render_size()
        return pos.x() * w / max(1, self.width()), pos.y() * h / max(1, self.height())

    def mousePressEvent(self, e: QMouseEvent) -> None:  # noqa: N802 - Qt API
        self._press = self._last = e.position()
        self._moved = False

    def mouseMoveEvent(self, e: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._last is None:
            return
        pos = e.position()
        if (pos - self._press).manhattanLength() > CLICK_SLOP:
            self._moved = True
        if not self._moved:
            return
        pan = bool(e.buttons() & (Qt.MouseButton.RightButton | Qt.MouseButton.MiddleButton)
                   or e.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        (x0, y0), (x1, y1) = self._pixel(self._last), self._pixel(pos)
        self._last = pos
        self.dock.move_camera(PAN if pan else ORBIT, x1 - x0, y1 - y0)

    def mouseReleaseEvent(self, e: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._press is not None and not self._moved \
                and e.button() == Qt.MouseButton.LeftButton:
            self.dock.select_at(*self._pixel(e.position()))
        self._press = self._last = None

    def wheelEvent(self, e: QWheelEvent) -> None:  # noqa: N802 - Qt API
        self.dock.zoom(e.angleDelta().y() / 120.0)

    def resizeEvent(self, _event: Any) -> None:  # noqa: N802 - Qt API
        # a new size needs a new renderer (~0.2 s on a CPU): once the size settles; until
        # then the last frame is stretched
        self.dock.resize_timer.start()


class FreeCameraDock(Panel):
    """A camera the user moves around the shown step (see the module docstring)."""

    def __init__(self, workspace: Workspace, model_source: ModelSource | None = None,
                 parent: QWidget | None = None):
        super().__init__("Free camera", "dock-free-camera", parent)
        self.ws = workspace
        self.model_source = model_source
        self.camera: FreeCamera | None = None
        self.paths_on = True
        self.selection: Selection | None = None
        self._key: tuple | None = None  # the rollout whose model the camera holds
        self._wanted: tuple | None = None  # the rollout whose model was asked for
        self._home = True  # the next shown state resets the view (a new rollout)
        self._shown: tuple | None = None  # (recording, step) whose state the camera holds

        row = QHBoxLayout()
        self.contacts = QCheckBox("Contacts")
        self.forces = QCheckBox("Forces")
        self.frames = QCheckBox("Body frames")
        self.regions = QCheckBox("Region colours")
        self.reset_button = QPushButton("Reset view")
        self.contacts.setToolTip("contact points (MuJoCo's mjVIS_CONTACTPOINT)")
        self.forces.setToolTip("contact forces as arrows (mjVIS_CONTACTFORCE)")
        self.frames.setToolTip("every body's frame (mjFRAME_BODY)")
        self.regions.setToolTip("colour geoms by their region class (action-critical, "
                                "support, nuisance; grey: unlabeled)")
        self.force_scale = QDoubleSpinBox()
        self.force_scale.setRange(0.1, 100.0)
        self.force_scale.setDecimals(1)
        self.force_scale.setSingleStep(0.5)
        self.force_scale.setSuffix(" cm/N")
        self.force_scale.setValue(FORCE_M_PER_N * 100)
        self.force_scale.setToolTip("length of a contact force arrow per newton (a grasp "
                                    "presses with a few N; a resting arm with tens)")
        # two rows: the dock must stay as narrow as the Scene dock it is tabbed with (a
        # wider minimum widens the whole window's)
        for w in (self.contacts, self.forces, self.force_scale):
            row.addWidget(w)
        row.addStretch(1)
        self.body.addLayout(row)
        row = QHBoxLayout()
        for w in (self.frames, self.regions):
            row.addWidget(w)
        for w in (self.contacts, self.forces, self.frames, self.regions):
            w.toggled.connect(self._toggled)
        self.force_scale.valueChanged.connect(self._toggled)
        row.addStretch(1)
        self.look_from = QComboBox()
        self.look_from.setToolTip("look through one of the scene's cameras (a drag goes on "
                                  "from there)")
        self.look_from.addItem("free")
        self.look_from.currentTextChanged.connect(self._look_from)
        row.addWidget(self.look_from)
        row.addWidget(self.reset_button)
        self.reset_button.clicked.connect(self.reset_view)
        self.body.addLayout(row)
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.timeout.connect(self.render_now)
        self.resize_timer = QTimer(self)
        self.resize_timer.setSingleShot(True)
        self.resize_timer.setInterval(150)
        self.resize_timer.timeout.connect(self.schedule_render)
        self.view = FreeCameraView(self)
        self.view.setToolTip("left drag: orbit; right, middle or Shift+left drag: pan; "
                             "wheel: zoom; click: name the body")
        self.body.addWidget(self.view, 1)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.body.addWidget(self.message)
        workspace.recording_changed.connect(self._recording)
        workspace.step_changed.connect(lambda _t: self.schedule_render())
        workspace.steps_appended.connect(lambda _n: self.schedule_render())
        self.visibilityChanged.connect(lambda _v: self.schedule_render())
        self._recording(workspace.recording)

    # the rollout ------------------------------------------------------------------------
    @staticmethod
    def _rollout_key(rec: Recording) -> tuple:
        m = rec.metadata
        return (m.get("scene"), m.get("task"), m.get("seed"), m.get("variant"))

    def _recording(self, rec: Recording | None) -> None:
        self.selection = None
        self.look_from.blockSignals(True)
        self.look_from.clear()
        self.look_from.addItems(["free", *(rec.cameras if rec is not None else [])])
        self.look_from.blockSignals(False)
        if rec is None:
            self._say("Nothing to look at yet: start a rollout or open an episode.")
            return
        if "sim_state" not in rec.metadata:
            self._drop_camera()
            self._say(no_state_message(rec.metadata) if isinstance(rec, FileRecording) else
                      f"The scene '{rec.metadata.get('scene', '?')}' cannot restore a "
                      "simulator state, so this rollout cannot be looked around in.")
            return
        try:
            check_state_metadata(rec.metadata)
        except FreeCameraUnavailable as e:
            self._drop_camera()
            self._say(str(e))
            return
        key = self._rollout_key(rec)
        self._home, self._shown = True, None
        if key == self._key:
            self.schedule_render()
            return
        self._drop_camera()
        if self.model_source is None:
            self._say("No simulator to draw with.")
            return
        self._wanted = key
        self._say("Preparing the simulator...")
        self.model_source(dict(rec.metadata), lambda got, k=key: self._model_ready(k, got))

    def _model_ready(self, key: tuple, got: SimulatorModel | str) -> None:
        if key != self._wanted:
            return  # another rollout was shown meanwhile
        if isinstance(got, str):
            self._say(got)
            return
        self._drop_camera()
        try:
            self.camera = FreeCamera(got, self.view.render_size())
        except Exception as e:  # noqa: BLE001 - no GL context here: said, not fatal
            self._say(f"Cannot render the free camera: {e}")
            return
        self._key = key
        self._toggled()

    def _drop_camera(self) -> None:
        if self.camera is not None:
            self.camera.close()
        self.camera, self._key, self._shown = None, None, None

    # drawing ----------------------------------------------------------------------------
    def schedule_render(self) -> None:
        """Render once control returns to the event loop (many moves, one frame)."""
        if self.camera is not None and self.isVisible():
            self._render_timer.start(0)

    def render_now(self) -> np.ndarray | None:
        """Render the shown step at the view's size now; the frame, or None with the reason
        in the message line."""
        cam, rec = self.camera, self.ws.recording
        if cam is None or rec is None or rec.n_steps == 0:
            return None
        try:
            shown = (id(rec), self.ws.step)
            if shown != self._shown:  # a camera move alone keeps the restored state
                state = rec.sim_state(self.ws.step)
                if state is None:
                    self._say(no_state_message(rec.metadata))
                    return None
                cam.set_state(state)
                self._shown = shown
            if self._home:
                cam.reset_view()
                self._home = False
                self._look_from(self.look_from.currentText())
            cam.resize(self.view.render_size())
            path = rec.hand_path(self.ws.step) if self.paths_on else None
            cam.set_paths(path.planned if path else None, path.executed if path else None)
            rgb = cam.render()
        except (VLAScopeError, ValueError, RuntimeError) as e:
            self._say(f"Cannot draw this step: {e}")
            return None
        self.view.show_frame(rgb)
        if self.selection is None:
            self._say(f"Step {self.ws.step}: drag to orbit, right-drag to pan, wheel to "
                      "zoom, click a body to name it.")
        return rgb

    def _say(self, text: str) -> None:
        self.message.setText(text)

    # controls ---------------------------------------------------------------------------
    def _toggled(self, *_args: Any) -> None:
        cam = self.camera
        if cam is None:
            return
        cam.set_flag(mujoco.mjtVisFlag.mjVIS_CONTACTPOINT, self.contacts.isChecked())
        cam.set_flag(mujoco.mjtVisFlag.mjVIS_CONTACTFORCE, self.forces.isChecked())
        cam.set_force_scale(self.force_scale.value() / 100)
        cam.set_body_frames(self.frames.isChecked())
        cam.show_regions = self.regions.isChecked()
        self.schedule_render()

    def set_paths(self, on: bool) -> None:
        """Draw the shown chunk's planned hand path in 3D (View > Planned vs executed)."""
        self.paths_on = on
        self.schedule_render()

    def reset_view(self) -> None:
        if self.camera is not None:
            self.camera.reset_view()
            self._set_look_from("free")
            self.schedule_render()

    def _look_from(self, name: str) -> None:
        if self.camera is None or not name:
            return
        try:
            if name == "free":
                self.camera.camera.type = int(mujoco.mjtCamera.mjCAMERA_FREE)
            else:
                self.camera.look_through(name)
        except VLAScopeError as e:
            self._say(str(e))
        self.schedule_render()

    def _set_look_from(self, name: str) -> None:
        self.look_from.blockSignals(True)
        self.look_from.setCurrentText(name)
        self.look_from.blockSignals(False)

    def move_camera(self, action: int, dx: float, dy: float) -> None:
        if self.camera is not None:
            self.camera.move(action, dx, dy)  # from a scene camera's view: free from there
            self._set_look_from("free")
            self.schedule_render()

    def zoom(self, steps: float) -> None:
        if self.camera is not None:
            self.camera.zoom(steps)
            self.schedule_render()

    def select_at(self, x: float, y: float) -> Selection | None:
        """Name the body at render pixel (x, y): its region class and object id."""
        if self.camera is None:
            return None
        self.selection = self.camera.select(x, y)
        self._say(self.selection.describe() if self.selection else "Nothing there.")
        return self.selection

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self._drop_camera()
        super().closeEvent(event)
