"""Observations/s of the shipped reference policy at batch 1 and batch 100 (CPU unless
``--device``), and the process's peak memory, measured in one run.

    .venv/bin/python benchmarks/policy_throughput.py [--policy reference] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

os.environ.setdefault("MUJOCO_GL", "egl")


import torch  # noqa: E402

from vlascope.policies.reference.policy import ReferencePolicy  # noqa: E402
from vlascope.scenes.tabletop import TabletopScene  # noqa: E402


def throughput(policy: ReferencePolicy, obs: list, repeats: int) -> float:
    policy.batch_infer(obs)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        policy.batch_infer(obs)
    return repeats * len(obs) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--policy", default="reference")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--head", default=None, choices=[None, "l1", "flow"])
    args = ap.parse_args()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    policy = ReferencePolicy(name=args.policy, device=args.device, head=args.head)
    with TabletopScene() as scene:
        frames = []
        for seed in range(10):
            scene.reset("stack_red_on_blue", seed, "diverse")
            frames.append(scene.observe(cameras=policy.cameras,
                                        size=policy.image_size).observation)
    batch100 = [frames[i % len(frames)] for i in range(100)]
    b1 = throughput(policy, frames[:1], 50)
    b100 = throughput(policy, batch100, 5)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {policy.device}, head {policy.head}")
    print(f"batch 1:   {b1:.1f} observations/s ({1000 / b1:.1f} ms per call)")
    print(f"batch 100: {b100:.1f} observations/s ({100 / b100:.2f} s per call, "
          f"{b100 / b1:.1f}x batch 1)")
    print(f"peak memory (RSS): {peak:.0f} MiB (process start {rss0 / 1024:.0f} MiB)")
    if policy.device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB allocated, "
              f"dtype {policy.dtype}, {torch.cuda.get_device_name()}")



if __name__ == "__main__":
    main()
