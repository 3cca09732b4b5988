"""Evaluation spread over worker processes: a rollout (MuJoCo rendering plus a small model at
batch 1) keeps about one core busy, so N independent pieces on N cores take about 1/N of
the time. Spawned, not forked: no inherited EGL contexts or torch thread pools."""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from .runner import EvalCell


def map_in_processes(fn: Callable[..., Any], calls: Sequence[tuple], jobs: int,
                     on_tick: Callable[[], None] | None = None) -> list[Any]:
    """``[fn(*args, ticks, threads) for args in calls]`` in ``jobs`` spawned processes, in
    order; ``fn`` puts one item on ``ticks`` per unit of progress (``on_tick`` runs here for
    each) and should use ``threads`` torch threads. A worker's error is raised here."""
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (multiprocessing.cpu_count() or 1) // max(1, jobs))
    with ctx.Manager() as manager, ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
        ticks = manager.Queue()
        futures = [pool.submit(fn, *args, ticks, threads) for args in calls]
        while True:
            try:
                ticks.get(timeout=0.2)
            except queue.Empty:
                if all(f.done() for f in futures) and ticks.empty():
                    break
                continue
            if on_tick is not None:
                on_tick()
        return [f.result() for f in futures]


def _evaluate_task(scene_name: str, scene_options: dict, policy_name: str,
                   policy_options: dict, task: str, variants: list[str], episodes: int,
                   seed: int, ticks, threads: int) -> list[EvalCell]:
    import torch

    from .plugins import PluginRegistry
    from .runner import evaluate

    torch.set_num_threads(min(threads, torch.get_num_threads()))  # never more than allowed
    reg = PluginRegistry.discover()
    policy = reg.create_policy(policy_name, **policy_options)
    with reg.create_scene(scene_name, **scene_options) as scene:
        return evaluate(scene, policy, [task], variants, episodes, seed,
                        policy_name=policy_name, on_episode=lambda _r: ticks.put(1))


def evaluate_in_processes(scene_name: str, scene_options: dict, policy_name: str,
                          policy_options: dict, tasks: Sequence[str], variants: Sequence[str],
                          episodes: int, seed: int, jobs: int,
                          on_episode: Callable[[], None] | None = None) -> list[EvalCell]:
    """``runner.evaluate`` with one task per worker, ``jobs`` workers at a time: the same
    cells as the sequential run (same seeds; at the same torch thread count, bit-identical)."""
    calls = [(scene_name, scene_options, policy_name, policy_options, task, list(variants),
              episodes, seed) for task in tasks]
    parts = map_in_processes(_evaluate_task, calls, jobs, on_episode)
    return [cell for cells in parts for cell in cells]
