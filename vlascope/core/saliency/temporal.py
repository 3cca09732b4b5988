"""ISS over a recorded episode, two ways, stored in the episode file with how they were made:

- ``pooled_episode_iss`` (the default of ``vlascope iss`` and the inspector's live mode):
  every step explained at a budget of forward passes, maps pooled over time (pooled.py);
- ``episode_iss``: the toolkit's way, every ``every``-th step (it uses 10) explained with N
  masks and linearly interpolated in between, with the interpolation error measured on
  held-out steps and reported, not hidden.
benchmarks/episode_iss.py measures both against per-step ground truth at equal passes
(docs/benchmarks.md, "Episode ISS"): pooling is nearer on average and between keyframes,
keyframes on short episodes whose saliency changes within a few steps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..episode import Episode, episode_observation, update_episode
from ..errors import CancelledError, EpisodeFormatError, VLAScopeError
from ..policy import Policy
from . import ISS_METHODS
from .iss import ISSConfig, SaliencyMaps
from .methods import Explainer, explainer, stored_name
from .pooled import PooledMaps


@dataclass
class EpisodeSaliency:
    method: str
    maps: dict[str, np.ndarray]  # camera -> (T, h, w) float32
    computed_steps: list[int]
    check_steps: list[int]
    interpolation_error: float | None  # mean relative L2 error on the held-out steps
    interpolation_corr: float | None  # mean correlation on the held-out steps
    made: dict[str, Any] = field(default_factory=dict)  # how: stored with the maps


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
    cams, size, explain = _prepare(policy, ep, config, cameras, method)
    steps = steps_to_compute(ep.n_steps, every)
    mids = [(a + b) // 2 for a, b in zip(steps[:-1], steps[1:], strict=False) if b - a > 1]
    check_steps = [mids[i] for i in np.linspace(0, len(mids) - 1, min(check, len(mids)),
                                                dtype=int)] if mids and check else []
    todo = steps + [s for s in check_steps if s not in steps]
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
    err = float(np.mean(errs)) if errs else None
    corr = float(np.mean(corrs)) if corrs else None
    return EpisodeSaliency(stored_name(method, config), maps, steps, check_steps, err, corr,
                           {"config": config.__dict__, "every": every,
                            "computed_steps": steps, "check_steps": check_steps,
                            "interpolation_error": err, "interpolation_corr": corr})


def _prepare(policy: Policy, ep: Episode, config: ISSConfig, cameras: Sequence[str] | None,
             method: str) -> tuple[list[str], Any, Explainer]:
    """The cameras to explain, the policy's image size, and the explainer of ``method``
    (token ISS takes its mean token from this episode)."""
    if ep.n_steps == 0 or not ep.cameras:
        raise EpisodeFormatError(f"{ep.path}: episode has no frames to explain")
    cams = list(cameras or getattr(policy, "cameras", None) or ep.cameras)
    missing = [c for c in cams if c not in ep.cameras]
    if missing:
        raise EpisodeFormatError(f"{ep.path}: no frames for camera(s) {missing}")
    size = getattr(policy, "image_size", None)
    reference = ([episode_observation(ep, t, cams, size)
                  for t in np.linspace(0, ep.n_steps - 1, min(ep.n_steps, 50), dtype=int)]
                 if method == "token-iss" else [])
    return cams, size, explainer(policy, method, config, reference)


def step_config(config: ISSConfig, budget: int, t: int) -> ISSConfig:
    """The per-frame settings of step ``t`` at ``budget`` passes per step: budget - 1 masks
    (one pass is the step's unperturbed action) and seeds of its own, so neighbouring steps'
    errors are independent and pooling averages them out."""
    if budget < 2:
        raise VLAScopeError("a budget needs at least 2 forward passes per step (the "
                            "unperturbed action and one mask)")
    return replace(config, n_masks=budget - 1, seed=config.seed + t)


def pooled_episode_iss(policy: Policy, ep: Episode, config: ISSConfig | None = None,
                       budget: int = 10, bandwidth: float | None = None,
                       cameras: Sequence[str] | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       should_cancel: Callable[[], bool] | None = None,
                       method: str = "iss") -> EpisodeSaliency:
    """Maps for every step of ``ep`` at ``budget`` forward passes per step, pooled over time
    (pooled.py; ``bandwidth`` in steps fixes the pooling, None picks it by cross-validation,
    0 is the per-frame estimator on every step). ISS methods only: the others cost one pass
    per step and need no pooling (``episode_iss(every=1)``)."""
    config = config or ISSConfig()
    if method not in ISS_METHODS:
        raise VLAScopeError(f"a budget per step applies to ISS ({', '.join(ISS_METHODS)}); "
                            f"explain every step with '{method}' using --every 1")
    step_config(config, budget, 0).check()
    cams, size, explain = _prepare(policy, ep, config, cameras, method)
    pool = PooledMaps(bandwidth)
    for t in range(ep.n_steps):
        if should_cancel is not None and should_cancel():
            raise CancelledError(f"episode ISS cancelled at step {t}")
        obs = episode_observation(ep, t, cams, size)
        pool.add(t, explain(obs, cams, step_config(config, budget, t)).maps)
        if progress is not None:
            progress(t + 1, ep.n_steps)
    return pooled_result(stored_name(method, config), config, budget, pool)


def pooled_result(name: str, config: ISSConfig, budget: int,
                  pool: PooledMaps) -> EpisodeSaliency:
    """Every step's pooled maps (each pooled with all steps) and how they were made, to
    store: from ``pooled_episode_iss`` and from the inspector's live mode alike."""
    pooled = pool.pooled()
    steps = pool.steps
    maps = {c: np.stack([pooled[t][c] for t in steps]) for c in pooled[steps[0]]}
    h = pool.bandwidth
    return EpisodeSaliency(name, maps, steps, [], None, None,
                           {"config": replace(config, n_masks=budget - 1).__dict__,
                            "seeds": "config seed + step", "budget": budget,
                            # in steps; "inf" (JSON has no infinity): the whole episode
                            "bandwidth": h if np.isfinite(h) else "inf",
                            "computed_steps": steps})


def store(path: str, result: EpisodeSaliency) -> None:
    """Write the maps into the episode file (atomically) with how they were made."""
    update_episode(path, {f"saliency/{result.method}/{c}": m for c, m in result.maps.items()},
                   {f"saliency.{result.method}": result.made})
