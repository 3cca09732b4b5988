"""One name per way of explaining a frame, so episodes, the CLI and the GUI pick a method by
name: ISS (pixel or token) and the baselines it is compared against."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import VLAScopeError
from ..policy import Observation
from . import ISS_METHODS, METHODS
from .baselines import attention_saliency, gradient_saliency, token_norm_saliency
from .iss import ISSConfig, SaliencyMaps, pixel_iss, token_iss, visual_token_mean

# (frame, cameras[, config]) -> maps; the optional config replaces the one given to
# ``explainer`` for that call (episode estimators vary masks and seeds per step)
Explainer = Callable[..., SaliencyMaps]


def explainer(policy: Any, method: str, config: ISSConfig,
              reference_frames: Sequence[Observation] = ()) -> Explainer:
    """A function frame -> maps. ``reference_frames`` give token ISS its mean embedding
    (the modality mean over recorded frames)."""
    if method == "iss":
        return lambda obs, cams, cfg=config: pixel_iss(policy, obs, cfg, cameras=cams)
    if method == "token-iss":
        if not reference_frames:
            raise VLAScopeError("token ISS needs recorded frames for the mean visual token")
        mean = visual_token_mean(policy, reference_frames, config.batch_size)
        return lambda obs, cams, cfg=config: token_iss(policy, obs, mean, cfg)
    if method.startswith("attention-"):
        mode = method.removeprefix("attention-")
        return lambda obs, cams, cfg=None: attention_saliency(policy, obs, mode)
    if method == "token-norm":
        return lambda obs, cams, cfg=None: token_norm_saliency(policy, obs)
    if method == "gradient":
        return lambda obs, cams, cfg=None: gradient_saliency(policy, obs)
    raise VLAScopeError(f"unknown saliency method '{method}' (known: {', '.join(METHODS)})")


def stored_name(method: str, config: ISSConfig) -> str:
    """The name maps are stored under: ISS names carry their estimator."""
    if method in ISS_METHODS:
        return f"{'token-' if method == 'token-iss' else ''}iss-{config.estimator}"
    return method



