"""Closed-loop rollouts and evaluation sweeps, shared by the CLI and the GUI."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .episode import SCHEMA, EpisodeWriter
from .errors import CancelledError
from .policy import Policy, check_action_chunks, policy_info
from .scene import Scene

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


@dataclass
class RolloutResult:
    task: str
    variant: str
    seed: int
    success: bool
    steps: int
    seconds: float
    path: str | None = None


def episode_metadata(scene: Scene, policy: Any, task: str, variant: str, seed: int,
                     policy_name: str, interventions: Sequence[dict] = ()) -> dict[str, Any]:
    """Everything needed to re-run an episode."""
    return {
        "policy": {**policy_info(policy, policy_name), "name": policy_name},
        "scene": scene.name, "task": task, "variant": variant, "seed": int(seed),
        "instruction": scene.instruction(), "cameras": list(scene.cameras),
        "action_dim": scene.action_dim, "interventions": list(interventions),
        "vlascope_version": __version__, "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def rollout(scene: Scene, policy: Policy, task: str, seed: int, variant: str | None = None, *,
            max_steps: int | None = None, record_to: str | Path | None = None,
            policy_name: str = "", image_size: tuple[int, int] | None = None,
            instruction: str | None = None, progress: ProgressFn | None = None,
            should_cancel: CancelFn | None = None) -> RolloutResult:
    """Run one episode until success or the step limit; optionally record it to a file.

    ``instruction`` replaces the task's instruction for the policy (a counterfactual prompt).
    """
    t0 = time.perf_counter()
    variant = scene.variant(variant).name
    limit = max_steps or scene.task(task).max_steps
    if hasattr(policy, "reset"):
        policy.reset()
    scene.reset(task, seed, variant)
    policy_cams = getattr(policy, "cameras", None)
    cams = tuple(scene.cameras) if record_to is not None or policy_cams is None else policy_cams
    size = tuple(image_size or getattr(policy, "image_size", None) or scene.default_image_size)
    n_exec = max(1, int(getattr(policy, "n_action_steps", 1)))
    interventions = [] if instruction is None else [{"kind": "prompt", "text": instruction}]
    writer = (EpisodeWriter(record_to, episode_metadata(scene, policy, task, variant, seed,
                                                        policy_name, interventions))
              if record_to is not None else None)
    success, steps, chunk, idx = False, 0, None, 0
    try:
        for steps in range(1, limit + 1):  # noqa: B007 (steps is used after the loop)
            if should_cancel is not None and should_cancel():
                raise CancelledError(f"rollout cancelled at step {steps - 1}")
            frame = scene.observe(cameras=cams, size=size, regions=writer is not None)
            images, obs = frame.observation.images, frame.observation
            if policy_cams is not None and tuple(images) != tuple(policy_cams):
                # hand the policy only the cameras it asked for
                obs = replace(obs, images={c: images[c] for c in policy_cams})
            if instruction is not None:
                obs = replace(obs, instruction=instruction)
            if chunk is None or idx >= min(n_exec, len(chunk)):
                chunk = check_action_chunks(policy.batch_infer([obs]), 1, scene.action_dim)[0]
                idx = 0
            action = chunk[idx]
            scene.step(action)
            success = scene.success()
            if writer is not None:
                writer.append(state=obs.state, action=action, action_chunk=chunk,
                              chunk_index=idx, success=success, images=images,
                              regions=frame.regions)
            idx += 1
            if progress is not None:
                progress(steps, limit)
            if success:
                break
        path = None
        if writer is not None:
            path = str(writer.close({"success": success, "steps": steps}))
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    return RolloutResult(task, variant, seed, success, steps, time.perf_counter() - t0, path)


@dataclass
class EvalCell:
    task: str
    variant: str
    episodes: int = 0
    successes: int = 0
    steps: list[int] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("steps")
        d["success_rate"] = self.success_rate
        d["mean_steps"] = float(np.mean(self.steps)) if self.steps else None
        return d


def evaluate(scene: Scene, policy: Policy, tasks: Sequence[str], variants: Sequence[str],
             episodes: int, seed: int = 0, *, policy_name: str = "",
             on_episode: Callable[[RolloutResult], None] | None = None,
             should_cancel: CancelFn | None = None) -> list[EvalCell]:
    """Success table over tasks x variants, seeds ``seed .. seed + episodes - 1`` per cell."""
    for t in tasks:
        scene.task(t)
    for v in variants:
        scene.variant(v)
    cells = []
    for task in tasks:
        for variant in variants:
            cell = EvalCell(task, variant)
            for k in range(episodes):
                res = rollout(scene, policy, task, seed + k, variant, policy_name=policy_name,
                              should_cancel=should_cancel)
                cell.episodes += 1
                cell.successes += int(res.success)
                cell.steps.append(res.steps)
                if on_episode is not None:
                    on_episode(res)
            cells.append(cell)
    return cells
