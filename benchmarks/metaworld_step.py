"""MetaWorld steps/s for what the inspector needs per recorded step: simulate one step,
render the policy's camera and its three-class region map, in one run, three ways:

1. baseline: MetaWorld as its README renders it (``gym.make("Meta-World/MT1", ...,
   render_mode="rgb_array", camera_name="corner2")`` and ``env.render()``: default shadows
   and multisampling), plus a MuJoCo segmentation pass for the region map;
2. the plugin: ``MetaWorldScene.step`` + ``observe(regions=True)`` (one renderer, shadows,
   reflections and multisampling off, segmentation classified through lookup tables);
3. the plugin without the region map (what live playback renders).

    .venv/bin/python benchmarks/metaworld_step.py [--steps 200] [--size 128]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from vlascope_metaworld.scene import MetaWorldScene  # noqa: E402

TASK = "pick-place-v3"
CAMERA = "corner2"


def actions(n: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (n, 4))


def baseline(steps: int, size: int) -> float:
    import gymnasium as gym
    import metaworld  # noqa: F401 - registers the Meta-World/ environments

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make("Meta-World/MT1", env_name=TASK, render_mode="rgb_array",
                       camera_name=CAMERA, width=size, height=size)
        env.reset(seed=0)
    raw = env.unwrapped
    seg = mujoco.Renderer(raw.model, height=size, width=size)
    seg.enable_segmentation_rendering()
    acts = actions(steps)
    env.render()  # warm-up
    t0 = time.perf_counter()
    for a in acts:
        env.step(a)
        img = env.render()
        seg.update_scene(raw.data, camera=CAMERA)
        ids = seg.render()
        labels = raw.model.geom_bodyid[np.clip(ids[..., 0], 0, None)]  # geom -> body
        assert img.shape == (size, size, 3) and labels.shape == (size, size)
    rate = steps / (time.perf_counter() - t0)
    seg.close()
    env.close()
    return rate


def plugin(steps: int, size: int, regions: bool) -> float:
    scene = MetaWorldScene(image_size=(size, size))
    scene.reset(TASK, 0)
    acts = actions(steps)
    scene.observe(cameras=[CAMERA], regions=regions)  # warm-up: renderer
    t0 = time.perf_counter()
    for a in acts:
        scene.step(a)
        frame = scene.observe(cameras=[CAMERA], regions=regions)
        assert frame.observation.images[CAMERA].shape == (size, size, 3)
        assert not regions or frame.regions[CAMERA].shape == (size, size)
    rate = steps / (time.perf_counter() - t0)
    scene.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.steps} steps of "
          f"{TASK}, camera {CAMERA} at {args.size}x{args.size}, random actions")
    base = baseline(args.steps, args.size)
    ours = plugin(args.steps, args.size, regions=True)
    live = plugin(args.steps, args.size, regions=False)
    print(f"MetaWorld env.render() + segmentation pass:      {base:6.1f} steps/s")
    print(f"plugin, step + render + region map (recording):  {ours:6.1f} steps/s "
          f"({ours / base:.1f}x)")
    print(f"plugin, step + render (live view, no regions):   {live:6.1f} steps/s "
          f"({live / base:.1f}x)")


if __name__ == "__main__":
    main()
