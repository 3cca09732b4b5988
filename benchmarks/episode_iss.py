"""ISS over whole episodes at a fraction of the cost (issue 26), in one run:

on 10 recorded episodes (tabletop tasks with the shipped `reference` and `reference-shortcut`,
two MetaWorld MT10 episodes with `reference-metaworld`), the ground truth is the per-step map
at N = 2000 (`toolkit-improved`, its own seeds) on every 5th step. At budgets of 5, 10 and 20
forward passes per step amortised (base passes included) it scores, against the ground truth
(mean correlation, mean top-10% IoU, per-episode NMR@10 error):

(a) the ISS/NMR toolkit's own episode pipeline, `iss_nmr_toolkit.core.iss.compute_iss` with
    `time_stride=10` (its code unchanged, loaded from --toolkit FOLDER; without it our
    `toolkit` estimator + linear interpolation, which tests hold equal to it), at
    N = 10 (budget - 1) masks per computed step; also at budget 40, the target's reference;
(a') the same keyframes and interpolation with our per-frame `toolkit-improved` estimator
    (what `vlascope iss --every 10` did before);
(b) ours: `vlascope iss`'s default, every step explained with budget - 1 masks and the
    per-step maps pooled over time with a bandwidth chosen by leave-one-out
    cross-validation (vlascope/core/saliency/pooled.py).

Target: (b) at 10 passes per step matches or beats (a) at 40.

    .venv/bin/python benchmarks/episode_iss.py [--toolkit /path/above/iss_nmr_toolkit]
        [--cache ~/.cache/vlascope/bench-episode-iss] [--plot docs/images/episode_iss.png]

Episodes and ground truth are cached in --cache (the ground truth takes ~30 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vlascope.core.episode import Episode, episode_observation  # noqa: E402
from vlascope.core.metrics import nmr_at_k  # noqa: E402
from vlascope.core.plugins import PluginRegistry  # noqa: E402
from vlascope.core.policy import common_noise  # noqa: E402
from vlascope.core.runner import rollout  # noqa: E402
from vlascope.core.saliency.iss import ISSConfig, pixel_iss  # noqa: E402
from vlascope.core.saliency.temporal import (  # noqa: E402
    episode_iss,
    pooled_episode_iss,
    steps_to_compute,
)


@dataclass(frozen=True)
class EpisodeSpec:
    policy: str
    scene: str
    task: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.policy}_{self.task}_{self.seed}"


EPISODES = (
    EpisodeSpec("reference", "tabletop", "pick_red", 0),
    EpisodeSpec("reference", "tabletop", "place_blue_on_plate", 1),
    EpisodeSpec("reference", "tabletop", "stack_red_on_blue", 2),
    EpisodeSpec("reference", "tabletop", "place_red_in_zone", 3),
    EpisodeSpec("reference-shortcut", "tabletop", "pick_blue", 0),
    EpisodeSpec("reference-shortcut", "tabletop", "place_red_on_plate", 1),
    EpisodeSpec("reference-shortcut", "tabletop", "stack_blue_on_red", 2),
    EpisodeSpec("reference-shortcut", "tabletop", "place_blue_in_zone", 3),
    EpisodeSpec("reference-metaworld", "metaworld", "reach-v3", 0),
    EpisodeSpec("reference-metaworld", "metaworld", "drawer-open-v3", 1),
)
MAX_STEPS = 60  # bounds the ground truth's cost; long tasks keep approach, grasp and carry
GT_N, GT_EVERY, GT_SEED = 2000, 5, 12345
BUDGETS = (5, 10, 20)
TOOLKIT_STRIDE = 10


def record(spec: EpisodeSpec, registry: PluginRegistry, folder: Path) -> Path:
    path = folder / f"{spec.name}.h5"
    if not path.exists():
        policy = registry.create_policy(spec.policy)
        scene = registry.create_scene(spec.scene)
        try:
            result = rollout(scene, policy, spec.task, spec.seed, max_steps=MAX_STEPS,
                             record_to=path, policy_name=spec.policy,
                             image_size=tuple(policy.image_size))
        finally:
            scene.close()
        print(f"recorded {spec.name}: {result.steps} steps, success {result.success}",
              flush=True)
    return path


def ground_truth(spec: EpisodeSpec, path: Path, policy, folder: Path) -> dict[str, np.ndarray]:
    """Per-step maps at N = 2000 on every 5th step, cached (seeds of their own)."""
    out = folder / f"{spec.name}.gt.npz"
    if out.exists():
        with np.load(out) as z:
            return {k: z[k] for k in z.files}
    t0 = time.perf_counter()
    with Episode(path) as ep:
        cams = list(policy.cameras)
        steps = list(range(0, ep.n_steps, GT_EVERY))
        maps: dict[str, list[np.ndarray]] = {c: [] for c in cams}
        for t in steps:
            obs = episode_observation(ep, t, cams, policy.image_size)
            cfg = ISSConfig(n_masks=GT_N, estimator="toolkit-improved", batch_size=100,
                            seed=GT_SEED + t)
            result = pixel_iss(policy, obs, cfg, cams)
            for c in cams:
                maps[c].append(result.maps[c])
    arrays = {"steps": np.asarray(steps), **{f"map/{c}": np.stack(m) for c, m in maps.items()}}
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(out)
    print(f"ground truth {spec.name}: {len(steps)} steps in {time.perf_counter() - t0:.0f} s",
          flush=True)
    return arrays


class Counted:
    """Counts the forward passes (rows) a method asks of the policy."""

    def __init__(self, policy):
        self.policy, self.passes = policy, 0
        self.cameras, self.image_size = policy.cameras, policy.image_size
        if hasattr(policy, "common_noise"):
            self.common_noise = policy.common_noise

    def batch_infer(self, observations):
        self.passes += len(observations)
        return self.policy.batch_infer(observations)


class ToolkitAdapter:
    """Our policy behind the toolkit's contract: dict observations in, {"actions"} out; each
    item carries its step ("_t", context the toolkit copies) so state and text come along."""

    def __init__(self, policy, observations):
        self.policy, self.observations = policy, observations

    def batch_infer(self, items: list[dict]) -> list[dict]:
        batch = []
        for item in items:
            obs = self.observations[item["_t"]]
            batch.append(replace(obs, images={c: item[c] for c in obs.images}))
        return [{"actions": a} for a in self.policy.batch_infer(batch)]


def toolkit_episode(folder: str | None, policy, ep: Episode, n: int):
    """(a): the toolkit's episode pipeline at N masks, time stride 10."""
    cams = list(policy.cameras)
    if folder is None:
        res = episode_iss(policy, ep, ISSConfig(n_masks=n, estimator="toolkit",
                                                batch_size=64), every=TOOLKIT_STRIDE, check=0)
        return res.maps
    if folder not in sys.path:
        sys.path.insert(0, folder)
    from iss_nmr_toolkit.core.iss import compute_iss

    observations = [episode_observation(ep, t, cams, policy.image_size)
                    for t in range(ep.n_steps)]
    items = [{**o.images, "_t": t} for t, o in enumerate(observations)]
    adapter = ToolkitAdapter(policy, observations)
    with common_noise(policy):
        # its unperturbed passes given and one batch per keyframe: its padding of short
        # batches (to batch_size, with copies) would cost it passes it does not need
        baseline = adapter.batch_infer(items)
        return compute_iss(adapter, items, baseline, views={c: c for c in cams}, n_masks=n,
                           batch_size=n, time_stride=TOOLKIT_STRIDE, seed=0,
                           show_progress=False)


def _flat(maps: dict[str, np.ndarray], t: int) -> np.ndarray:
    return np.concatenate([np.asarray(maps[c][t]).ravel() for c in sorted(maps)])


def top_iou(a: np.ndarray, b: np.ndarray, q: float = 0.1) -> float:
    k = int(round(q * a.size))
    ia, ib = np.argpartition(-a, k)[:k], np.argpartition(-b, k)[:k]
    return len(np.intersect1d(ia, ib)) / len(np.union1d(ia, ib))


def keyframe_masks(key: str, budget: int, n_steps: int) -> int:
    """N per keyframe that spends ``budget`` passes per step over the episode: the toolkit
    runs the unperturbed frame of every step, ours only of its keyframes."""
    k = len(steps_to_compute(n_steps, TOOLKIT_STRIDE))
    if key == "a":
        return max(1, round((budget - 1) * n_steps / k))
    return max(1, round(budget * n_steps / k) - 1)


def scores(maps: dict[str, np.ndarray], gt: dict[str, np.ndarray], ep: Episode) -> dict:
    """Mean correlation and top-10% IoU with the ground truth on its steps (also the
    correlation on those between the toolkit's keyframes alone), and the episode's NMR@10
    (mean over those steps) from these maps and from the ground truth."""
    cams = sorted(maps)
    keyframes = set(steps_to_compute(ep.n_steps, TOOLKIT_STRIDE))
    corrs, ious, nmr, nmr_gt, between = [], [], [], [], []
    for i, t in enumerate(gt["steps"]):
        truth = {c: gt[f"map/{c}"][i] for c in cams}
        a, b = _flat(maps, int(t)), _flat({c: truth[c][None] for c in cams}, 0)
        corrs.append(float(np.corrcoef(a, b)[0, 1]))
        if int(t) not in keyframes:
            between.append(corrs[-1])
        ious.append(top_iou(a, b))
        regions = {c: ep.regions(int(t), c) for c in cams}
        nmr.append(nmr_at_k({c: maps[c][int(t)] for c in cams}, regions, 10))
        nmr_gt.append(nmr_at_k(truth, regions, 10))
    return {"corr": float(np.mean(corrs)), "iou": float(np.mean(ious)),
            "corr_between": float(np.mean(between)) if between else float("nan"),
            "nmr": float(np.mean(nmr)), "nmr_gt": float(np.mean(nmr_gt))}


def evaluate(data, args) -> None:
    methods = {
        "a": ("toolkit, every 10th step + linear", (*BUDGETS, 40)),
        "a'": ("toolkit-improved, every 10th step + linear", (*BUDGETS, 40)),
        "b": ("ours: every step + pooling (cross-validated)", BUDGETS),
    }
    rows = []
    for spec, path, policy, gt in data:
        counted = Counted(policy)
        with Episode(path) as ep:
            for key, (_label, budgets) in methods.items():
                for budget in budgets:
                    n = keyframe_masks(key, budget, ep.n_steps)
                    counted.passes = 0
                    t0 = time.perf_counter()
                    extra = {}
                    if key == "a":
                        maps = toolkit_episode(args.toolkit, counted, ep, n)
                    elif key == "a'":
                        maps = episode_iss(counted, ep, ISSConfig(
                            n_masks=n, estimator="toolkit-improved", batch_size=64),
                            every=TOOLKIT_STRIDE, check=0).maps
                    else:
                        res = pooled_episode_iss(counted, ep, ISSConfig(
                            estimator="toolkit-improved"), budget=budget)
                        maps, extra = res.maps, {"bandwidth": float(res.made["bandwidth"])}
                    row = {"episode": spec.name, "steps": ep.n_steps, "method": key,
                           "budget": budget, "masks": n if key != "b" else budget - 1,
                           "passes_per_step": counted.passes / ep.n_steps,
                           "seconds": time.perf_counter() - t0, **extra,
                           **scores(maps, gt, ep)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    report(rows, methods, args)


def report(rows: list[dict], methods: dict, args) -> None:
    def mean(key: str, budget: int, field: str) -> float:
        vals = [r[field] for r in rows if r["method"] == key and r["budget"] == budget]
        return float(np.mean(vals)) if vals else float("nan")

    def nanmean(key: str, budget: int, field: str) -> float:
        return float(np.nanmean([r[field] for r in rows
                                 if r["method"] == key and r["budget"] == budget]))

    def nmr_err(key: str, budget: int) -> float:
        return float(np.mean([abs(r["nmr"] - r["nmr_gt"]) for r in rows
                              if r["method"] == key and r["budget"] == budget]))

    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{len({r['episode'] for r in rows})} episodes, "
          f"{sum({r['episode']: r['steps'] for r in rows}.values())} steps; ground truth "
          f"N = {GT_N} on every {GT_EVERY}th step; (a) = "
          f"{'the toolkit from ' + args.toolkit if args.toolkit else 'our toolkit estimator'}")
    print("| method | budget (passes/step) | measured passes/step | corr | corr between "
          "keyframes | top-10% IoU | NMR@10 error |")
    print("|---|---|---|---|---|---|---|")
    for key, (label, budgets) in methods.items():
        for b in budgets:
            print(f"| ({key}) {label} | {b} | {mean(key, b, 'passes_per_step'):.1f} | "
                  f"{mean(key, b, 'corr'):.3f} | {nanmean(key, b, 'corr_between'):.3f} | "
                  f"{mean(key, b, 'iou'):.3f} | {nmr_err(key, b):.3f} |")
    cols = (("a", 10), ("a", 40), ("a'", 10), ("b", 10))
    print("\nNMR@10 per episode (mean over the ground truth's steps):")
    print("| episode | steps | ground truth | " + " | ".join(f"({k})@{b}" for k, b in cols)
          + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for name in dict.fromkeys(r["episode"] for r in rows):
        mine = {(r["method"], r["budget"]): r for r in rows if r["episode"] == name}
        first = next(iter(mine.values()))
        print(f"| {name} | {first['steps']} | {first['nmr_gt']:.3f} | "
              + " | ".join(f"{mine[c]['nmr']:.3f}" for c in cols) + " |")
    ours, theirs = mean("b", 10, "corr"), mean("a", 40, "corr")
    print(f"ours at 10 passes/step: corr {ours:.3f}, IoU {mean('b', 10, 'iou'):.3f}; "
          f"(a) at 40: corr {theirs:.3f}, IoU {mean('a', 40, 'iou'):.3f}; ratio of "
          f"correlations {ours / theirs:.2f} -> target (>= 1.00 at a quarter of the passes) "
          f"{'met' if ours >= theirs else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.plot:
        plot(rows, methods, mean, args.plot)


def plot(rows: list[dict], methods: dict, mean, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, field, title in ((axes[0], "corr", "correlation with ground truth"),
                             (axes[1], "iou", "top-10% IoU with ground truth")):
        for key, (label, budgets) in methods.items():
            ax.plot(budgets, [mean(key, b, field) for b in budgets], "o-",
                    label=f"({key}) {label}")
        ax.set_xscale("log", base=2)
        ax.set_xticks([5, 10, 20, 40], ["5", "10", "20", "40"])
        ax.set_xlabel("forward passes per step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=str(Path.home() / ".cache/vlascope/bench-episode-iss"))
    ap.add_argument("--toolkit", default=None, help="folder holding iss_nmr_toolkit")
    ap.add_argument("--stage", choices=("gt", "all"), default="all")
    ap.add_argument("--plot", default=None, help="write the plot (PNG) here")
    ap.add_argument("--json", default=None, help="write every figure (JSON) here")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    folder = Path(args.cache).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    registry = PluginRegistry.discover()
    policies: dict[str, object] = {}
    data = []
    for spec in EPISODES:
        path = record(spec, registry, folder)
        policy = policies.setdefault(spec.policy, registry.create_policy(spec.policy))
        data.append((spec, path, policy, ground_truth(spec, path, policy, folder)))
    if args.stage == "gt":
        return
    evaluate(data, args)


if __name__ == "__main__":
    sys.exit(main())
