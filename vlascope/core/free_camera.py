"""A camera the user moves around a scene's simulator (MuJoCo viewer style), drawn from any
step's stored state: the policy's own cameras often hide what went wrong (the fingers
behind the cube, the object under the gripper).

The camera owns a private copy of the scene's model and its own ``MjData``: a step is shown
by restoring its state (``mj_setState`` + ``mj_forward``), so a live rollout stepping on the
worker thread is never read while it moves, and a recorded step draws exactly as it did.
Mouse moves follow ``mjv_moveCamera`` (rotate, move, zoom as in MuJoCo's ``simulate``);
a click is ``mjv_select``, named with the scene's own region and object rule.
No Qt here: the dock in ``app/docks/free_camera.py`` feeds it mouse deltas and shows frames.
"""

from __future__ import annotations

import atexit
import copy
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np

from .errors import VLAScopeError
from .regions import ACTION_CRITICAL, LABEL_COLORS, LABEL_NAMES, SUPPORT, UNLABELED
from .scene import Scene

# Everything mj_forward reads: physics, controls, applied forces, mocap bodies and the
# solver's warm start (contact forces converge from it, so the arrows match too).
STATE_SPEC = int(mujoco.mjtState.mjSTATE_INTEGRATION)
NO_STATE = "this recording has no simulator state; re-record to look around"
NO_STATE_IN_DATASET = ("this episode comes from a dataset, which keeps camera frames but no "
                       "simulator state: look around in a rollout recorded by VLAScope")

ORBIT, PAN, ZOOM = (int(mujoco.mjtMouse.mjMOUSE_ROTATE_V), int(mujoco.mjtMouse.mjMOUSE_MOVE_V),
                    int(mujoco.mjtMouse.mjMOUSE_ZOOM))
_GEOM = int(mujoco.mjtObj.mjOBJ_GEOM)
UNLABELED_RGBA = (0.55, 0.55, 0.55, 1.0)  # geoms the scene gives no class, in class colours
PLANNED_RGBA = (0.55, 1.0, 0.1, 1.0)  # lime, as the cameras' overlay draws the plan
EXECUTED_RGBA = (1.0, 0.7, 0.1, 1.0)  # amber: where the hand went
PATH_WIDTH = 0.004  # capsule radius in metres
DEFAULT_ELEVATION = -30.0  # degrees, looking down on the task
# Contact marks in metres and newtons: MuJoCo scales them by the model's mean body size and
# mass, which walls, floors and parked props inflate (8 cm discs on a 4 cm cube).
CONTACT_RADIUS, CONTACT_HEIGHT, FORCE_WIDTH = 0.005, 0.002, 0.002
FORCE_M_PER_N = 0.05  # the arrows' default length per newton (the dock's cm/N box)
# Renderers left open at exit fail in __del__ once MuJoCo's atexit hook has ended EGL; ours
# is registered after the first renderer exists (after MuJoCo's), so it runs first.
_LIVE: weakref.WeakSet = weakref.WeakSet()
_EXIT_HOOK: list[bool] = []


def _close_live() -> None:
    for cam in list(_LIVE):
        cam.close()


def no_state_message(metadata: dict) -> str:
    """Why a recorded episode cannot be looked around in, and what would do."""
    from .linked_episode import source_of

    return NO_STATE_IN_DATASET if source_of(metadata) is not None else NO_STATE


class FreeCameraUnavailable(VLAScopeError):
    """The shown rollout cannot be looked around in (no state, or a scene without MuJoCo)."""


def get_state(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """The state ``STATE_SPEC`` names, as a float64 vector."""
    out = np.empty(mujoco.mj_stateSize(model, STATE_SPEC), np.float64)
    mujoco.mj_getState(model, data, out, STATE_SPEC)
    return out


def state_metadata() -> dict[str, Any]:
    """What an episode keeps beside ``/steps/sim_state`` to read it back safely."""
    return {"spec": STATE_SPEC, "mujoco": mujoco.__version__}


@dataclass
class SimulatorModel:
    """What the free camera draws one rollout with: a private model as the scene configured
    it for that rollout (variant colours, camera moves), the scene's visual options, and
    per geom the region class and object id the scene's segmentation gives."""

    scene: str
    model: mujoco.MjModel
    option: mujoco.MjvOption
    flags_off: tuple = ()
    geom_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    geom_objects: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    object_names: dict[int, str] = field(default_factory=dict)
    home_camera: str = ""  # the scene's first camera: the default view looks its way


def simulator_model(scene: Scene) -> SimulatorModel:
    """The scene's simulator as it is now (after a reset), copied; raises
    ``FreeCameraUnavailable`` when the scene has none to hand out."""
    handles = scene.simulator()
    if handles is None:
        raise FreeCameraUnavailable(f"the scene '{scene.name}' cannot restore a simulator "
                                    "state, so it cannot be looked around in")
    model = copy.deepcopy(handles.model)
    option = copy.deepcopy(handles.option) if handles.option is not None \
        else mujoco.MjvOption()
    n = model.ngeom
    seg = np.stack([np.arange(n), np.full(n, _GEOM)], axis=-1).reshape(1, n, 2)
    classified = scene.classify_segmentation(seg.astype(np.int32))
    if classified is None:
        labels, objects = np.full(n, UNLABELED, np.uint8), np.zeros(n, np.int64)
    else:
        labels = np.asarray(classified[0]).reshape(n).astype(np.uint8)
        objects = np.asarray(classified[1]).reshape(n).astype(np.int64)
    return SimulatorModel(scene.name, model, option, tuple(handles.flags_off), labels,
                          objects, dict(scene.segment_names()),
                          scene.cameras[0] if scene.cameras else "")


def replay_model(scene: Scene, metadata: Mapping[str, Any]) -> SimulatorModel:
    """The simulator of a recorded rollout: ``scene`` (of the rollout's kind, not the live
    one: it is reset) is reset to the rollout's task, seed and variant, which configures its
    model as it was recorded, and copied."""
    if metadata.get("scene") != scene.name:
        raise FreeCameraUnavailable(f"the recording is of scene '{metadata.get('scene')}', "
                                    f"not '{scene.name}'")
    scene.reset(str(metadata.get("task", "")), int(metadata.get("seed", 0)),
                metadata.get("variant") or None)
    return simulator_model(scene)


def check_state_metadata(metadata: Mapping[str, Any]) -> None:
    """Refuse states recorded under another layout (an unreadable state draws garbage)."""
    info = metadata.get("sim_state")
    if not isinstance(info, Mapping) or info.get("spec") != STATE_SPEC:
        raise FreeCameraUnavailable(f"the recording's simulator state ({info!r}) is not the "
                                    f"layout this VLAScope reads (spec {STATE_SPEC})")


@dataclass(frozen=True)
class Selection:
    """What a click hit: the body, its region class and the Regions dock's object id."""

    body: str
    body_id: int
    geom_id: int
    label: int
    object_id: int
    object_name: str
    point: tuple[float, float, float]

    @property
    def label_name(self) -> str:
        return LABEL_NAMES.get(self.label, "unlabeled")

    def describe(self) -> str:
        obj = f"object {self.object_id}" + (f" ({self.object_name})"
                                            if self.object_name else "")
        return f"{self.body}: {self.label_name}, {obj}"


class FreeCamera:
    """A free camera over one ``SimulatorModel``. Not thread-safe: use it on one thread
    (it holds an EGL context)."""

    def __init__(self, sim: SimulatorModel, size: tuple[int, int] = (480, 640)):
        self.sim = sim
        self.model = sim.model
        mean, mass = max(self.model.stat.meansize, 1e-6), max(self.model.stat.meanmass, 1e-9)
        scale = self.model.vis.scale
        scale.contactwidth, scale.contactheight = CONTACT_RADIUS / mean, CONTACT_HEIGHT / mean
        scale.forcewidth = FORCE_WIDTH / mean
        self._meanmass = mass
        self.set_force_scale(FORCE_M_PER_N)
        self.data = mujoco.MjData(self.model)
        self.option = copy.deepcopy(sim.option)
        self.camera = mujoco.MjvCamera()
        self.show_regions = False
        self.paths: list[tuple[np.ndarray, tuple[float, float, float, float]]] = []
        self._renderer: mujoco.Renderer | None = None
        self._size = (0, 0)
        self.resize(size)
        mujoco.mj_forward(self.model, self.data)
        self.reset_view()

    # state ------------------------------------------------------------------------------
    def set_state(self, state: np.ndarray) -> None:
        """Show a stored state (``get_state``'s vector)."""
        state = np.asarray(state, np.float64).reshape(-1)
        need = mujoco.mj_stateSize(self.model, STATE_SPEC)
        if state.shape != (need,):
            raise FreeCameraUnavailable(f"a simulator state of {state.size} numbers does not "
                                        f"fit this scene's model ({need})")
        mujoco.mj_setState(self.model, self.data, state, STATE_SPEC)
        mujoco.mj_forward(self.model, self.data)

    def show_data(self, data: mujoco.MjData) -> None:
        """Show a live ``MjData`` of the same model, copied (call it on the thread that
        steps it, between steps)."""
        self.data = copy.copy(data)  # MjData's copy is MuJoCo's mj_copyData
        mujoco.mj_forward(self.model, self.data)

    # toggles ----------------------------------------------------------------------------
    def set_flag(self, flag: mujoco.mjtVisFlag, on: bool) -> None:
        """Contact points, contact forces, ... (``mjtVisFlag``)."""
        self.option.flags[int(flag)] = bool(on)

    def set_force_scale(self, metres_per_newton: float) -> None:
        """Contact force arrows' length per newton (MuJoCo divides its map.force by the
        model's mean mass, so it is set as a length here)."""
        if not metres_per_newton > 0:
            raise ValueError(f"an arrow scale must be positive, got {metres_per_newton}")
        self.model.vis.map.force = metres_per_newton * self._meanmass

    def set_body_frames(self, on: bool) -> None:
        self.option.frame = int(mujoco.mjtFrame.mjFRAME_BODY if on
                                else mujoco.mjtFrame.mjFRAME_NONE)

    def set_paths(self, planned: np.ndarray | None, executed: np.ndarray | None = None
                  ) -> None:
        """Hand paths (N, 3) in world metres drawn as capsules (None: none)."""
        self.paths = [(np.asarray(p, np.float64).reshape(-1, 3), rgba)
                      for p, rgba in ((planned, PLANNED_RGBA), (executed, EXECUTED_RGBA))
                      if p is not None and len(p) >= 2]

    # camera -----------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def resize(self, size: tuple[int, int]) -> None:
        """Render at (H, W) from now on (the view's resolution)."""
        h, w = max(16, int(size[0])), max(16, int(size[1]))
        if (h, w) == self._size:
            return
        g = self.model.vis.global_
        g.offwidth, g.offheight = max(w, g.offwidth), max(h, g.offheight)
        if self._renderer is not None:
            self._renderer.close()
        self._renderer = mujoco.Renderer(self.model, height=h, width=w)
        self._size = (h, w)
        _LIVE.add(self)
        if not _EXIT_HOOK:
            atexit.register(_close_live)
            _EXIT_HOOK.append(True)

    def look_through(self, name: str) -> None:
        """See exactly what one of the scene's cameras sees (a mouse move then continues
        from there as a free camera)."""
        cam = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, name)
        if cam < 0:
            raise VLAScopeError(f"the model has no camera '{name}'")
        self.camera.type = int(mujoco.mjtCamera.mjCAMERA_FIXED)
        self.camera.fixedcamid = cam

    def _free_from_fixed(self) -> None:
        """Turn a look through a scene camera into a free camera at its place and heading
        (aimed as far as the task's centre), so a drag starts where the user was."""
        cam = int(self.camera.fixedcamid)
        lookat = self.camera.lookat.copy()
        self.camera.type = int(mujoco.mjtCamera.mjCAMERA_FREE)
        pos = self.data.cam_xpos[cam]
        forward = -self.data.cam_xmat[cam].reshape(3, 3)[:, 2]
        dist = max(0.1, float(np.dot(lookat - pos, forward)))
        self.camera.lookat[:] = pos + forward * dist
        self.camera.distance = dist
        self.camera.azimuth = float(np.degrees(np.arctan2(forward[1], forward[0])))
        self.camera.elevation = float(np.degrees(np.arcsin(np.clip(forward[2], -1, 1))))

    def reset_view(self) -> None:
        """The task in view: MuJoCo's default free camera, aimed at the bounds of what the
        scene calls action-critical or support (robot, table, objects) rather than the
        whole model (floors and parked props make that a speck in a field), from the side
        the scene's first camera looks from (walls stand on the others)."""
        mujoco.mjv_defaultFreeCamera(self.model, self.camera)
        self.camera.type = int(mujoco.mjtCamera.mjCAMERA_FREE)
        cam = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, self.sim.home_camera)
        if cam >= 0:
            forward = -self.data.cam_xmat[cam].reshape(3, 3)[:, 2]
            self.camera.azimuth = float(np.degrees(np.arctan2(forward[1], forward[0])))
        task = np.isin(self.sim.geom_labels, (ACTION_CRITICAL, SUPPORT))
        if task.shape != (self.model.ngeom,) or not task.any():
            return
        radius = self.model.geom_rbound[task][:, None]
        centres = self.data.geom_xpos[task]
        lo, hi = (centres - radius).min(0), (centres + radius).max(0)
        self.camera.lookat[:] = (lo + hi) / 2
        self.camera.distance = float(np.linalg.norm(hi - lo)) * 0.6
        self.camera.elevation = DEFAULT_ELEVATION

    def move(self, action: int, dx: float, dy: float) -> None:
        """Move by a mouse delta in pixels (``ORBIT``, ``PAN`` or ``ZOOM``), scaled by the
        view's height as MuJoCo's viewer does."""
        h = self._size[0]
        if self.camera.type == mujoco.mjtCamera.mjCAMERA_FIXED:
            self._free_from_fixed()
        self._update()  # mjv_moveCamera reads the scene's frustum
        mujoco.mjv_moveCamera(self.model, int(action), dx / h, dy / h,
                              self._renderer.scene, self.camera)

    def zoom(self, steps: float) -> None:
        """Wheel notches (positive, away from the user: closer), ``mjMOUSE_ZOOM`` by 0.05
        of the view's height each, as MuJoCo's viewer scrolls (its sign flipped to the
        usual wheel direction)."""
        self.move(ZOOM, 0.0, 0.05 * steps * self._size[0])

    # drawing ----------------------------------------------------------------------------
    def _update(self) -> None:
        r = self._renderer
        r.update_scene(self.data, camera=self.camera, scene_option=self.option)
        for flag in self.sim.flags_off:
            r.scene.flags[int(flag)] = 0
        scn = r.scene
        if self.show_regions:
            labels = self.sim.geom_labels
            for i in range(scn.ngeom):
                g = scn.geoms[i]
                if g.objtype == _GEOM and 0 <= g.objid < len(labels):
                    label = int(labels[g.objid])
                    rgb = (np.array(LABEL_COLORS[label]) / 255.0 if label != UNLABELED
                           else UNLABELED_RGBA[:3])
                    g.rgba[:3] = rgb
                    g.matid = -1
        for points, rgba in self.paths:
            self._add_path(scn, points, np.array(rgba, np.float32))

    @staticmethod
    def _add_path(scn: mujoco.MjvScene, points: np.ndarray, rgba: np.ndarray) -> None:
        """Capsules between consecutive points and a sphere at each, as user geoms."""
        eye = np.eye(3).reshape(-1)
        for i, p in enumerate(points):
            if scn.ngeom >= scn.maxgeom:
                return
            g = scn.geoms[scn.ngeom]
            mujoco.mjv_initGeom(g, int(mujoco.mjtGeom.mjGEOM_SPHERE),
                                np.full(3, PATH_WIDTH * 1.8), p, eye, rgba)
            scn.ngeom += 1
            if i + 1 < len(points) and scn.ngeom < scn.maxgeom:
                g = scn.geoms[scn.ngeom]
                mujoco.mjv_initGeom(g, int(mujoco.mjtGeom.mjGEOM_CAPSULE), np.zeros(3),
                                    np.zeros(3), eye, rgba)
                mujoco.mjv_connector(g, int(mujoco.mjtGeom.mjGEOM_CAPSULE), PATH_WIDTH,
                                     p, points[i + 1])
                scn.ngeom += 1

    def render(self) -> np.ndarray:
        """(H, W, 3) uint8 at the view's resolution."""
        self._update()
        return self._renderer.render()

    def select(self, x: float, y: float) -> Selection | None:
        """The body under pixel (x right, y down) of the last render's size, None for the
        background; named by the scene's region and object rule."""
        h, w = self._size
        self._update()
        point = np.zeros(3)
        geom, flex, skin = (np.array([-1], np.int32) for _ in range(3))
        body = mujoco.mjv_select(self.model, self.data, self.option, w / h, (x + 0.5) / w,
                                 1.0 - (y + 0.5) / h, self._renderer.scene, point, geom,
                                 flex, skin)
        if body < 0:
            return None
        gid = int(geom[0])
        label, obj = UNLABELED, 0
        if 0 <= gid < len(self.sim.geom_labels):
            label, obj = int(self.sim.geom_labels[gid]), int(self.sim.geom_objects[gid])
        name = mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_BODY, body) or f"body{body}"
        return Selection(name, int(body), gid, label, obj, self.sim.object_names.get(obj, ""),
                         (float(point[0]), float(point[1]), float(point[2])))

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> FreeCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
