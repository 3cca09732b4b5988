"""A rollout one step at a time: the CLI loops over it, the inspector steps it from a worker
so it can show every frame, pause, scrub back, and stop with the recording kept."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .capture import ActivationCapture
from .display import display_size
from .episode import SCHEMA, EpisodeWriter
from .errors import ObservationError, PolicyConnectionLost, VLAScopeError
from .interventions import Intervention, Prompt, bind, from_dict
from .policy import Observation, Policy, check_action_chunks, policy_info
from .scene import Scene

DEFAULT_DISPLAY = 480  # side of a recorded display render when no viewer asked a size


@dataclass
class StepRecord:
    """One executed step: what the policy saw and what it did."""

    t: int
    observation: Observation  # images of every recorded camera, at the policy's size
    regions: dict[str, np.ndarray] | None
    action: np.ndarray  # (action_dim,)
    action_chunk: np.ndarray  # (horizon, action_dim)
    chunk_index: int
    success: bool
    segments: dict[str, np.ndarray] | None = None  # object ids, from scenes that give them
    display: dict[str, np.ndarray] | None = None  # the viewer's render, when one was asked for
    # The planned-vs-executed path, from scenes that can say (see Scene.hand_path):
    hand: np.ndarray | None = None  # (3,) hand position when observed
    planned_hand: np.ndarray | None = None  # (H + 1, 3) the executed chunk's planned path
    camera_matrices: dict[str, np.ndarray] | None = None  # camera -> (3, 4) at image size
    # The simulator's full state when observed (Scene.sim_state): any step re-renders.
    sim_state: np.ndarray | None = None


def episode_metadata(scene: Scene, policy: Any, task: str, variant: str, seed: int,
                     policy_name: str, interventions: list[dict]) -> dict[str, Any]:
    """Everything needed to re-run an episode."""
    sim_state = {}
    if scene.simulator() is not None:  # after reset: /steps/sim_state is recorded
        from .free_camera import state_metadata

        sim_state = {"sim_state": state_metadata()}
    return {**sim_state,
        "policy": {**policy_info(policy, policy_name), "name": policy_name},
        "scene": scene.name, "task": task, "variant": variant, "seed": int(seed),
        "target_object": scene.task(task).target_object, "instruction": scene.instruction(),
        "cameras": list(scene.cameras),
        "action_dim": scene.action_dim, "interventions": list(interventions),
        "segment_names": {str(k): v for k, v in scene.segment_names().items()},
        "vlascope_version": __version__, "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


class LiveRollout:
    """Reset the scene and the policy, then ``step()`` until ``done``; ``close()`` publishes
    the recording atomically (also after a stop midway), ``discard()`` drops it.

    A step whose policy lost its server (``PolicyConnectionLost``) raises, and ``ended``
    keeps the reason: ``close()`` then publishes the steps done with it in the metadata
    (``ended``), so work a remote policy did before its server died is not lost.

    ``instruction`` replaces the task's instruction for the policy (a counterfactual prompt,
    the same as a ``Prompt`` intervention); ``interventions`` are applied at every step and
    recorded in the metadata; ``capture`` names hook points whose activations are recorded
    per step (``pooling`` "tokens" or "mean").
    Not thread-safe: create and step it on one thread (MuJoCo's GL context is per thread).
    """

    def __init__(self, scene: Scene, policy: Policy, task: str, seed: int,
                 variant: str | None = None, *, max_steps: int | None = None,
                 record_to: str | Path | None = None, policy_name: str = "",
                 image_size: tuple[int, int] | None = None, instruction: str | None = None,
                 render_all: bool = False, interventions: Sequence[Intervention | dict] = (),
                 capture: Sequence[str] = (), pooling: str = "tokens",
                 overwrite: bool = False, record_display: bool = False):
        self.scene, self.policy = scene, policy
        self.task, self.seed = task, int(seed)
        self.variant = scene.variant(variant).name
        self.max_steps = max_steps or scene.task(task).max_steps
        if self.max_steps < 1:
            raise VLAScopeError("a rollout needs at least one step")
        missing = [c for c in getattr(policy, "cameras", None) or () if c not in scene.cameras]
        if missing:
            raise ObservationError(
                f"the policy sees camera(s) {', '.join(missing)}, which the scene "
                f"'{scene.name}' does not have ({', '.join(scene.cameras)}): pick a policy "
                "made for this scene, or load a checkpoint trained on it")
        self._instruction: Prompt | None = None  # the typed instruction, never stopped
        if instruction is not None:
            self._instruction = Prompt(text=instruction)
            interventions = [self._instruction, *interventions]
        self._applied = bind(interventions, policy)
        limit = self._applied.limit()  # an injection source that ends the rollout
        if limit is not None:
            self.max_steps = max(1, min(self.max_steps, limit))
        self._capture = ActivationCapture(policy, capture, pooling) if capture else None
        self._activations: dict[str, np.ndarray] = {}
        if hasattr(policy, "reset"):
            policy.reset()
        scene.reset(task, self.seed, self.variant)
        self._policy_cams = getattr(policy, "cameras", None)
        show = render_all or record_to is not None or self._policy_cams is None
        self.cameras = tuple(scene.cameras) if show else tuple(self._policy_cams)
        self.size = tuple(image_size or getattr(policy, "image_size", None)
                          or scene.default_image_size)
        self._n_exec = max(1, int(getattr(policy, "n_action_steps", 1)))
        self._regions = record_to is not None or render_all
        self.interventions = self._applied.records()
        self.metadata = episode_metadata(scene, policy, task, self.variant, self.seed,
                                         policy_name, self.interventions)
        if self._capture is not None:
            self.metadata["capture"] = self._capture.metadata()
        self._writer = (EpisodeWriter(record_to, self.metadata, overwrite=overwrite)
                        if record_to is not None else None)
        # The viewer's render size, (H, W), set by whoever shows the rollout (None: none);
        # recorded display frames keep the size of the first one (an episode's frames agree).
        self.display_size: tuple[int, int] | None = None
        self._record_display = record_display and self._writer is not None
        self._recorded_display_size: tuple[int, int] | None = None
        self.t = 0
        self.success = False
        self.ended: str | None = None  # why the rollout ended before its end, when it did
        self._chunk: np.ndarray | None = None
        self._planned: np.ndarray | None = None
        self._idx = 0

    @property
    def path(self) -> Path | None:
        """Where the recording will be published (None when not recording)."""
        return self._writer.path if self._writer is not None else None

    @property
    def done(self) -> bool:
        return self.success or self.t >= self.max_steps

    def peek(self) -> dict[str, np.ndarray]:
        """The cameras' images now, without acting (the first frame before play)."""
        return self.scene.observe(cameras=self.cameras, size=self.size).observation.images

    def render_display(self) -> dict[str, np.ndarray] | None:
        """The cameras now at the display size (None when no display render is wanted)."""
        limit = int(getattr(self.scene, "display_limit", 640))
        size = self._recorded_display_size or self.display_size
        if size is None and self._record_display:  # recorded at every step: a default
            size = display_size(self.size, (DEFAULT_DISPLAY, DEFAULT_DISPLAY), limit) \
                or self.size
        if size is None or not self.cameras:
            return None
        size = (min(int(size[0]), limit), min(int(size[1]), limit))
        if self._record_display:
            self._recorded_display_size = size
        return self.scene.render_display(self.cameras, size)

    def step(self) -> StepRecord:
        """Observe, (re-)plan when the chunk is used up, act, record."""
        if self.done:
            raise VLAScopeError("the rollout is over; start a new one")
        frame = self.scene.observe(cameras=self.cameras, size=self.size, regions=self._regions)
        sim_state = self.scene.sim_state() if self._regions else None
        display = self.render_display()  # the same state as the policy's frame
        obs = frame.observation
        obs = self._applied.observation(obs, self.t)  # what the policy sees is recorded
        policy_obs = obs
        if self._policy_cams is not None and tuple(obs.images) != tuple(self._policy_cams):
            policy_obs = replace(obs, images={c: obs.images[c] for c in self._policy_cams})
        if self._chunk is None or self._idx >= min(self._n_exec, len(self._chunk)):
            try:
                with self._applied.hooks(self.t), self._capturing():
                    acts = self.policy.batch_infer([policy_obs])
            except PolicyConnectionLost as e:
                self.ended = f"the policy's connection was lost at step {self.t}: {e}"
                raise
            self._chunk = check_action_chunks(acts, 1, self.scene.action_dim, self.policy)[0]
            if self._regions:  # recorded or shown: an evaluation does without
                self._planned = self.scene.hand_path(frame.observation.state, self._chunk)
            self._idx = 0
            if self._capture is not None:  # steps that reuse a chunk repeat these
                self._activations = dict(self._capture.last)
        hand, planned, matrices = self._path_data(frame.observation.state)
        action = self._chunk[self._idx]
        self.scene.step(action)
        self.success = bool(self.scene.success())
        record = StepRecord(self.t, obs, frame.regions, action, self._chunk, self._idx,
                            self.success, frame.segments, display, hand, planned, matrices,
                            sim_state)
        if self._writer is not None:
            self._writer.append(state=obs.state, action=action, action_chunk=self._chunk,
                                chunk_index=self._idx, success=self.success,
                                images=obs.images, regions=frame.regions,
                                segments=frame.segments,
                                activations=self._activations or None,
                                display=display if self._record_display else None,
                                hand=hand, planned_hand=planned, camera_matrices=matrices,
                                sim_state=sim_state)
        self._idx += 1
        self.t += 1
        return record

    def _path_data(self, state: np.ndarray) -> tuple:
        """The hand, the chunk's planned path and the cameras' projections now (before the
        action), or three Nones from a scene that cannot say."""
        if self._planned is None or not self.cameras:
            return None, None, None
        hand = self.scene.hand_position_of(state)
        matrices = self.scene.camera_projection(self.size)
        if hand is None or matrices is None:
            return None, None, None
        planned = np.asarray(self._planned, np.float32)
        if planned.shape != (len(self._chunk) + 1, 3) or np.shape(hand) != (3,):
            raise VLAScopeError(
                f"scene '{self.scene.name}': hand_path gave shape {planned.shape} for a chunk "
                f"of {len(self._chunk)} (expected ({len(self._chunk) + 1}, 3)) and "
                f"hand_position_of {np.shape(hand)} (expected (3,))")
        return (np.asarray(hand, np.float32), planned,
                {c: np.asarray(matrices[c], np.float32) for c in self.cameras
                 if c in matrices})

    def set_interventions(self, wanted: Sequence[Intervention | dict]) -> None:
        """From the next step on, exactly ``wanted`` act (their own windows ignored), besides
        the rollout's own instruction: what is running and not wanted stops now, what is
        wanted and not running starts now, so the recording says which edit acted at which
        step. A change re-plans at the next step, so it takes effect at once, not at the
        end of the current chunk."""
        now = self.t
        wanted = [from_dict(w) if isinstance(w, dict) else w for w in wanted]

        def same(a: Intervention, b: Intervention) -> bool:
            return replace(a, start=0, stop=None) == replace(b, start=0, stop=None)

        kept, running, stopped = [], [], 0
        for iv in self._applied.interventions:
            if iv is self._instruction or not (iv.active(now) or iv.start > now):
                kept.append(iv)  # the instruction, or over already: history
            elif any(same(iv, w) for w in wanted):
                kept.append(iv)
                running.append(iv)
            elif iv.start < now:
                kept.append(replace(iv, stop=now))
                stopped += 1
            else:
                stopped += 1  # planned for later and no longer wanted: dropped
        started = [replace(w, start=now, stop=None) for w in wanted
                   if not any(same(w, r) for r in running)]
        applied = bind([*kept, *started], self.policy)  # validates before anything changes
        self._applied = applied
        self.interventions = applied.records()
        self.metadata["interventions"] = self.interventions
        if started or stopped:
            self._chunk = None

    def _capturing(self):
        return self._capture.hooks() if self._capture is not None else contextlib.nullcontext()

    def close(self) -> str | None:
        """Publish the recording (nothing to publish before the first step); the metadata
        says whether it stopped early, and why when its policy's connection was lost."""
        if self._writer is None:
            return None
        writer, self._writer = self._writer, None
        if writer.n_steps == 0:
            writer.discard()
            return None
        stopped = not self.done
        extra = {"success": self.success, "steps": self.t, "stopped_early": stopped,
                 "interventions": self.interventions}
        if self.ended is not None:
            extra["ended"] = self.ended
        return str(writer.close(extra))

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.discard()
            self._writer = None
