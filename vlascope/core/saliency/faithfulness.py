"""Is a saliency map faithful? Deletion and insertion curves (Petsiuk et al., RISE) in
action space: replace the map's top-k% pixels of every camera by the blur fill (deletion),
or show only them over the fill (insertion), for k = 0..100, and measure how far the
action chunk moves from the clean frame's (the ISS divergence). A faithful map moves the
actions early under deletion (a large area under the curve) and brings them back early
under insertion (a small area); a random map of the same frame is the reference. Every
level is one forward pass, all in few batches, under common noise."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ..errors import VLAScopeError
from ..policy import Observation, Policy, common_noise
from .iss import batch_divergences, check_frame
from .strip import toolkit_blur

DEFAULT_KS = tuple(float(k) for k in range(0, 101, 10))


@dataclass
class FaithfulnessCurves:
    ks: list[float]  # percent of each camera's pixels, ascending
    deletion: list[float]  # divergence from the clean actions, top-k% replaced by the fill
    insertion: list[float]  # divergence from the clean actions, only the top-k% shown
    random_deletion: list[float]  # the same with a random ranking of the pixels
    random_insertion: list[float]

    @staticmethod
    def area(ks: Sequence[float], values: Sequence[float]) -> float:
        """Area under the curve over k in [0, 1] (trapezoids)."""
        x = np.asarray(ks, np.float64) / 100.0
        y = np.asarray(values, np.float64)
        return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))

    def areas(self) -> dict[str, float]:
        return {name: self.area(self.ks, getattr(self, name))
                for name in ("deletion", "insertion", "random_deletion", "random_insertion")}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "areas": self.areas()}


def top_masks(saliency: np.ndarray, ks: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """(len(ks), H, W) bool: the ``k``% most salient pixels (ties in a seeded random
    order), nested as k grows."""
    flat = saliency.reshape(-1).astype(np.float64)
    order = np.lexsort((rng.random(flat.size), -flat))  # by saliency, then at random
    rank = np.empty(flat.size, np.int64)
    rank[order] = np.arange(flat.size)
    counts = [int(round(k / 100.0 * flat.size)) for k in ks]
    return np.stack([(rank < c).reshape(saliency.shape) for c in counts])


def faithfulness_curves(policy: Policy, obs: Observation, maps: Mapping[str, np.ndarray],
                        ks: Sequence[float] = DEFAULT_KS, sigma: float = 10.0,
                        seed: int = 0, batch_size: int = 50,
                        progress: Callable[[int, int], None] | None = None,
                        should_cancel: Callable[[], bool] | None = None
                        ) -> FaithfulnessCurves:
    """Deletion and insertion curves of ``maps`` (camera -> map at any size; resized to the
    camera's image) on ``obs``, and of a random map, with the ISS fill (the toolkit's
    blur of ``sigma`` pixels)."""
    ks = sorted(float(k) for k in ks)
    if not ks or ks[0] < 0 or ks[-1] > 100:
        raise VLAScopeError("faithfulness levels k must be percentages in [0, 100]")
    cams = [c for c in maps if c in obs.images]
    if not cams:
        raise VLAScopeError(f"no map for the observation's cameras {sorted(obs.images)}")
    check_frame(obs, cams)
    rng = np.random.default_rng(seed)
    fills = {c: np.clip(toolkit_blur(obs.images[c], sigma), 0, 255).astype(np.uint8)
             for c in cams}  # the toolkit's fill, truncated to uint8 as its blend is
    frames: list[Observation] = []
    for ranking in ("map", "random"):
        keep: dict[str, np.ndarray] = {}
        for c in cams:
            h, w = obs.images[c].shape[:2]
            sal = _resized(np.asarray(maps[c], np.float32), (h, w))
            if ranking == "random":
                sal = rng.random((h, w)).astype(np.float32)
            keep[c] = top_masks(sal, ks, rng)
        for mode in ("deletion", "insertion"):
            for i in range(len(ks)):
                images = dict(obs.images)
                for c in cams:
                    shown = ~keep[c][i] if mode == "deletion" else keep[c][i]
                    images[c] = np.where(shown[..., None], obs.images[c], fills[c])
                frames.append(replace(obs, images=images))
    with common_noise(policy):
        divergences, _ = batch_divergences(policy, obs, len(frames),
                                           lambda start, end: frames[start:end], batch_size,
                                           None, progress, should_cancel, "faithfulness",
                                           "frames")
    n = len(ks)
    parts = [divergences[i * n:(i + 1) * n].tolist() for i in range(4)]
    return FaithfulnessCurves(list(ks), parts[0], parts[1], parts[2], parts[3])


def _resized(sal: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if sal.shape == size:
        return sal
    import cv2

    return cv2.resize(sal, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def episode_faithfulness(policy: Policy, ep: Any, maps: Mapping[str, np.ndarray], n: int,
                         sigma: float = 10.0, seed: int = 0,
                         ks: Sequence[float] = DEFAULT_KS) -> dict[str, Any]:
    """Curves on ``n`` steps spread over the episode (camera -> (T, H, W) maps), and their
    mean areas: what ``vlascope iss --faithfulness N`` stores and prints."""
    from ..episode import episode_observation

    cams = list(maps)
    size = getattr(policy, "image_size", None)
    n_steps = len(next(iter(maps.values())))
    steps = sorted({int(t) for t in np.linspace(0, n_steps - 1, min(n, n_steps))})
    per_step = {}
    for t in steps:
        obs = episode_observation(ep, t, cams, size)
        curves = faithfulness_curves(policy, obs, {c: maps[c][t] for c in cams}, ks, sigma,
                                     seed + t)
        per_step[str(t)] = curves.as_dict()
    names = ("deletion", "insertion", "random_deletion", "random_insertion")
    mean = {k: float(np.mean([s["areas"][k] for s in per_step.values()])) for k in names}
    return {"steps": steps, "ks": [float(k) for k in ks], "mean_areas": mean,
            "per_step": per_step}
