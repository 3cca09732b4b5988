"""LIBERO steps/s for what the inspector needs per step: simulate one step and render the
camera that is shown, in one run, three ways:

1. baseline: LIBERO as its evaluation scripts run it (``OffScreenRenderEnv``: robosuite
   renders both cameras into the observation on every step, shadows and reflections on);
2. the plugin with LIBERO's full look (``LiberoScene(fast=False)``: no camera observations
   while stepping, then MuJoCo's renderer draws only the shown camera);
3. the plugin's default fast rendering (shadows, reflections and skybox off).

    .venv/bin/python benchmarks/libero_step.py [--steps 100] [--size 128]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
from vlascope_libero.scene import LiberoScene  # noqa: E402

TASK = "libero_spatial/0"


def actions(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.concatenate([rng.uniform(-0.3, 0.3, (n, 6)), np.sign(rng.uniform(-1, 1, (n, 1)))],
                          axis=1)


def baseline(steps: int, size: int) -> float:
    from libero.libero import benchmark, get_libero_path
    from libero.libero.envs import OffScreenRenderEnv

    with contextlib.redirect_stdout(io.StringIO()):
        suite = benchmark.get_benchmark_dict()["libero_spatial"]()
    task = suite.get_task(0)
    bddl = os.path.join(get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)
    env = OffScreenRenderEnv(bddl_file_name=bddl, camera_heights=size, camera_widths=size)
    env.seed(0)
    env.reset()
    env.set_init_state(suite.get_task_init_states(0)[0])
    acts = actions(steps)
    env.step(acts[0])  # warm-up
    t0 = time.perf_counter()
    for a in acts:
        obs, _r, _d, _i = env.step(a)
        assert obs["agentview_image"].shape == (size, size, 3)
    rate = steps / (time.perf_counter() - t0)
    with contextlib.suppress(Exception):
        env.close()
    return rate


def plugin(steps: int, size: int, fast: bool) -> float:
    scene = LiberoScene(fast=fast)
    scene.reset(TASK, 0)
    acts = actions(steps)
    scene.observe(cameras=["agentview"], size=(size, size))  # warm-up: renderer, textures
    t0 = time.perf_counter()
    for a in acts:
        scene.step(a)
        img = scene.observe(cameras=["agentview"], size=(size, size)).observation.images
        assert img["agentview"].shape == (size, size, 3)
    rate = steps / (time.perf_counter() - t0)
    scene.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.steps} steps of "
          f"{TASK} at {args.size}x{args.size}")
    base = baseline(args.steps, args.size)
    full = plugin(args.steps, args.size, fast=False)
    fast = plugin(args.steps, args.size, fast=True)
    print(f"LIBERO OffScreenRenderEnv (both cameras every step): {base:6.1f} steps/s")
    print(f"plugin, full look, shown camera only:               {full:6.1f} steps/s "
          f"({full / base:.1f}x)")
    print(f"plugin, fast render (default), shown camera only:   {fast:6.1f} steps/s "
          f"({fast / base:.1f}x)")


if __name__ == "__main__":
    main()
