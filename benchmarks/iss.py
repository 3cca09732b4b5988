"""Pixel ISS per frame on the shipped reference policy (two cameras), against
(a) the floor: the bare batched forward passes of the same N perturbed inputs, and
(b) the ISS/NMR toolkit itself (`iss_nmr_toolkit.core.iss.compute_iss`, its own code, given
    with --toolkit FOLDER; without it, our `toolkit` estimator, which tests hold equal to
    the toolkit's numbers) at equal map quality: the smallest N whose map correlates with
    the toolkit's converged map (its definition at N = 5000) at least as well as ours
    (`toolkit-improved`, N = 100). All measured in one run.

    .venv/bin/python benchmarks/iss.py [--toolkit /path/above/iss_nmr_toolkit] [--converged 5000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vlascope.core.policy import Observation, common_noise  # noqa: E402
from vlascope.core.saliency.iss import ISSConfig, pixel_iss  # noqa: E402
from vlascope.core.saliency.strip import ToolkitPerturbation  # noqa: E402
from vlascope.policies.reference.policy import ReferencePolicy  # noqa: E402
from vlascope.scenes.tabletop import TabletopScene  # noqa: E402


def flat(maps: dict) -> np.ndarray:
    return np.concatenate([np.asarray(maps[c]).ravel() for c in sorted(maps)])


def corr(a: dict, b: dict) -> float:
    return float(np.corrcoef(flat(a), flat(b))[0, 1])


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def floor_time(policy, obs, n: int, batch: int, cfg: ISSConfig) -> float:
    """The same number of forward passes on pre-made perturbed inputs, nothing else."""
    cams = list(obs.images)
    source = ToolkitPerturbation(obs.images, cams, n, cfg.grid, cfg.p_keep, cfg.sigma, 0,
                                 stratified=True)
    images = source.batch(0, n)
    perturbed = [replace(obs, images={c: images[c][i] for c in cams}) for i in range(n)]
    t0 = time.perf_counter()
    with common_noise(policy):
        policy.batch_infer([obs])
        for i in range(0, n, batch):
            policy.batch_infer(perturbed[i:i + batch])
    return time.perf_counter() - t0


class ToolkitAdapter:
    """Our policy behind the toolkit's contract: dict observations in, {"actions"} out."""

    def __init__(self, policy, obs: Observation):
        self.policy, self.obs = policy, obs

    def batch_infer(self, items: list[dict]) -> list[dict]:
        batch = [replace(self.obs, images={c: item[c] for c in self.obs.images})
                 for item in items]
        return [{"actions": a} for a in self.policy.batch_infer(batch)]


def toolkit_runner(folder: str | None, policy, obs: Observation):
    """N, seed -> maps, by the toolkit's own compute_iss when its folder is given."""
    if folder is None:
        def ours(n: int, seed: int) -> dict:
            return pixel_iss(policy, obs, ISSConfig(n_masks=n, seed=seed, batch_size=64,
                                                    estimator="toolkit")).maps
        return ours, "VLAScope's `toolkit` estimator (no --toolkit given)"
    sys.path.insert(0, folder)
    from iss_nmr_toolkit.core.iss import compute_iss

    views = {c: c for c in obs.images}
    adapter = ToolkitAdapter(policy, obs)

    def theirs(n: int, seed: int) -> dict:
        with common_noise(policy):
            maps = compute_iss(adapter, [{**obs.images}], views=views, n_masks=n, seed=seed,
                               show_progress=False)
        return {c: m[0] for c, m in maps.items()}
    return theirs, f"the toolkit's compute_iss from {folder}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--converged", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--toolkit", default=None,
                    help="folder holding the toolkit's iss_nmr_toolkit package (its own code)")
    args = ap.parse_args()
    policy = ReferencePolicy(device=args.device)
    with TabletopScene() as scene:
        scene.reset("stack_red_on_blue", 0)
        obs = scene.observe(cameras=policy.cameras, size=policy.image_size).observation

    toolkit, baseline = toolkit_runner(args.toolkit, policy, obs)
    ours_cfg = ISSConfig(n_masks=100, estimator="toolkit-improved", batch_size=50)
    pixel_iss(policy, obs, replace(ours_cfg, n_masks=10))  # warm-up
    runs = [timed(lambda s=s: pixel_iss(policy, obs, replace(ours_cfg, seed=s)))
            for s in range(args.repeats)]
    t_ours = float(np.median([t for _, t in runs]))
    floors = [floor_time(policy, obs, 100, 50, ours_cfg) for _ in range(args.repeats)]
    t_floor = float(np.median(floors))

    converged, t_conv = timed(lambda: toolkit(args.converged, 12345))
    q_ours = float(np.mean([corr(r.maps, converged) for r, _ in runs]))

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {policy.device}")
    print(f"baseline: {baseline}")
    print(f"frame: tabletop stack_red_on_blue seed 0, cameras {', '.join(policy.cameras)} at "
          f"{policy.image_size[0]}x{policy.image_size[1]}; the toolkit's converged map "
          f"N={args.converged} ({t_conv:.0f} s)")
    print(f"ours (toolkit-improved, N=100): {t_ours:.2f} s per frame, corr with the toolkit's "
          f"converged map {q_ours:.3f}")
    print(f"floor (101 bare forward passes, batches of 50): {t_floor:.2f} s -> overhead "
          f"{t_ours / t_floor:.2f}x (target <= 1.2x)")

    equal = None
    for n in (100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1600, 2400, 3200):
        results = [timed(lambda s=s, n=n: toolkit(n, s)) for s in range(args.repeats)]
        q = float(np.mean([corr(m, converged) for m, _ in results]))
        t = float(np.mean([t for _, t in results]))
        print(f"toolkit N={n:<5} {t:6.2f} s per frame, corr {q:.3f}")
        if q >= q_ours:
            equal = (n, t)
            break
    if equal is None:
        print("the toolkit did not reach our quality within N=3200: ratio is a lower bound")
        equal = (n, t)
    print(f"toolkit at equal quality: N={equal[0]} ({equal[0] / 100:g}x the masks), "
          f"{equal[1]:.2f} s -> ours is {equal[1] / t_ours:.1f}x faster (target >= 3x)")


if __name__ == "__main__":
    main()
