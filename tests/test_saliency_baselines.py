"""Baseline saliency (attention, token norm, gradient) next to ISS: known answers where the
dependence is known, the shipped policy's capabilities, and clear errors where a policy
lacks the capability."""

import numpy as np
import pytest
import torch

from vlascope.core.errors import VLAScopeError
from vlascope.core.metrics import nmr_at_k
from vlascope.core.policy import Observation
from vlascope.core.regions import NUISANCE, SUPPORT
from vlascope.core.saliency import METHODS
from vlascope.core.saliency.baselines import (
    attention_saliency,
    gradient_saliency,
    token_norm_saliency,
)
from vlascope.core.saliency.iss import ISSConfig
from vlascope.core.saliency.methods import explainer
from vlascope.policies.reference.policy import ReferencePolicy

H = W = 48
BOX = (10, 30, 12, 36)


class DifferentiableRegionPolicy:
    """Actions are smooth functions of one rectangle of the front image only."""

    cameras = ("front", "wrist")

    def actions_from_pixels(self, observations, pixels):
        y0, y1, x0, x1 = BOX
        patch = pixels["front"][:, y0:y1, x0:x1] / 255.0
        a = torch.stack([(patch ** 2).mean(dim=(1, 2, 3)), patch[..., 0].mean(dim=(1, 2))], -1)
        return a[:, None, :]

    def batch_infer(self, observations):
        pixels = {c: torch.from_numpy(np.stack([o.images[c] for o in observations])).float()
                  for c in self.cameras}
        return self.actions_from_pixels(observations, pixels).numpy()


def frame(seed=0, size=H):
    rng = np.random.default_rng(seed)
    images = {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
              for c in ("front", "wrist")}
    return Observation(images, np.zeros(4, np.float32), "pick up the red cube")


def test_gradient_known_answer_lies_in_the_region_read():
    res = gradient_saliency(DifferentiableRegionPolicy(), frame())
    inside = np.zeros((H, W), bool)
    inside[BOX[0]:BOX[1], BOX[2]:BOX[3]] = True
    assert res.maps["front"][inside].min() > 0
    assert res.maps["front"][~inside].max() == 0 and res.maps["wrist"].max() == 0
    regions = {c: np.full((H, W), NUISANCE, np.uint8) for c in ("front", "wrist")}
    regions["front"][inside] = SUPPORT
    assert nmr_at_k(res.maps, regions, 10) == 0.0


def test_gradient_matches_finite_differences():
    """The map is the Jacobian column norm: check one pixel against finite differences."""
    policy, obs = DifferentiableRegionPolicy(), frame(1)
    res = gradient_saliency(policy, obs)
    y, x = 20, 20
    base = policy.batch_infer([obs])[0].ravel()
    cols = []
    for ch in range(3):
        img = obs.images["front"].astype(np.float64)
        pixels = {c: torch.from_numpy(np.stack([obs.images[c]])).double() for c in obs.images}
        img[y, x, ch] += 1.0
        pixels["front"] = torch.from_numpy(img)[None]
        cols.append(policy.actions_from_pixels([obs], pixels).numpy().ravel() - base)
    expected = np.sqrt(sum((c ** 2).sum() for c in cols))
    assert res.maps["front"][y, x] == pytest.approx(expected, rel=0.02)


@pytest.fixture(scope="module")
def policy():
    return ReferencePolicy(name="reference")


@pytest.fixture(scope="module")
def live_frame(scene, policy):
    scene.reset("stack_red_on_blue", 3)
    return scene.observe(cameras=policy.cameras, size=policy.image_size).observation


@pytest.mark.parametrize("mode", ["last", "rollout"])
def test_attention_on_the_reference_policy(policy, live_frame, mode):
    res = attention_saliency(policy, live_frame, mode)
    g = policy.cfg.grid
    assert set(res.maps) == set(policy.cameras)
    for m in res.maps.values():
        assert m.shape == policy.image_size and np.isfinite(m).all() and (m >= 0).all()
    # one value per token spread over its pixels: as many distinct values as tokens at most
    assert len(np.unique(res.maps["front"])) <= g * g
    total = sum(m[::16, ::16].sum() for m in res.maps.values())  # one pixel per token
    assert 0 < total <= 1.0 + 1e-6  # attention to visual tokens is part of a distribution


def test_token_norm_on_the_reference_policy(policy, live_frame):
    res = token_norm_saliency(policy, live_frame)
    assert res.config["hook"] == f"trunk.{policy.cfg.n_layers - 1}.resid"
    assert all((m > 0).all() for m in res.maps.values())
    at_input = token_norm_saliency(policy, live_frame, hook="tokens.visual")
    assert not np.allclose(at_input.maps["front"], res.maps["front"])
    with pytest.raises(VLAScopeError, match="no hook point"):
        token_norm_saliency(policy, live_frame, hook="trunk.99.resid")


@pytest.mark.parametrize("head", ["l1", "flow"])
def test_gradient_on_the_reference_policy(live_frame, head):
    policy = ReferencePolicy(name="reference", head=head)
    res = gradient_saliency(policy, live_frame)
    assert all(m.shape == policy.image_size and np.isfinite(m).all() for m in res.maps.values())
    assert res.maps["front"].max() > 0 and res.maps["wrist"].max() > 0
    assert res.config["outputs"] == policy.cfg.horizon * policy.cfg.action_dim
    # gradients must not leak into the policy's parameters
    assert all(p.grad is None for p in policy.trunk.parameters())


def test_every_method_runs_by_name(policy, live_frame):
    frames = [live_frame] * 4
    for method in METHODS:
        explain = explainer(policy, method, ISSConfig(n_masks=10), frames)
        res = explain(live_frame, policy.cameras)
        assert set(res.maps) == set(policy.cameras), method
    with pytest.raises(VLAScopeError, match="unknown saliency method"):
        explainer(policy, "lime", ISSConfig())


def test_policies_without_the_capability_get_a_clear_error():
    class Plain:
        def batch_infer(self, observations):
            return np.zeros((len(observations), 1, 2))

    obs = frame()
    for fn, what in ((attention_saliency, "attention"), (token_norm_saliency, "token norm"),
                     (gradient_saliency, "gradient")):
        with pytest.raises(VLAScopeError, match=f"cannot give {what} saliency"):
            fn(Plain(), obs)
