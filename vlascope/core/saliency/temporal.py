"""ISS over a recorded episode: computed on every ``every``-th step (the toolkit uses 10)
and linearly interpolated in between, with the interpolation error measured on held-out
steps and reported, not hidden. Maps are stored in the episode file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..episode import Episode, episode_observation, update_episode
from ..errors import CancelledError, EpisodeFormatError, VLAScopeError
from ..policy import Policy
from .iss import ISSConfig, SaliencyMaps
from .methods import explainer, stored_name


@dataclass
class EpisodeSaliency:
    method: str
    maps: dict[str, np.ndarray]  # camera -> (T, h, w) float32
    computed_steps: list[int]
    check_steps: list[int]
    interpolation_error: float | None  # mean relative L2 error on the held-out steps
    interpolation_corr: float | None  # mean correlation on the held-out steps


def steps_to_compute(n_steps: int, every: int) -> list[int]:
    steps = list(range(0, n_steps, every))
    if steps[-1] != n_steps - 1:
        steps.append(n_steps - 1)
    return steps


def interpolate(computed: dict[int, np.ndarray], n_steps: int) -> np.ndarray:
    """Linear interpolation in time between computed maps."""
    keys = sorted(computed)
    out = np.empty((n_steps, *computed[keys[0]].shape), np.float32)
    for a, b in zip(keys[:-1], keys[1:], strict=False):
        for t in range(a, b + 1):
            w = (t - a) / (b - a) if b > a else 0.0
            out[t] = (1 - w) * computed[a] + w * computed[b]
    out[keys[-1]:] = computed[keys[-1]]
    out[:keys[0]] = computed[keys[0]]
    return out


def episode_iss(policy: Policy, ep: Episode, config: ISSConfig | None = None, every: int = 10,
                check: int = 2, cameras: Sequence[str] | None = None,
                progress: Callable[[int, int], None] | None = None,
                should_cancel: Callable[[], bool] | None = None,
                method: str = "iss") -> EpisodeSaliency:
    """Maps for every step of ``ep``; ``check`` extra mid-interval steps measure the
    interpolation error (0 to skip; ``every=1`` computes every step exactly). ``method``
    is one of ``methods.METHODS`` (token ISS takes its mean token from this episode)."""
    config = config or ISSConfig()
    if every < 1:
        raise VLAScopeError("--every must be at least 1")
    if ep.n_steps == 0 or not ep.cameras:
        raise EpisodeFormatError(f"{ep.path}: episode has no frames to explain")
    cams = list(cameras or getattr(policy, "cameras", None) or ep.cameras)
    missing = [c for c in cams if c not in ep.cameras]
    if missing:
        raise EpisodeFormatError(f"{ep.path}: no frames for camera(s) {missing}")
    size = getattr(policy, "image_size", None)
    steps = steps_to_compute(ep.n_steps, every)
    mids = [(a + b) // 2 for a, b in zip(steps[:-1], steps[1:], strict=False) if b - a > 1]
    check_steps = [mids[i] for i in np.linspace(0, len(mids) - 1, min(check, len(mids)),
                                                dtype=int)] if mids and check else []
    todo = steps + [s for s in check_steps if s not in steps]
    reference = ([episode_observation(ep, t, cams, size)
                  for t in np.linspace(0, ep.n_steps - 1, min(ep.n_steps, 50), dtype=int)]
                 if method == "token-iss" else [])
    explain = explainer(policy, method, config, reference)
    results: dict[int, SaliencyMaps] = {}
    for i, t in enumerate(todo):
        if should_cancel is not None and should_cancel():
            raise CancelledError(f"episode ISS cancelled at step {t}")
        obs = episode_observation(ep, t, cams, size)
        results[t] = explain(obs, cams)
        if progress is not None:
            progress(i + 1, len(todo))
    maps = {c: interpolate({t: results[t].maps[c] for t in steps}, ep.n_steps) for c in cams}
    errs, corrs = [], []
    for t in check_steps:
        exact = np.concatenate([results[t].maps[c].ravel() for c in cams])
        interp = np.concatenate([maps[c][t].ravel() for c in cams])
        errs.append(float(np.linalg.norm(interp - exact) / max(np.linalg.norm(exact), 1e-12)))
        corrs.append(float(np.corrcoef(interp, exact)[0, 1]))
    return EpisodeSaliency(stored_name(method, config), maps, steps, check_steps,
                           float(np.mean(errs)) if errs else None,
                           float(np.mean(corrs)) if corrs else None)


def store(path: str, result: EpisodeSaliency, config: ISSConfig, every: int) -> None:
    """Write the maps into the episode file (atomically) with how they were made."""
    update_episode(path, {f"saliency/{result.method}/{c}": m for c, m in result.maps.items()},
                   {f"saliency.{result.method}": {
                       "config": config.__dict__, "every": every,
                       "computed_steps": result.computed_steps,
                       "check_steps": result.check_steps,
                       "interpolation_error": result.interpolation_error,
                       "interpolation_corr": result.interpolation_corr}})
