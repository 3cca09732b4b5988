"""MetaWorld as a VLAScope scene: the 50 tasks of MetaWorld v3 (groups ``mt10`` and ``mt50``;
MT1 is any one task), seeded resets from MetaWorld's own object and goal ranges, its actions,
its success, rendered by MuJoCo with the three-class region map from segmentation.

Action space (4 numbers in [-1, 1], MetaWorld's documented ``Box(-1, 1, (4,))``): the hand's
mocap target moves by dx, dy, dz (times 1/100 m), and the gripper effort (-1 open, +1 close).
The state is what SmolVLA's MetaWorld setup reads (LeRobot's ``agent_pos``): the hand's
position (3) and the gripper opening (1).

Episodes: the seed draws the object and goal positions from MetaWorld's ranges (its
``seeded_rand_vec`` mode), so every seed is a new episode of the same distribution MetaWorld
samples its MT1 / MT10 tasks from; the same (task, seed) is the same episode. The
environment is fully observable (goal in the 39-number observation, as in MetaWorld's MT
benchmarks) so the scripted experts work; policies see only images, the instruction and the
4-number state.

Images: the corner cameras of MetaWorld's XML look at the table upside down; they are turned
180 degrees here, so every camera is rendered upright. ``corner2`` is moved to where
MetaWorld's README and LeRobot put it (closer, the table fills the view). Shadows,
reflections and multisampling are off: ~5x faster on a CPU renderer at no loss of content.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Sequence
from functools import lru_cache

os.environ.setdefault("MUJOCO_GL", "egl")  # before MuJoCo picks a GL backend

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from vlascope.core.errors import PluginError, UnknownNameError, VLAScopeError
from vlascope.core.policy import Observation
from vlascope.core.projection import mujoco_camera_matrix, rotate_half_turn
from vlascope.core.regions import ACTION_CRITICAL, NUISANCE, SUPPORT
from vlascope.core.scene import Scene, SceneFrame, SimulatorHandles, TaskSpec, VariantSpec
from vlascope.scenes.rendering import FAST_OFF, SceneRenderer

from .tasks import GROUPS, INSTRUCTIONS, MT50

ALL_CAMERAS = ("corner2", "corner", "corner3", "corner4", "topview", "behindGripper",
               "gripperPOV")
DEFAULT_CAMERAS = ("corner2", "gripperPOV")  # a view of the table and the wrist's
UPSIDE_DOWN = frozenset({"corner", "corner2", "corner3", "corner4"})
CORNER2_POS = (0.75, 0.075, 0.7)
# The slowest scripted expert needed 248 steps (peg-insert-side, seeds 0-29); MetaWorld's own
# limit is 500, which doubles the cost of every failed evaluation episode for nothing.
MAX_STEPS = 300
ROBOT_ROOT = "base"  # the Sawyer's body tree; its pedestal included
_GEOM, _SITE = int(mujoco.mjtObj.mjOBJ_GEOM), int(mujoco.mjtObj.mjOBJ_SITE)


@lru_cache(maxsize=1)
def _metaworld():
    """MetaWorld's environment classes and scripted policies, imported once."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gymnasium's deprecation chatter
            from metaworld.env_dict import ALL_V3_ENVIRONMENTS
            from metaworld.policies import ENV_POLICY_MAP
    except ImportError as e:
        raise PluginError(f"MetaWorld is not installed ({e}); install the plugin with "
                          "`bash scripts/setup.sh metaworld`") from e
    return ALL_V3_ENVIRONMENTS, ENV_POLICY_MAP


def make_env(task: str):
    """A MetaWorld v3 environment for ``task`` that draws a new object/goal layout from its
    seed at every reset, fully observable, without a renderer of its own."""
    envs, _ = _metaworld()
    if task not in envs:
        raise UnknownNameError("MetaWorld task", task, list(MT50))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = envs[task]()
    # What set_task() would do, minus freezing one layout: MetaWorld's MT benchmarks are
    # fully observable, and seeded_rand_vec draws layouts from env.np_random.
    env._partially_observable = False
    with contextlib.suppress(AttributeError):  # a cached observation space of the other mode
        del env.sawyer_observation_space
    env._set_task_called = True
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True
    cam = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_CAMERA, "corner2")
    env.model.cam_pos[cam] = CORNER2_POS
    env.model.vis.quality.offsamples = 0
    return env


class MetaWorldScene(Scene):
    """Tasks are MetaWorld's environment names (``pick-place-v3``); ``mt10`` and ``mt50``
    name the benchmark groups wherever a command takes a task list."""

    name = "metaworld"
    attribution = (
        "Meta-World (Yu et al., 2019; maintained by the Farama Foundation, "
        "https://github.com/Farama-Foundation/Metaworld), MIT licence: tasks, scene assets, "
        "Sawyer model, success criteria and scripted expert policies.")
    action_dim = 4
    default_image_size = (128, 128)
    expert_policy = "metaworld-expert"

    def __init__(self, image_size: tuple[int, int] = (128, 128),
                 cameras: Sequence[str] = DEFAULT_CAMERAS, fast: bool = True):
        for cam in cameras:
            if cam not in ALL_CAMERAS:
                raise UnknownNameError("MetaWorld camera", cam, ALL_CAMERAS)
        self.cameras = tuple(cameras)
        self.default_image_size = tuple(image_size)
        self.fast = fast
        self._env = None
        self._env_task = ""
        self._renderer: SceneRenderer | None = None
        self._obs = np.zeros(39)
        self._success = False
        self._label_lut: dict[int, np.ndarray] = {}
        self._object_lut: dict[int, np.ndarray] = {}
        self._object_names: list[str] = [""]
        self.current_task = ""
        self.current_variant = "default"
        self.steps_taken = 0

    # Contract ---------------------------------------------------------------------------
    def tasks(self) -> list[TaskSpec]:
        return [TaskSpec(t, INSTRUCTIONS[t], MAX_STEPS, f"MetaWorld {t}") for t in MT50]

    def task_groups(self) -> dict[str, list[str]]:
        return {name: list(tasks) for name, tasks in GROUPS.items()}

    def variants(self) -> list[VariantSpec]:
        return [VariantSpec("default", "MetaWorld's object and goal ranges; the seed draws "
                                       "one layout")]

    def reset(self, task: str, seed: int, variant: str | None = None) -> None:
        self.variant(variant)
        self.task(task)
        if self._env is None or self._env_task != task:
            self._build(task)
        self._env.seed(int(seed) % 2**32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obs, _info = self._env.reset()
        self._obs, self._success = np.asarray(obs, np.float64), False
        self.current_task, self.current_variant = task, "default"
        self.steps_taken = 0

    def step(self, action: np.ndarray) -> None:
        if self._env is None:
            raise VLAScopeError("step() before reset()")
        if self._env.curr_path_length >= self._env.max_path_length:
            raise VLAScopeError(f"MetaWorld ends an episode after {self._env.max_path_length} "
                                "steps; reset to go on")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obs, _r, _term, _trunc, info = self._env.step(self.check_action(action))
        self._obs = np.asarray(obs, np.float64)
        self._success = bool(info.get("success", False))
        self.steps_taken += 1

    def observe(self, cameras: Sequence[str] | None = None,
                size: tuple[int, int] | None = None, regions: bool = False) -> SceneFrame:
        if self._env is None:
            raise VLAScopeError("observe() before reset()")
        images, labels, segments = self._renderer.cameras(
            self._env.data, self.check_cameras(cameras), size or self.default_image_size,
            classify=self._classify if regions else None, orient=self._upright)
        privileged = {"scene": "metaworld", "task": self.current_task, "obs": self._obs.copy()}
        obs = Observation(images=images, state=self.state(), instruction=self.instruction(),
                          extras={"privileged": privileged})
        return SceneFrame(observation=obs, regions=labels, segments=segments)

    def success(self) -> bool:
        return self._success

    def state(self) -> np.ndarray:
        return self._obs[:4].astype(np.float32)

    def fingerprint(self, variant: str) -> str:
        """This module's source and MetaWorld's version (its XMLs, ranges and experts)."""
        from importlib.metadata import version

        return f"{super().fingerprint(variant)}:metaworld-{version('metaworld')}"

    def object_positions(self) -> dict[str, np.ndarray]:
        return {"object": self._obs[4:7].copy(), "goal": self._obs[36:39].copy()}

    def segment_names(self) -> dict[int, str]:
        return {i: n for i, n in enumerate(self._object_names) if i}

    def simulator(self) -> SimulatorHandles | None:
        if self._env is None:
            return None
        return SimulatorHandles(self._env.model, self._env.data, None,
                                self._renderer.flags_off)

    def classify_segmentation(self, seg: np.ndarray
                              ) -> tuple[np.ndarray, np.ndarray] | None:
        return self._classify(seg) if self._env is not None else None

    # Planned vs executed ----------------------------------------------------------------
    def hand_position_of(self, state: np.ndarray) -> np.ndarray | None:
        return np.asarray(state, np.float64)[:3].copy()  # the hand body (get_endeff_pos)

    def hand_path(self, state: np.ndarray, chunk: np.ndarray) -> np.ndarray | None:
        """From the current state: the chunk executed as ``step`` does it (the mocap moves
        ``action_scale`` per unit, the fingers squeeze) on a copy of MuJoCo's data, where
        the hand then is (it trails the mocap and stops at what it pushes).
        From another state: the mocap's moves alone, added to the hand."""
        actions = np.clip(np.nan_to_num(np.asarray(chunk, np.float64).reshape(-1, 4)), -1, 1)
        start = np.asarray(state, np.float64)[:3]
        env = self._env
        if env is None:
            return None
        if not np.allclose(start, self._obs[:3], atol=1e-5):
            return np.vstack([start, start + np.cumsum(actions[:, :3] * env.action_scale, 0)])
        data = copy.copy(env.data)
        out = [self._obs[:3].copy()]
        for a in actions:
            data.mocap_pos[0] = np.clip(data.mocap_pos[0] + a[:3] * env.action_scale,
                                        env.mocap_low, env.mocap_high)
            data.mocap_quat[0] = (1, 0, 1, 0)
            data.ctrl[:] = (a[3], -a[3])
            mujoco.mj_step(env.model, data, nstep=env.frame_skip)
            mujoco.mj_forward(env.model, data)  # as step's site update does: poses now
            out.append(data.body("hand").xpos.copy())
        return np.array(out)

    def camera_projection(self, size: tuple[int, int]) -> dict[str, np.ndarray] | None:
        """As rendered, corner cameras turned upright (see ``_upright``)."""
        if self._env is None:
            return None
        m, d = self._env.model, self._env.data
        out = {}
        for cam in self.cameras:
            cid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, cam)
            matrix = mujoco_camera_matrix(m, d, cid, size)
            out[cam] = rotate_half_turn(matrix, size) if cam in UPSIDE_DOWN else matrix
        return out

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._env is not None:
            with contextlib.suppress(Exception):
                self._env.close()
            self._env = None
            self._env_task = ""

    # Internals --------------------------------------------------------------------------
    @staticmethod
    def _upright(cam: str, img: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(img[::-1, ::-1]) if cam in UPSIDE_DOWN else img

    def _build(self, task: str) -> None:
        self.close()
        self._env = make_env(task)
        self._env_task = task
        self._renderer = SceneRenderer(self._env.model,
                                       flags_off=FAST_OFF if self.fast else ())
        self._label_lut, self._object_lut, self._object_names = self._luts()

    def _classify(self, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 2) MuJoCo segmentation (object id, object type) -> labels, object ids."""
        ids, types = seg[..., 0], seg[..., 1]
        labels = np.full(ids.shape, NUISANCE, np.uint8)
        objects = np.zeros(ids.shape, np.int16)
        for kind, label_lut in self._label_lut.items():
            mask = types == kind
            labels[mask] = label_lut[ids[mask]]
            objects[mask] = self._object_lut[kind][ids[mask]]
        return labels, objects

    def _luts(self) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], list[str]]:
        """Geom and site id -> region label and object id. The Sawyer (everything under its
        ``base`` body) is action-critical; the table, the task's objects and its goal marker
        are support; the floor and whatever else nuisance. An object is a body tree."""
        m = self._env.model
        body = lambda i: mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, i) or f"body{i}"  # noqa: E731
        names, ids = [""], {}

        def object_id(key: tuple, name: str) -> int:
            if key not in ids:
                ids[key] = len(names)
                names.append(name)
            return ids[key]

        def label(root: str, own: str) -> int:
            if root == ROBOT_ROOT:
                return ACTION_CRITICAL
            if root == "world" and not own.startswith("goal"):
                return NUISANCE  # the floor
            return SUPPORT  # the table, its walls, the task's objects, the goal marker

        labels, objects = {}, {}
        for kind, count, body_of in ((_GEOM, m.ngeom, m.geom_bodyid),
                                     (_SITE, m.nsite, m.site_bodyid)):
            lab, obj = np.full(count, NUISANCE, np.uint8), np.zeros(count, np.int16)
            for i in range(count):
                own = mujoco.mj_id2name(m, kind, i) or f"{'geom' if kind == _GEOM else 'site'}{i}"
                root_id = int(m.body_rootid[body_of[i]])
                root = "world" if root_id == 0 else body(root_id)
                lab[i] = label(root, own)
                key = ("own", kind, i) if root_id == 0 else ("body", root_id)
                obj[i] = object_id(key, own if root_id == 0 else
                                   ("robot" if root == ROBOT_ROOT else root))
            labels[kind], objects[kind] = lab, obj
        return labels, objects, names
