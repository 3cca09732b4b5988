"""Interventional Saliency Scores (ISS), as defined by the ISS/NMR paper and its toolkit,
with better estimators of the same quantity.

Pixel ISS for one frame: N random masks m_k (1 keep, 0 drop), dropped pixels filled with a
Gaussian blur of the frame, divergence d_k = mean squared difference between the perturbed
and the unperturbed action chunk, and per camera

    S = sum_k d_k (1 - m_k) / (N (1 - p_keep))

Estimators (``ESTIMATORS``):
- ``toolkit``: the toolkit's own definition, value for value (strip.py: one Bernoulli grid
  across the views side by side, cv2 bilinear upsampling, cv2 blur, truncation);
- ``toolkit-improved``: the same expectation under the same mask distribution with less
  variance: stratified cells (every strip cell dropped in N (1 - p_keep) masks, rounded at
  random when not whole) and, per cell, the mean divergence of the masks that drop it,
  upsampled as the masks are (strip.py). Where every cell is dropped equally often this is
  the mean divergence as a control variate,
      S = sum_k (d_k - mean d) (1 - m_k) / (N (1 - p_keep)) + mean d;
- ``rise`` / ``rise-improved``: our earlier estimators, per-camera RISE masks with a random
  shift (masks.py), rounding; a different mask distribution, so a different expected map
  (kept for results made with them).

Token ISS replaces visual tokens (a Bernoulli subset) by their modality mean embedding
through the policy's ``tokens.visual`` hook and maps the scores back onto each camera grid
(``*-improved``: stratified subsets and the control variate).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import CancelledError, ObservationError, VLAScopeError
from ..hook_ops import Capture, MeanReplace
from ..policy import Observation, Policy, check_action_chunks, common_noise
from . import ESTIMATORS
from .masks import RisePerturbation, stratified_drops
from .strip import ToolkitPerturbation

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


@dataclass(frozen=True)
class ISSConfig:
    n_masks: int = 100  # the paper's setting (the toolkit's default is 500)
    grid: int = 7
    p_keep: float = 0.3
    sigma: float = 10.0  # blur of the fill, in pixels of the policy's image
    estimator: str = "toolkit"
    batch_size: int = 50  # forward passes per policy call: bounds memory for any N
    seed: int = 0

    def check(self) -> None:
        if self.n_masks < 1 or self.grid < 1 or self.batch_size < 1:
            raise VLAScopeError("ISS needs n_masks, grid and batch_size of at least 1")
        if not 0.0 < self.p_keep < 1.0:
            raise VLAScopeError(f"keep probability must be in (0, 1), got {self.p_keep}")
        if self.sigma < 0:
            raise VLAScopeError("blur sigma must be >= 0")
        if self.estimator not in ESTIMATORS:
            raise VLAScopeError(f"unknown ISS estimator '{self.estimator}' ({ESTIMATORS})")


@dataclass
class SaliencyMaps:
    """Per-camera maps of one frame and how they were made."""

    maps: dict[str, np.ndarray]  # camera -> (H, W) float32 (token maps: upsampled)
    method: str
    n_forward: int
    base_actions: np.ndarray  # (horizon, action_dim)
    divergences: np.ndarray  # (N,)
    config: dict[str, Any]


def check_frame(obs: Observation, cameras: Sequence[str]) -> None:
    """The frame has an image for every camera, all of the same valid shape."""
    if not cameras:
        raise ObservationError("saliency needs at least one camera image")
    missing = [c for c in cameras if c not in obs.images]
    if missing:
        raise ObservationError(f"observation has no image for camera(s) {missing}")
    obs.check_images()


def _divergence(actions: np.ndarray, base: np.ndarray) -> np.ndarray:
    return ((actions - base[None]) ** 2).mean(axis=(1, 2))


def batch_divergences(policy: Policy, obs: Observation, n: int,
                      batch_of: Callable[[int, int], list[Observation]], batch_size: int,
                      on_batch: Callable[[int, int, np.ndarray], None] | None = None,
                      progress: ProgressFn | None = None,
                      should_cancel: CancelFn | None = None, what: str = "ISS",
                      unit: str = "masks") -> tuple[np.ndarray, np.ndarray]:
    """The divergence of each of ``n`` perturbed frames' actions (``batch_of(start, end)``
    makes them) from the clean frame's, ``batch_size`` per policy call; the clean frame
    rides with the first batch (one call less). Returns (divergences, clean actions)."""
    divergences = np.empty(n)
    base = action_dim = None
    for start in range(0, n, batch_size):
        if should_cancel is not None and should_cancel():
            raise CancelledError(f"{what} cancelled after {start} of {n} {unit}")
        end = min(n, start + batch_size)
        batch = batch_of(start, end)
        if base is None:
            out = policy.batch_infer([obs, *batch])
            action_dim = np.asarray(out).shape[-1]
            out = check_action_chunks(out, end - start + 1, action_dim)
            base, acts = out[0], out[1:]
        else:
            acts = check_action_chunks(policy.batch_infer(batch), end - start, action_dim)
        divergences[start:end] = _divergence(acts, base)
        if on_batch is not None:
            on_batch(start, end, divergences[start:end])
        if progress is not None:
            progress(end, n)
    return divergences, base


def pixel_iss(policy: Policy, obs: Observation, config: ISSConfig = ISSConfig(),
              cameras: Sequence[str] | None = None, progress: ProgressFn | None = None,
              should_cancel: CancelFn | None = None) -> SaliencyMaps:
    """Pixel ISS of one frame over the given cameras (default: every image). A sampling
    policy acts under common noise, so divergences measure the masks only."""
    with common_noise(policy):
        return _pixel_iss(policy, obs, config, cameras, progress, should_cancel)


def _pixel_iss(policy: Policy, obs: Observation, config: ISSConfig,
               cameras: Sequence[str] | None, progress: ProgressFn | None,
               should_cancel: CancelFn | None) -> SaliencyMaps:
    config.check()
    cams = list(cameras or obs.images)
    check_frame(obs, cams)
    n = config.n_masks
    family = ToolkitPerturbation if config.estimator.startswith("toolkit") else RisePerturbation
    source = family(obs.images, cams, n, config.grid, config.p_keep, config.sigma,
                    config.seed, stratified=config.estimator.endswith("improved"))

    def batch_of(start: int, end: int) -> list[Observation]:
        perturbed = source.batch(start, end)
        return [replace(obs, images={**obs.images, **{c: perturbed[c][i] for c in cams}})
                for i in range(end - start)]

    divergences, base = batch_divergences(policy, obs, n, batch_of, config.batch_size,
                                          lambda _s, _e, d: source.add(d), progress,
                                          should_cancel, "ISS", "masks")
    mean_d = divergences.mean()
    if config.estimator == "toolkit-improved":
        maps = source.cell_means(float(mean_d))
    else:
        weighted, dropped = source.sums()
        norm = n * (1.0 - config.p_keep)
        maps = {}
        for c in cams:
            if config.estimator.endswith("improved"):  # the mean divergence as control variate
                maps[c] = ((weighted[c] - mean_d * dropped[c]) / norm + mean_d
                           ).astype(np.float32)
            else:
                maps[c] = (weighted[c] / norm).astype(np.float32)
    return SaliencyMaps(maps, f"iss-{config.estimator}", n + 1, base, divergences,
                        asdict(config))


def visual_token_mean(policy: Any, observations: Sequence[Observation],
                      batch_size: int = 50) -> torch.Tensor:
    """The modality mean of the visual token embeddings (``tokens.visual``) over frames."""
    _require_token_hooks(policy)
    total, count = None, 0
    grab = Capture()
    with policy.hook("tokens.visual", grab):
        for i in range(0, len(observations), batch_size):
            grab.values.clear()
            policy.batch_infer(list(observations[i:i + batch_size]))
            for x in grab.values:
                s = torch.from_numpy(x).sum(dim=(0, 1))
                total = s if total is None else total + s
                count += x.shape[0] * x.shape[1]
    if not count:
        raise VLAScopeError("no frames to compute the mean visual token from")
    return total / count


def _require_token_hooks(policy: Any) -> None:
    if not (hasattr(policy, "hook") and hasattr(policy, "visual_token_layout")):
        raise VLAScopeError(f"{type(policy).__name__} exposes no visual token hook; "
                            "token ISS needs hook() and visual_token_layout()")


def token_iss(policy: Any, obs: Observation, mean_token: torch.Tensor,
              config: ISSConfig = ISSConfig(), progress: ProgressFn | None = None,
              should_cancel: CancelFn | None = None) -> SaliencyMaps:
    """Token ISS: Bernoulli subsets of visual tokens replaced by the mean embedding (under
    common noise, as pixel ISS)."""
    with common_noise(policy):
        return _token_iss(policy, obs, mean_token, config, progress, should_cancel)


def _token_iss(policy: Any, obs: Observation, mean_token: torch.Tensor, config: ISSConfig,
               progress: ProgressFn | None, should_cancel: CancelFn | None) -> SaliencyMaps:
    config.check()
    _require_token_hooks(policy)
    layout = policy.visual_token_layout()
    cams = list(layout)
    check_frame(obs, cams)
    base = policy.batch_infer([obs])
    action_dim = np.asarray(base).shape[-1]
    base = check_action_chunks(base, 1, action_dim)[0]
    n_tok = sum(int(np.prod(layout[c]["grid"])) for c in cams)
    rng = np.random.default_rng(config.seed)
    if config.estimator.endswith("improved"):
        keep_all = stratified_drops(config.n_masks, n_tok, config.p_keep, rng).T
    else:
        keep_all = (rng.random((config.n_masks, n_tok)) < config.p_keep).astype(np.float32)
    divergences = np.empty(config.n_masks)
    mean = mean_token.detach().float().cpu().numpy()
    for start in range(0, config.n_masks, config.batch_size):
        if should_cancel is not None and should_cancel():
            raise CancelledError(f"token ISS cancelled after {start} masks")
        end = min(config.n_masks, start + config.batch_size)
        with policy.hook("tokens.visual", MeanReplace(mean, keep_all[start:end])):
            acts = check_action_chunks(policy.batch_infer([obs] * (end - start)),
                                       end - start, action_dim)
        divergences[start:end] = _divergence(acts, base)
        if progress is not None:
            progress(end, config.n_masks)
    drop = 1.0 - keep_all
    weighted = (divergences[:, None] * drop).sum(0)
    if config.estimator.endswith("improved"):  # per token: mean divergence of its drops
        counts = drop.sum(0)
        scores = np.divide(weighted, counts, out=np.full(n_tok, divergences.mean()),
                           where=counts > 0)
    else:
        scores = weighted / (config.n_masks * (1 - config.p_keep))
    return SaliencyMaps(grid_scores_to_maps(scores, layout, obs),
                        f"token-iss-{config.estimator}", config.n_masks + 1, base,
                        divergences, asdict(config))


def grid_scores_to_maps(scores: np.ndarray, layout: dict[str, dict],
                        obs: Observation) -> dict[str, np.ndarray]:
    """One score per visual token (cameras in layout order) -> per-camera image-sized maps,
    each token's score spread over the pixels it covers."""
    maps, offset = {}, 0
    for c in layout:
        gh, gw = layout[c]["grid"]
        grid = torch.from_numpy(np.asarray(scores[offset:offset + gh * gw], np.float32)
                                .reshape(1, 1, gh, gw))
        offset += gh * gw
        h, w = obs.images[c].shape[:2]
        maps[c] = F.interpolate(grid, size=(h, w), mode="nearest")[0, 0].numpy()
    return maps
