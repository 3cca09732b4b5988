"""The scene contract: tasks with instructions and variants, reset / step / observe, success,
and (where the simulator can) a per-pixel region map per camera."""

from __future__ import annotations

import hashlib
import inspect
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ObservationError, UnknownNameError
from .policy import Observation


@dataclass(frozen=True)
class TaskSpec:
    """A task as the user picks it: a name, the instruction the policy is given, a step limit."""

    name: str
    instruction: str
    max_steps: int
    description: str = ""
    target_object: str = ""  # the object the instruction asks to move ("" if none/unknown)


@dataclass(frozen=True)
class VariantSpec:
    """A named change of the scene's distribution (lighting, textures, distractors, ...)."""

    name: str
    description: str = ""


@dataclass
class SceneFrame:
    """One step as rendered: the policy's observation plus the ground-truth region maps and,
    from scenes that can say, which simulator object each pixel shows (object ids stay the
    same through an episode, so an annotation tied to an object can follow it)."""

    observation: Observation
    regions: dict[str, np.ndarray] | None  # camera -> (H, W) uint8 labels (see regions.py)
    segments: dict[str, np.ndarray] | None = None  # camera -> (H, W) int object ids, 0 = none


@dataclass(frozen=True)
class SimulatorHandles:
    """The MuJoCo simulation behind a scene, for views that draw it their own way (the free
    camera). ``data`` is the live state: read it only on the thread that steps the scene."""

    model: Any  # mujoco.MjModel, as configured by the last reset (a variant's colours)
    data: Any  # mujoco.MjData
    option: Any = None  # mujoco.MjvOption the scene's cameras render with (None: default)
    flags_off: tuple = ()  # mujoco.mjtRndFlag effects the scene turns off (shadows, ...)


class Scene(ABC):
    """Base class of scene providers. Subclasses fill in the abstract methods."""

    name: str = "scene"
    # Credits and licences of third-party code or assets the scene uses (About dialog).
    attribution: str = ""
    cameras: tuple[str, ...] = ()
    action_dim: int = 0
    default_image_size: tuple[int, int] = (224, 224)
    # The policy plugin that demonstrates this scene's tasks (what train-reference learns
    # from); "" where there is none.
    expert_policy: str = ""

    @abstractmethod
    def tasks(self) -> list[TaskSpec]:
        """All tasks of this scene."""

    @abstractmethod
    def variants(self) -> list[VariantSpec]:
        """All variants; the first is the default."""

    @abstractmethod
    def reset(self, task: str, seed: int, variant: str | None = None) -> None:
        """Start an episode; the same (task, seed, variant) gives the same episode."""

    @abstractmethod
    def step(self, action: np.ndarray) -> None:
        """Apply one action (shape (action_dim,))."""

    @abstractmethod
    def observe(self, cameras: Sequence[str] | None = None,
                size: tuple[int, int] | None = None, regions: bool = False) -> SceneFrame:
        """Render the current step. ``cameras=()`` renders nothing (state-only policies)."""

    @abstractmethod
    def success(self) -> bool:
        """Whether the current task is solved."""

    def instruction(self) -> str:
        """The instruction of the current episode (variants may change the words)."""
        return self.task(self.current_task).instruction

    current_task: str = ""

    @property
    def unstable(self) -> bool:
        """Whether the simulator went unstable in this episode (its data is unreliable:
        demonstration collectors drop such episodes). Scenes that cannot tell say False."""
        return False

    # The largest display render (pixels on a side) the scene's offscreen buffer allows.
    display_limit: int = 640

    def render_display(self, cameras: Sequence[str], size: tuple[int, int]
                       ) -> dict[str, np.ndarray]:
        """The cameras rendered at the viewer's resolution for people to look at, beside the
        policy's small input. By default the same render at another size; scenes with a
        cheaper or nicer path override it."""
        return self.observe(cameras=cameras, size=size).observation.images

    def task_groups(self) -> dict[str, list[str]]:
        """Named task lists (a benchmark's suites, e.g. MetaWorld's ``mt10``), accepted
        wherever a command takes a task list."""
        return {}

    def resolve_tasks(self, value: str) -> list[str]:
        """A comma list of task and group names, or ``all``, as checked task names in order
        (duplicates dropped), so a typo fails before any work."""
        if value in ("", "all"):
            return [t.name for t in self.tasks()]
        groups = self.task_groups()
        out: list[str] = []
        for item in (v.strip() for v in value.split(",")):
            for name in groups.get(item, [item] if item else []):
                if name not in out:
                    out.append(self.task(name).name)
        return out

    def fingerprint(self, variant: str) -> str:
        """What decides this scene's episodes, hashed: demonstrations cached before a change
        of the scene must not be reused after it. By default the scene's own source file."""
        source = inspect.getsource(sys.modules[type(self).__module__])
        blob = f"{self.name}/{variant}\n{source}".encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def object_positions(self) -> dict[str, np.ndarray]:
        """Positions of the movable task objects (empty if the scene does not say): lets
        experiments tell which object a policy handled."""
        return {}

    def segment_names(self) -> dict[int, str]:
        """Names of the object ids in ``SceneFrame.segments`` (empty: no segments)."""
        return {}

    # The planned-vs-executed path (optional: a scene that cannot say returns None, and the
    # inspector hides the overlay). Positions are world metres, as the projection reads them.
    def hand_position_of(self, state: np.ndarray) -> np.ndarray | None:
        """The hand (end-effector) position (3,) in a recorded state: the executed path."""
        return None

    def hand_path(self, state: np.ndarray, chunk: np.ndarray) -> np.ndarray | None:
        """The positions (H + 1, 3) the hand would visit executing ``chunk`` (H, action_dim)
        open loop from ``state`` (its start included): the planned path."""
        return None

    def camera_projection(self, size: tuple[int, int]) -> dict[str, np.ndarray] | None:
        """Per camera the (3, 4) matrix taking homogeneous world points to homogeneous
        pixels (u right, v down) of the image ``observe`` renders now at ``size`` = (H, W)
        (a moving camera's changes every step); see ``core/projection.py``."""
        return None

    # The simulator behind the scene (optional: the free camera looks around in it and
    # re-renders recorded steps; a scene that returns None says it cannot).
    def simulator(self) -> SimulatorHandles | None:
        """The MuJoCo model and live data after the last reset, None where the scene is not
        a MuJoCo simulation it can hand out (the free camera then says so)."""
        return None

    def sim_state(self) -> np.ndarray | None:
        """The simulator's full state now, a 1-D float64 vector that restores every step
        exactly (``core/free_camera.py``: ``mj_getState`` with ``STATE_SPEC``); None where
        the scene cannot restore a state. Recorded per step as ``/steps/sim_state``."""
        handles = self.simulator()
        if handles is None:
            return None
        from .free_camera import get_state  # MuJoCo only for scenes that have it

        return get_state(handles.model, handles.data)

    def classify_segmentation(self, seg: np.ndarray
                              ) -> tuple[np.ndarray, np.ndarray] | None:
        """MuJoCo segmentation (..., 2) (object id, object type) -> region labels and the
        object ids of ``segment_names``, the scene's own rule (what ``observe(regions=True)``
        gives); None where the scene has none."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most scenes hold nothing
        """Release renderers and simulator resources."""

    # Helpers shared by every scene -----------------------------------------------------
    def task(self, name: str) -> TaskSpec:
        for spec in self.tasks():
            if spec.name == name:
                return spec
        raise UnknownNameError("task", name, [t.name for t in self.tasks()])

    def variant(self, name: str | None) -> VariantSpec:
        specs = self.variants()
        if name is None:
            return specs[0]
        for spec in specs:
            if spec.name == name:
                return spec
        raise UnknownNameError("variant", name, [v.name for v in specs])

    def check_cameras(self, cameras: Sequence[str] | None) -> tuple[str, ...]:
        if cameras is None:
            return tuple(self.cameras)
        for cam in cameras:
            if cam not in self.cameras:
                raise UnknownNameError("camera", cam, self.cameras)
        return tuple(cameras)

    def check_action(self, action: np.ndarray) -> np.ndarray:
        """One action as ``action_dim`` finite numbers, clipped to [-1, 1]."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_dim,) or not np.all(np.isfinite(a)):
            raise ObservationError(f"{self.name} action must be {self.action_dim} finite "
                                   f"numbers, got shape {np.shape(action)}")
        return np.clip(a, -1.0, 1.0)

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
