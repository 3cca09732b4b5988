"""Baseline saliency maps that ISS is compared against: attention (last layer or rollout),
token norm, and input gradient. Each needs a capability a policy may or may not expose; a
policy without it gets a clear error, never a silent zero map.

- attention: how much the action read-out tokens attend to each visual token, averaged over
  heads (``attention_maps`` + ``visual_token_layout`` + ``readout_positions``); "rollout"
  multiplies the head-averaged, residual-corrected maps through the layers (Abnar &
  Zuidema, 2020).
- token norm: L2 norm of each visual token's activation at a hook point (``hook``).
- gradient: per-pixel norm of the Jacobian of the action chunk with respect to the image
  (``actions_from_pixels``). It is the first-order version of ISS's divergence: for a small
  change dx of the image, the action MSE is dx^T J^T J dx / n, and the map is the diagonal
  of J^T J summed over colour channels, square-rooted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import VLAScopeError
from ..hook_ops import Capture
from ..policy import Observation, check_action_chunks, common_noise
from .iss import SaliencyMaps, check_frame, grid_scores_to_maps

ATTENTION_MODES = ("last", "rollout")


def _require(policy: Any, *names: str, what: str) -> None:
    missing = [n for n in names if not hasattr(policy, n)]
    if missing:
        raise VLAScopeError(f"{type(policy).__name__} cannot give {what} saliency: it does "
                            f"not expose {', '.join(missing)}()")


def _visual_positions(layout: dict) -> np.ndarray:
    return np.concatenate([np.asarray(layout[c]["positions"]) for c in layout])


def _base(policy: Any, obs: Observation) -> np.ndarray:
    with common_noise(policy):  # as actions_from_pixels; the episode's noise stays put
        base = policy.batch_infer([obs])
    return check_action_chunks(base, 1, np.asarray(base).shape[-1])[0]


def attention_saliency(policy: Any, obs: Observation, mode: str = "rollout") -> SaliencyMaps:
    """Attention of the action read-out tokens to the visual tokens, on each camera grid."""
    _require(policy, "attention_maps", "visual_token_layout", "readout_positions",
             what="attention")
    if mode not in ATTENTION_MODES:
        raise VLAScopeError(f"attention mode must be one of {ATTENTION_MODES}, got '{mode}'")
    layout = policy.visual_token_layout()
    check_frame(obs, list(layout))
    layers = [a[0].double().mean(0) for a in policy.attention_maps([obs])]  # (T, T) each
    if mode == "last":
        flow = layers[-1]
    else:
        eye = torch.eye(layers[0].shape[0], dtype=torch.float64)
        flow = eye
        for a in layers:
            a = 0.5 * a + 0.5 * eye
            flow = (a / a.sum(-1, keepdim=True)) @ flow
    rows = torch.as_tensor(policy.readout_positions())
    cols = torch.as_tensor(_visual_positions(layout))
    scores = flow[rows][:, cols].mean(0).numpy()
    return SaliencyMaps(grid_scores_to_maps(scores, layout, obs), f"attention-{mode}", 1,
                        _base(policy, obs), np.zeros(0), {"mode": mode})


def token_norm_saliency(policy: Any, obs: Observation, hook: str | None = None) -> SaliencyMaps:
    """L2 norm of each visual token's activation at ``hook`` (default: the last trunk
    layer's residual stream, where the tokens have been read by the whole trunk)."""
    _require(policy, "hook", "layers", "visual_token_layout", what="token norm")
    layout = policy.visual_token_layout()
    check_frame(obs, list(layout))
    names = list(policy.layers())
    groups = getattr(policy, "token_groups", lambda _layer: {"visual": [0]})
    # the last residual stream that holds the visual tokens (an action expert's does not)
    resid = [n for n in names if n.endswith(".resid") and groups(n).get("visual")]
    hook = hook or (resid[-1] if resid else "tokens.visual")
    if hook not in names:
        raise VLAScopeError(f"no hook point '{hook}' (known: {', '.join(names)})")
    seen = Capture(rows=1)
    with policy.hook(hook, seen):
        base = _base(policy, obs)
    x = torch.from_numpy(seen.values[0][0])
    # tokens.visual holds only the visual tokens; a trunk layer holds the whole sequence
    picked = x if x.shape[0] == len(_visual_positions(layout)) else x[_visual_positions(layout)]
    scores = picked.norm(dim=-1).double().numpy()
    return SaliencyMaps(grid_scores_to_maps(scores, layout, obs), "token-norm", 1, base,
                        np.zeros(0), {"hook": hook})


def gradient_saliency(policy: Any, obs: Observation) -> SaliencyMaps:
    """Per-pixel Jacobian norm of the action chunk (one batched backward pass)."""
    _require(policy, "actions_from_pixels", "cameras", what="gradient")
    cams = list(policy.cameras)
    check_frame(obs, cams)
    base = _base(policy, obs)
    n_out = base.size
    pixels = {c: torch.from_numpy(obs.images[c]).float()[None].repeat(n_out, 1, 1, 1)
              .requires_grad_(True) for c in cams}
    with torch.enable_grad():
        actions = policy.actions_from_pixels([obs] * n_out, pixels).reshape(n_out, -1)
        # row i of the batch carries output i: one backward pass gives the whole Jacobian;
        # autograd.grad (not backward) leaves the policy's parameters untouched
        grads = torch.autograd.grad(actions.diagonal().sum(), [pixels[c] for c in cams],
                                    allow_unused=True)
    maps = {}
    for c, grad in zip(cams, grads, strict=True):  # an unused camera gets no gradient at all
        grad = grad if grad is not None else torch.zeros_like(pixels[c])
        maps[c] = grad.double().pow(2).sum(dim=(0, 3)).sqrt().float().numpy()
    return SaliencyMaps(maps, "gradient", 1, base, np.zeros(0), {"outputs": n_out})
