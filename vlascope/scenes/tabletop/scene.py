"""The built-in tabletop scene provider."""

from __future__ import annotations

import atexit
import copy
import hashlib
import json
import weakref
from collections.abc import Sequence
from pathlib import Path

import mujoco
import numpy as np

from vlascope.core.errors import ObservationError, VLAScopeError
from vlascope.core.policy import Observation
from vlascope.core.projection import mujoco_camera_matrix
from vlascope.core.regions import ACTION_CRITICAL, NUISANCE, SUPPORT
from vlascope.core.scene import Scene, SceneFrame, SimulatorHandles, TaskSpec, VariantSpec

from . import model as M
from .tasks import TASKS, TabletopTask
from .variants import Variant, VariantSample, load_variants, sample

MAX_DELTA = 0.025  # metres the hand target moves per unit action per step
N_SUBSTEPS = 50  # 0.1 s of physics per step: a 10 Hz policy
SETTLE_SUBSTEPS = 150
_GEOM_TYPE = int(mujoco.mjtObj.mjOBJ_GEOM)
OBJECTS = ("cube_a", "cube_b", "plate", "zone")
DISTRACTOR_AREA = ((-0.3, 0.3), (-0.28, 0.28))  # the table is 0.84 x 0.68 m
# Renderers left open at interpreter exit raise EGL errors from __del__ once MuJoCo's own
# atexit hook has terminated the EGL display. atexit runs hooks last-in first-out, so ours
# is registered after the first renderer exists (after MuJoCo's) and closes them first.
_LIVE_SCENES: weakref.WeakSet = weakref.WeakSet()
_EXIT_HOOK: list[bool] = []


def _close_live_scenes() -> None:
    for scene in list(_LIVE_SCENES):
        scene.close()


class TabletopScene(Scene):
    """Gantry robot, two cubes, a plate, a target zone and distractors; variants from JSON.

    Action (4,): hand displacement (x, y, z) in [-1, 1] x ``MAX_DELTA`` metres, then the
    gripper: > 0 closes, <= 0 opens. State (4,): hand x, y, z and the finger gap (metres).
    """

    name = "tabletop"
    cameras = ("front", "wrist")
    action_dim = 4
    state_dim = 4
    expert_policy = "expert"

    def __init__(self, image_size: tuple[int, int] = (224, 224),
                 variants_file: str | Path | None = None):
        self.default_image_size = tuple(image_size)
        self.model = M.build_model()
        self.data = mujoco.MjData(self.model)
        self._variants = load_variants(variants_file)
        self._tasks = {t.name: t for t in TASKS}
        m = self.model
        self._geom = {mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, i): i for i in range(m.ngeom)}
        self._body = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, n)
        self._qadr = {n: m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n)]
                      for n in ("slide_x", "slide_y", "slide_z", "finger_l", "finger_r")}
        self._key_light = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_LIGHT, "key")
        self._front_cam = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, "front")
        self._pristine = {k: getattr(m, k).copy() for k in
                          ("light_diffuse", "light_pos", "cam_pos", "cam_quat", "mat_rgba",
                           "geom_rgba", "geom_matid", "geom_pos")}
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._object_ids, self._object_names = self._object_lut()
        self._task: TabletopTask | None = None
        self._instruction = ""
        self._label_lut: np.ndarray | None = None
        self.current_task = ""
        self.current_variant = ""
        self.steps_taken = 0
        _LIVE_SCENES.add(self)

    # Contract ---------------------------------------------------------------------------
    def tasks(self) -> list[TaskSpec]:
        colors = {"cube_a": "red", "cube_b": "blue"}
        return [TaskSpec(t.name, t.instruction(colors), t.max_steps,
                         f"{t.kind}: {t.obj}" + (f" -> {t.target}" if t.target else ""),
                         target_object=t.obj)
                for t in TASKS]

    def variants(self) -> list[VariantSpec]:
        return [VariantSpec(v.name, v.description) for v in self._variants.values()]

    def instruction(self) -> str:
        return self._instruction

    def reset(self, task: str, seed: int, variant: str | None = None) -> None:
        spec = self.task(task)  # raises UnknownNameError
        vspec = self.variant(variant)
        t, v = self._tasks[spec.name], self._variants[vspec.name]
        rng = np.random.default_rng([int(seed), 0x7AB1E])
        s = sample(v, rng)
        self._apply_variant(t, v, s)
        self._task, self.current_task, self.current_variant = t, t.name, v.name
        colors = {"cube_a": s.cube_colors[0], "cube_b": s.cube_colors[1]}
        if s.drop_colors:
            colors = {"cube_a": "", "cube_b": ""}
        self._instruction = " ".join(t.instruction(colors).split())
        self._label_lut = self._region_lut(t)

        d = self.data
        mujoco.mj_resetData(self.model, d)
        placed = self._place_objects(v, s, rng)
        if v.cue is not None:  # the pad lies under the cube it points at
            cue_cube = t.obj if v.cue == "target" else t.other
            self.model.geom_pos[self._geom["cue"]] = [*placed[cue_cube], M.CUE_Z]
        hand = np.array([0.12 + rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03), 0.28])
        for axis, name in enumerate(("slide_x", "slide_y", "slide_z")):
            d.qpos[self._qadr[name]] = hand[axis]
        d.qpos[self._qadr["finger_l"]] = d.qpos[self._qadr["finger_r"]] = M.FINGER_OPEN
        d.ctrl[:] = [*hand, M.FINGER_OPEN, M.FINGER_OPEN]
        mujoco.mj_forward(self.model, d)
        mujoco.mj_step(self.model, d, nstep=SETTLE_SUBSTEPS)
        self.steps_taken = 0

    def step(self, action: np.ndarray) -> None:
        if self._task is None:
            raise VLAScopeError("step() before reset()")
        self._act(self.data, self.check_action(action))
        self.steps_taken += 1

    def _act(self, data: mujoco.MjData, a: np.ndarray) -> None:
        """One step of physics: the hand target moves from where the hand is."""
        q = data.qpos
        hand = np.array([q[self._qadr[n]] for n in ("slide_x", "slide_y", "slide_z")])
        lo, hi = self._hand_bounds()
        finger = 0.0 if a[3] > 0 else M.FINGER_OPEN
        data.ctrl[:] = [*np.clip(hand + a[:3] * MAX_DELTA, lo, hi), finger, finger]
        mujoco.mj_step(self.model, data, nstep=N_SUBSTEPS)

    @property
    def unstable(self) -> bool:
        """MuJoCo hit a diverging acceleration this episode (and reset its state): rare, when
        a thin object is pinched; collectors drop such episodes."""
        return self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number > 0

    def observe(self, cameras: Sequence[str] | None = None,
                size: tuple[int, int] | None = None, regions: bool = False) -> SceneFrame:
        if self._task is None:
            raise VLAScopeError("observe() before reset()")
        cams = self.check_cameras(cameras)
        size = tuple(size or self.default_image_size)
        images: dict[str, np.ndarray] = {}
        labels: dict[str, np.ndarray] | None = {} if regions else None
        segments: dict[str, np.ndarray] | None = {} if regions else None
        if cams:
            renderer = self._renderer(size)
            for cam in cams:
                renderer.update_scene(self.data, camera=cam)
                images[cam] = renderer.render()
                if labels is not None:
                    renderer.enable_segmentation_rendering()
                    try:
                        seg = renderer.render()
                    finally:
                        renderer.disable_segmentation_rendering()
                    labels[cam] = self._labels_from_segmentation(seg)
                    segments[cam] = self._objects_from_segmentation(seg)
        obs = Observation(images=images, state=self.state(), instruction=self._instruction,
                          extras={"privileged": self.privileged()})
        return SceneFrame(observation=obs, regions=labels, segments=segments)

    def success(self) -> bool:
        t = self._task
        if t is None:
            return False
        p = self.object_position(t.obj)
        released = self.finger_gap() > 2 * M.CUBE_HALF + 0.01
        at_rest = np.linalg.norm(self._object_velocity(t.obj)) < 0.05
        if t.kind == "pick":
            grasp_point = self.hand_position() - [0, 0, M.GRASP_OFFSET]
            return bool(p[2] > M.CUBE_HALF + 0.06 and np.linalg.norm(p - grasp_point) < 0.03)
        if t.kind == "place":
            q = self.object_position(t.target)
            on_top = abs(p[2] - (M.CUBE_HALF + M.SURFACE_Z[t.target])) < 0.01
            if t.target == "plate":
                inside = np.linalg.norm(p[:2] - q[:2]) < M.PLATE_RADIUS - 0.015
            else:
                inside = np.max(np.abs(p[:2] - q[:2])) < M.ZONE_HALF - 0.01
            return bool(on_top and inside and released and at_rest)
        q = self.object_position(t.target)
        on_top = abs(p[2] - q[2] - 2 * M.CUBE_HALF) < 0.01
        aligned = np.linalg.norm(p[:2] - q[:2]) < 0.02
        base_on_table = abs(q[2] - M.CUBE_HALF) < 0.01
        return bool(on_top and aligned and base_on_table and released and at_rest)

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    # State ------------------------------------------------------------------------------
    def hand_position(self) -> np.ndarray:
        q = self.data.qpos
        return np.array([q[self._qadr["slide_x"]], q[self._qadr["slide_y"]],
                         q[self._qadr["slide_z"]]])

    def hand_position_of(self, state: np.ndarray) -> np.ndarray | None:
        return np.asarray(state, np.float64)[:3].copy()

    def hand_path(self, state: np.ndarray, chunk: np.ndarray) -> np.ndarray | None:
        """From the current state: the chunk executed on a copy of the simulator (the hand
        lags its target, ~3 mm a step at speed, and stops at what it touches: only physics
        says where it goes; ~20 ms for 8 actions). From another state: the targets alone,
        each action moving the hand ``MAX_DELTA`` per unit inside the gantry's range."""
        actions = np.asarray(chunk, np.float64).reshape(-1, self.action_dim)
        actions = np.clip(np.nan_to_num(actions), -1.0, 1.0)
        start = np.asarray(state, np.float64)[:3]
        if self._task is not None and np.allclose(start, self.hand_position(), atol=1e-5):
            data = copy.copy(self.data)
            out = [self.hand_position()]
            for a in actions:
                self._act(data, a)
                out.append([data.qpos[self._qadr[n]] for n in ("slide_x", "slide_y",
                                                                 "slide_z")])
            return np.array(out)
        lo, hi = self._hand_bounds()
        pos, out = start.copy(), [start.copy()]
        for a in actions:
            pos = np.clip(pos + a[:3] * MAX_DELTA, lo, hi)
            out.append(pos.copy())
        return np.array(out)

    def camera_projection(self, size: tuple[int, int]) -> dict[str, np.ndarray] | None:
        return {cam: mujoco_camera_matrix(
            self.model, self.data,
            mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, cam), size)
            for cam in self.cameras}

    @staticmethod
    def _hand_bounds() -> tuple[np.ndarray, np.ndarray]:
        return (np.array([-M.HAND_XY_RANGE, -M.HAND_XY_RANGE, M.HAND_Z_RANGE[0]]),
                np.array([M.HAND_XY_RANGE, M.HAND_XY_RANGE, M.HAND_Z_RANGE[1]]))

    def finger_gap(self) -> float:
        q = self.data.qpos
        return float(q[self._qadr["finger_l"]] + q[self._qadr["finger_r"]])

    def object_positions(self) -> dict[str, np.ndarray]:
        return {n: self.object_position(n) for n in ("cube_a", "cube_b")}

    def object_position(self, name: str) -> np.ndarray:
        return self.data.xpos[self._body(name)].copy()

    def _object_velocity(self, name: str) -> np.ndarray:
        return self.data.cvel[self._body(name)][3:].copy()

    def state(self) -> np.ndarray:
        return np.append(self.hand_position(), self.finger_gap()).astype(np.float32)

    def fingerprint(self, variant: str) -> str:
        """The MJCF, its assets and the variant's definition."""
        from dataclasses import asdict

        xml, assets = M.compiled_spec()
        h = hashlib.sha256(xml.encode())
        for name, data in assets:
            h.update(name.encode() + data)
        spec = load_variants().get(variant)
        h.update(json.dumps(asdict(spec) if spec else variant, sort_keys=True,
                            default=list).encode())
        return h.hexdigest()[:16]

    def privileged(self) -> dict:
        """Simulator truth for the scripted expert; learned policies must not read it."""
        t = self._task
        return {
            "scene": self.name, "task_kind": t.kind, "object": t.obj, "target": t.target,
            "hand": self.hand_position(), "finger_gap": self.finger_gap(),
            "positions": {n: self.object_position(n) for n in OBJECTS},
        }

    # Internals --------------------------------------------------------------------------
    def _renderer(self, size: tuple[int, int]) -> mujoco.Renderer:
        if size not in self._renderers:
            h, w = size
            if not (16 <= h <= 640 and 16 <= w <= 640):
                raise ObservationError(f"image size {h}x{w} outside 16..640")
            self._renderers[size] = mujoco.Renderer(self.model, height=h, width=w)
            if not _EXIT_HOOK:
                atexit.register(_close_live_scenes)
                _EXIT_HOOK.append(True)
        return self._renderers[size]

    def _region_lut(self, t: TabletopTask) -> np.ndarray:
        """geom id + 1 -> label (index 0 is the background), decided by the geom's body."""
        m = self.model
        lut = np.full(m.ngeom + 1, NUISANCE, dtype=np.uint8)
        support = {"table", *t.named_objects}
        for gid in range(m.ngeom):
            body = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, int(m.geom_bodyid[gid]))
            if body.startswith("robot_"):
                lut[gid + 1] = ACTION_CRITICAL
            elif body in support:
                lut[gid + 1] = SUPPORT
        return lut

    def segment_names(self) -> dict[int, str]:
        return {i: n for i, n in enumerate(self._object_names) if i}

    def simulator(self) -> SimulatorHandles | None:
        return SimulatorHandles(self.model, self.data) if self._task is not None else None

    def classify_segmentation(self, seg: np.ndarray
                              ) -> tuple[np.ndarray, np.ndarray] | None:
        if self._label_lut is None:
            return None
        return self._labels_from_segmentation(seg), self._objects_from_segmentation(seg)

    def _object_lut(self) -> tuple[np.ndarray, list[str]]:
        """geom id + 1 -> object id. An object is a whole body tree (the robot's gantry, a
        cube with its faces); each geom of the world body (walls, floor, poster, cue pad) is
        an object of its own. 0 is the background."""
        m = self.model
        names, ids = [""], {}
        lut = np.zeros(m.ngeom + 1, dtype=np.int16)
        for gid in range(m.ngeom):
            root = int(m.body_rootid[m.geom_bodyid[gid]])
            key = ("geom", gid) if root == 0 else ("body", root)
            if key not in ids:
                ids[key] = len(names)
                kind = mujoco.mjtObj.mjOBJ_GEOM if root == 0 else mujoco.mjtObj.mjOBJ_BODY
                names.append(mujoco.mj_id2name(m, kind, key[1]) or f"{key[0]}{key[1]}")
            lut[gid + 1] = ids[key]
        return lut, names

    def _objects_from_segmentation(self, seg: np.ndarray) -> np.ndarray:
        ids = np.where(seg[..., 1] == _GEOM_TYPE, seg[..., 0] + 1, 0)
        return self._object_ids[ids]

    def _labels_from_segmentation(self, seg: np.ndarray) -> np.ndarray:
        # Compare with a plain int: numpy compares element-wise in Python with a pybind enum.
        ids = np.where(seg[..., 1] == _GEOM_TYPE, seg[..., 0] + 1, 0)
        return self._label_lut[ids]

    def _apply_variant(self, t: TabletopTask, v: Variant, s: VariantSample) -> None:
        m, p = self.model, self._pristine
        for key, arr in p.items():
            getattr(m, key)[:] = arr
        m.light_diffuse[self._key_light] = s.light_diffuse
        m.light_pos[self._key_light] = p["light_pos"][self._key_light] + s.light_offset
        m.cam_pos[self._front_cam] = p["cam_pos"][self._front_cam] + s.camera_dpos
        dq = np.zeros(4)
        angle = float(np.linalg.norm(s.camera_drot))
        if angle > 0:
            mujoco.mju_axisAngle2Quat(dq, s.camera_drot / angle, angle)
            q = np.zeros(4)
            mujoco.mju_mulQuat(q, p["cam_quat"][self._front_cam], dq)
            m.cam_quat[self._front_cam] = q
        mat = lambda n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_MATERIAL, n)  # noqa: E731
        m.geom_matid[self._geom["floor"]] = mat(f"floor_{s.floor}")
        wall_mat = mat(f"wall_{s.wall}")
        m.mat_rgba[wall_mat, :3] = s.wall_tint
        for wall in ("wall_back", "wall_left", "wall_right"):
            m.geom_matid[self._geom[wall]] = wall_mat
        colors = dict(zip(("cube_a", "cube_b"), s.cube_colors, strict=True))
        for cube, color in colors.items():
            m.geom_rgba[self._geom[cube], :3] = M.COLORS[color]

    def _place_objects(self, v: Variant, s: VariantSample,
                       rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Place the task objects and distractors; returns the xy of everything on the table."""
        radii = {"cube_a": 0.065, "cube_b": 0.065, "plate": M.PLATE_RADIUS + 0.01,
                 "zone": M.ZONE_HALF * 1.3}
        placed: dict[str, np.ndarray] = {}
        for name, r in radii.items():
            xy = self._free_spot(rng, placed, radii, r, tries=5000)
            if xy is None:
                raise VLAScopeError("could not place the task objects without overlap")
            placed[name] = xy
        chosen = rng.choice(len(M.DISTRACTORS), size=s.n_distractors, replace=False)
        for i, dist in enumerate(M.DISTRACTORS):
            body = f"distractor_{dist.name}"
            xy = None
            if i in chosen:
                near = (placed[str(rng.choice(OBJECTS))]
                        if v.distractor_placement == "near_objects" else None)
                xy = self._free_spot(rng, placed, radii, 0.055, near=near, area=DISTRACTOR_AREA)
            if xy is None:  # left out by the variant, or no room left on the table
                pos = [M.PARKING[0], M.PARKING[1] + 0.3 * i, dist.half_height + 0.002 - 0.75]
            else:
                placed[body], radii[body] = xy, 0.055
                pos = [*xy, dist.half_height + 0.002]
            self._set_free_body(body, pos, yaw=rng.uniform(-np.pi, np.pi))
        for cube in ("cube_a", "cube_b"):
            self._set_free_body(cube, [*placed[cube], M.CUBE_HALF + 0.001],
                                yaw=rng.uniform(-0.2, 0.2))
        for name, z in (("plate", M.PLATE_HALF_HEIGHT), ("zone", 0.0006)):
            self.data.mocap_pos[self.model.body_mocapid[self._body(name)]] = [*placed[name], z]
        return placed

    @staticmethod
    def _free_spot(rng: np.random.Generator, placed: dict[str, np.ndarray],
                   radii: dict[str, float], r: float, near: np.ndarray | None = None,
                   area: tuple[tuple[float, float], tuple[float, float]] | None = None,
                   tries: int = 500) -> np.ndarray | None:
        """A spot at least ``r`` + their radius away from everything placed; None if none."""
        (x0, x1), (y0, y1) = area or (M.WORKSPACE_X, M.WORKSPACE_Y)
        for _ in range(tries):
            if near is not None:
                ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.12, 0.18)
                xy = near + dist * np.array([np.cos(ang), np.sin(ang)])
                if not (x0 < xy[0] < x1 and y0 < xy[1] < y1):
                    continue
            else:
                xy = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
            if all(np.linalg.norm(xy - p) > r + radii[n] for n, p in placed.items()):
                return xy
        return None

    def _set_free_body(self, body: str, pos: Sequence[float], yaw: float) -> None:
        jid = self.model.body_jntadr[self._body(body)]
        adr = self.model.jnt_qposadr[jid]
        self.data.qpos[adr:adr + 3] = pos
        self.data.qpos[adr + 3:adr + 7] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
