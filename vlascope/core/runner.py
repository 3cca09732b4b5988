"""Closed-loop rollouts and evaluation sweeps, shared by the CLI and the GUI."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CancelledError, PolicyConnectionLost
from .interventions import Intervention
from .live import LiveRollout, StepRecord
from .policy import Policy
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


def rollout(scene: Scene, policy: Policy, task: str, seed: int, variant: str | None = None, *,
            max_steps: int | None = None, record_to: str | Path | None = None,
            policy_name: str = "", image_size: tuple[int, int] | None = None,
            instruction: str | None = None, interventions: Sequence[Intervention | dict] = (),
            capture: Sequence[str] = (), pooling: str = "tokens",
            progress: ProgressFn | None = None, on_step: Callable[[StepRecord], None] | None = None,
            should_cancel: CancelFn | None = None, overwrite: bool = False,
            display_size: tuple[int, int] | None = None) -> RolloutResult:
    """Run one episode until success or the step limit; optionally record it to a file.

    ``instruction`` replaces the task's instruction for the policy (a counterfactual prompt);
    ``interventions`` act at every step; ``capture`` records activations of hook points in
    the file. A cancelled or failed rollout leaves no file behind, except one whose policy
    lost its server (``PolicyConnectionLost``): its recording keeps the steps done, with
    ``ended`` in its metadata, and the error raised says where it is. An existing file is
    replaced only with ``overwrite``. ``display_size`` also records a display render of
    that size per step (what the inspector shows people).
    """
    t0 = time.perf_counter()
    live = LiveRollout(scene, policy, task, seed, variant, max_steps=max_steps,
                       record_to=record_to, policy_name=policy_name, image_size=image_size,
                       instruction=instruction, interventions=interventions,
                       capture=capture, pooling=pooling, overwrite=overwrite,
                       record_display=display_size is not None)
    live.display_size = display_size
    try:
        while not live.done:
            if should_cancel is not None and should_cancel():
                raise CancelledError(f"rollout cancelled at step {live.t}")
            record = live.step()
            if on_step is not None:
                on_step(record)
            if progress is not None:
                progress(live.t, live.max_steps)
        path = live.close()
    except PolicyConnectionLost as e:
        if live.path is None:
            raise
        if live.ended is None:
            live.ended = f"the policy's connection was lost at step {live.t}: {e}"
        kept = live.close()  # the steps done are the user's work: published, not dropped
        error = PolicyConnectionLost(
            f"{e}; the steps done ({live.t}) are kept in {kept}" if kept else
            f"{e}; nothing was recorded (it ended before the first step)")
        error.recording = kept
        raise error from e
    except BaseException:
        live.discard()
        raise
    return RolloutResult(task, live.variant, seed, live.success, live.t,
                         time.perf_counter() - t0, path)


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


def eval_cell(scene: str, scene_options: dict, policy: str, policy_options: dict, task: str,
              variant: str, seeds: Sequence[int]) -> dict[str, Any]:
    """One sweep cell of ``evaluate``: ``task`` x ``variant`` on ``seeds``, with the worker's
    scene and policy (made once per worker)."""
    from .sweep import worker

    cell = EvalCell(task, variant)
    sc, pol = worker.scene_and_policy(scene, scene_options, policy, policy_options)
    for s in seeds:
        res = rollout(sc, pol, task, s, variant, policy_name=policy)
        cell.episodes += 1
        cell.successes += int(res.success)
        cell.steps.append(res.steps)
    return asdict(cell)


def merge_eval_cells(results: Sequence[dict[str, Any] | None]) -> list[EvalCell]:
    """Blocks of seeds back into one cell per task x variant, in order (failed blocks,
    None, are left out: the cell then counts fewer episodes)."""
    cells: dict[tuple[str, str], EvalCell] = {}
    for r in results:
        if r is None:
            continue
        cell = cells.setdefault((r["task"], r["variant"]), EvalCell(r["task"], r["variant"]))
        cell.episodes += r["episodes"]
        cell.successes += r["successes"]
        cell.steps += r["steps"]
    return list(cells.values())


def eval_sweep_cells(scene: str, scene_options: dict, policy: str, policy_options: dict,
                     tasks: Sequence[str], variants: Sequence[str], episodes: int, seed: int,
                     seeds_per_cell: int) -> list[Any]:
    """``evaluate``'s work as sweep cells (task x variant x block of seeds)."""
    from .sweep import seed_block_cells

    common = {"scene": scene, "scene_options": scene_options, "policy": policy,
              "policy_options": policy_options}
    return seed_block_cells(eval_cell, common, [
        (f"{policy}__{task}__{variant}", {"task": task, "variant": variant})
        for task in tasks for variant in variants], seed, episodes, seeds_per_cell)
