"""Check that an adapter honours the contract the inspector relies on, on one observation:
the checks every first-party adapter's tests run, and what a plugin author runs on theirs.

Each check raises ``ConformanceError`` with what was expected; ``check_adapter`` returns the
figures it measured so a test can assert on them too.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlascope.core.capture import ActivationCapture
from vlascope.core.errors import VLAScopeError
from vlascope.core.hook_ops import Capture, MeanReplace
from vlascope.core.policy import Observation, common_noise
from vlascope.core.sae import SAEConfig, train_sae
from vlascope.core.saliency.baselines import token_norm_saliency
from vlascope.core.saliency.iss import ISSConfig, pixel_iss, token_iss, visual_token_mean


class ConformanceError(VLAScopeError):
    """An adapter that breaks the policy contract."""


@dataclass
class ConformanceReport:
    chunk_shape: tuple[int, ...] = ()
    visual_tokens: dict[str, int] = field(default_factory=dict)
    hooks_fired: list[str] = field(default_factory=list)
    token_edit_effect: float = 0.0  # max |action change| after replacing one visual token
    iss_maps: dict[str, tuple[int, int]] = field(default_factory=dict)
    norm_hook: str = ""  # where the token-norm baseline read the visual tokens
    sae_fve: float = float("nan")


def _expect(ok: bool, message: str) -> None:
    if not ok:
        raise ConformanceError(message)


def check_adapter(policy: Any, obs: Observation, sae_layer: str | None = None
                  ) -> ConformanceReport:
    """Shapes, layout, hooks, a visual-token edit, noise, ISS (pixel and token) and an SAE
    trained on captured activations; raises ConformanceError on the first failure."""
    rep = ConformanceReport()
    acts = policy.batch_infer([obs, obs])
    rep.chunk_shape = tuple(acts.shape)
    _expect(acts.shape == (2, policy.horizon, policy.action_dim),
            f"batch_infer gave {acts.shape}, expected (2, {policy.horizon}, "
            f"{policy.action_dim})")
    _expect(bool(np.all(np.isfinite(acts))), "non-finite actions")

    layout = policy.visual_token_layout()
    rep.visual_tokens = {c: len(v["positions"]) for c, v in layout.items()}
    for cam, v in layout.items():
        _expect(int(np.prod(v["grid"])) == len(v["positions"]),
                f"camera {cam}: grid {v['grid']} but {len(v['positions'])} positions")
    _expect(list(layout) == list(policy.cameras), "layout cameras differ from cameras")
    n_visual = sum(rep.visual_tokens.values())

    names = list(policy.layers())
    grabs = {name: Capture(rows=1) for name in names}  # hook operations, not functions:
    with common_noise(policy):  # the same check runs on a policy behind `vlascope serve`
        with ExitStack() as stack:
            for name, grab in grabs.items():
                stack.enter_context(policy.hook(name, grab))
            policy.batch_infer([obs])
        seen = {n: tuple(g.values[0].shape) for n, g in grabs.items() if g.values}
        rep.hooks_fired = [n for n in names if n in seen]
        silent = [n for n in names if n not in seen]
        _expect(not silent, f"hook points that never fired: {silent}")
        _expect(seen["tokens.visual"][:2] == (1, n_visual),
                f"tokens.visual holds {seen['tokens.visual']}, expected (1, {n_visual}, d)")

        base = policy.batch_infer([obs])
        tokens = grabs["tokens.visual"].values[0][0]  # (n_visual, d)
        keep = np.ones((1, n_visual), np.float32)
        keep[0, 0] = 0.0  # the first visual token becomes the mean of them all
        with policy.hook("tokens.visual", MeanReplace(tokens.mean(0), keep)):
            edited = policy.batch_infer([obs])
        again = policy.batch_infer([obs])
    rep.token_edit_effect = float(np.abs(edited - base).max())
    _expect(rep.token_edit_effect > 0, "replacing a visual token by the mean left the "
                                       "action unchanged")
    _expect(np.array_equal(base, again), "common_noise() did not give identical actions")

    policy.reset()
    first = policy.batch_infer([obs])
    policy.reset()
    _expect(np.array_equal(first, policy.batch_infer([obs])),
            "reset() did not replay the same actions")

    cfg = ISSConfig(n_masks=8, grid=2, batch_size=4)
    maps = pixel_iss(policy, obs, cfg, cameras=list(policy.cameras))
    rep.iss_maps = {c: tuple(m.shape) for c, m in maps.maps.items()}
    for cam in policy.cameras:
        _expect(rep.iss_maps.get(cam) == obs.images[cam].shape[:2],
                f"pixel ISS map of {cam}: {rep.iss_maps.get(cam)}")
    mean = visual_token_mean(policy, [obs])
    tmaps = token_iss(policy, obs, mean, cfg)
    _expect(set(tmaps.maps) == set(policy.cameras), "token ISS maps miss cameras")
    norms = token_norm_saliency(policy, obs)  # at the last residual stream with the image
    rep.norm_hook = norms.config["hook"]
    _expect(set(norms.maps) == set(policy.cameras), "token-norm maps miss cameras")

    layer = sae_layer or next(n for n in names if n.endswith(".resid"))
    capture = ActivationCapture(policy, [layer])
    vectors = []
    with capture.hooks():
        for _ in range(4):
            policy.batch_infer([obs])
            vectors.append(capture.last[layer].reshape(-1, capture.last[layer].shape[-1]))
    x = np.concatenate(vectors)
    sae, result = train_sae(x, SAEConfig(d_in=x.shape[1], expansion=2, k=4, layer=layer),
                            steps=30, batch_size=64, holdout=0.25)
    rep.sae_fve = float(result.report.fve)
    _expect(np.isfinite(rep.sae_fve), "the SAE trained on captured activations gave NaN")
    return rep
