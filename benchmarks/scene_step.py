"""Steps/s of the tabletop scene (step + render of both cameras at 224x224 with region maps)
against the floor: bare ``mj_step`` + ``mujoco.Renderer`` (RGB + segmentation) on the same
model, measured in one run.

    .venv/bin/python benchmarks/scene_step.py [--steps 200] [--size 224] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from vlascope.scenes.tabletop import TabletopScene  # noqa: E402
from vlascope.scenes.tabletop.scene import N_SUBSTEPS  # noqa: E402


def bench_scene(scene: TabletopScene, steps: int, size: tuple[int, int]) -> float:
    rng = np.random.default_rng(0)
    scene.reset("place_red_on_plate", 0)
    t0 = time.perf_counter()
    for _ in range(steps):
        scene.step(rng.uniform(-1, 1, 4))
        scene.observe(size=size, regions=True)
    return steps / (time.perf_counter() - t0)


def bench_floor(renderer: mujoco.Renderer, model: mujoco.MjModel, data: mujoco.MjData,
                steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        mujoco.mj_step(model, data, nstep=N_SUBSTEPS)
        for cam in ("front", "wrist"):
            renderer.update_scene(data, camera=cam)
            renderer.render()
            renderer.enable_segmentation_rendering()
            renderer.render()
            renderer.disable_segmentation_rendering()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians reported")
    args = ap.parse_args()
    size = (args.size, args.size)
    with TabletopScene(image_size=size) as scene:
        scene.reset("place_red_on_plate", 0)
        scene.observe(size=size, regions=True)  # warm-up: renderer creation
        floor_renderer = mujoco.Renderer(scene.model, height=size[0], width=size[1])
        floor_renderer.render()
        floors, ours_all = [], []
        try:
            for _ in range(args.rounds):  # alternate so machine noise hits both alike
                # The floor runs on the scene's own (reset) model and data: the same world.
                scene.reset("place_red_on_plate", 0)
                floors.append(bench_floor(floor_renderer, scene.model, scene.data, args.steps))
                ours_all.append(bench_scene(scene, args.steps, size))
        finally:
            floor_renderer.close()
    floor, ours = float(np.median(floors)), float(np.median(ours_all))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}, mujoco {mujoco.__version__}")
    print(f"scene step + 2 cameras {args.size}x{args.size} + region maps: {ours:.1f} steps/s")
    print(f"floor (mj_step + Renderer rgb+seg, same scene):      {floor:.1f} steps/s")
    print(f"overhead vs floor: {floor / ours:.2f}x  (target <= 1.5x; >= 20 steps/s)")


if __name__ == "__main__":
    main()
