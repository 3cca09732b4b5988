"""Sweeps on Ray against the local workers (issue 27): the same evaluation sweep (the
shipped reference policy on the tabletop, tasks x variants x seeds, cut into cells of
``--seeds-per-cell`` episodes) run by the local executor (spawned worker processes, one
per core: what `vlascope eval --jobs N` did before Ray) and by a Ray started here on demand
(one CPU per cell), in one run. Both walls include everything a user waits for: starting
the workers (and Ray), each worker loading the policy and the scene once, the cells, and
shutting down. Both executors give one torch thread per worker. The tables must be equal.

    .venv/bin/python benchmarks/sweep.py [--tasks all] [--variants default,shortcut_test]
        [--episodes 6] [--seeds-per-cell 2] [--workers 2] [--repeats 2]

Runs alternate (local, Ray, Ray, local, ...) and medians are reported. Prints the walls,
Ray's overhead in all (ratio ray / local; target <= 1.15 on 2 cores) and per cell
((ray - local) / cells), and the cell time measured inside the workers.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from statistics import median

os.environ.setdefault("MUJOCO_GL", "egl")

from vlascope.core.runner import eval_sweep_cells, merge_eval_cells  # noqa: E402
from vlascope.core.sweep import Executor, run_sweep  # noqa: E402
from vlascope.scenes.tabletop import TabletopScene  # noqa: E402


def timed(cells: list, executor: Executor) -> tuple[float, list]:
    t0 = time.perf_counter()
    outcome = run_sweep(cells, executor)
    wall = time.perf_counter() - t0
    assert not outcome.failed, outcome.failure_lines()
    return wall, outcome.records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--variants", default="default,shortcut_test")
    ap.add_argument("--episodes", type=int, default=6)
    ap.add_argument("--seeds-per-cell", type=int, default=2)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    with TabletopScene() as scene:
        tasks = scene.resolve_tasks(args.tasks)
    variants = args.variants.split(",")
    cells = eval_sweep_cells("tabletop", {}, "reference", {}, tasks, variants, args.episodes,
                             0, args.seeds_per_cell)
    n = len(cells)
    print(f"{n} cells ({len(tasks)} tasks x {len(variants)} variants x {args.episodes} seeds, "
          f"{args.seeds_per_cell} per cell), {args.workers} workers; {platform.machine()}, "
          f"{os.cpu_count()} cores, {platform.processor() or 'CPU'}")
    walls: dict[str, list[float]] = {"local": [], "ray": []}
    inside: dict[str, list[float]] = {"local": [], "ray": []}
    results = {}
    # Interleaved (local, ray, ray, local, ...): both see the same machine and file cache.
    order = [("local", "ray") if i % 2 == 0 else ("ray", "local") for i in range(args.repeats)]
    for pair in order:
        for kind in pair:
            wall, records = run_local(cells, args.workers) if kind == "local" else \
                run_on_ray(cells, args.workers)
            walls[kind].append(wall)
            inside[kind].append(sum(r.seconds for r in records) / n)
            results.setdefault(kind, merge_eval_cells([r.result for r in records]))
            print(f"  {kind:<5} {wall:6.1f} s", flush=True)
    local_wall, ray_wall = median(walls["local"]), median(walls["ray"])
    print(f"local workers: {local_wall:7.1f} s median of {args.repeats} "
          f"({median(inside['local']):.2f} s per cell inside the workers)")
    print(f"local Ray:     {ray_wall:7.1f} s median of {args.repeats} "
          f"({median(inside['ray']):.2f} s per cell inside the workers; Ray start and "
          "shutdown included)")
    print(f"tables equal: {results['local'] == results['ray']}")
    print(f"Ray overhead in all: {ray_wall / local_wall:.3f}x local workers (target <= 1.15)")
    print(f"Ray overhead per cell: {1000 * (ray_wall - local_wall) / n:+.0f} ms "
          f"(wall difference / {n} cells)")


def run_local(cells: list, workers: int) -> tuple[float, list]:
    return timed(cells, Executor("local", jobs=workers))


def run_on_ray(cells: list, workers: int) -> tuple[float, list]:
    """A local Ray with as many CPUs as local workers (the same parallelism), its start
    and shutdown inside the wall."""
    import ray

    from vlascope.core.sweep.ray_executor import connect

    t0 = time.perf_counter()
    connect(None, cpus=workers)
    _, records = timed(cells, Executor("ray", cpus_per_task=1.0))
    ray.shutdown()
    return time.perf_counter() - t0, records


if __name__ == "__main__":
    main()
