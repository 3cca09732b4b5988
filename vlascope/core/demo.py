"""The one-command steering demo: a policy with and without a steering intervention from
the same seed, explained with ISS, ready to be composed into a side-by-side video.

1. record the unmodified rollout; 2. train an SAE on a layer's visual tokens over its
frames; 3. pick the feature that changes most over the episode (or the one given); 4. run
A/B with that feature steered at ``alpha``; 5. ISS maps for both episodes, computed every
``every`` steps and interpolated in between.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compare import Comparison, compare
from .episode import Episode, episode_observation
from .features import FeatureSet, capture_frames, lively_feature, train_features, visual_positions
from .interventions import Steer
from .policy import Policy
from .runner import rollout
from .sae import save_sae
from .saliency.iss import ISSConfig
from .saliency.temporal import episode_iss, store
from .scene import Scene

Say = Callable[[str], None]


@dataclass
class SteeringDemo:
    comparison: Comparison
    features: FeatureSet
    feature: int
    alpha: float

    @property
    def paths(self) -> tuple[str, str]:
        return str(self.comparison.baseline.path), str(self.comparison.intervened.path)

    def summary(self) -> dict[str, Any]:
        return {"feature": self.feature, "alpha": self.alpha, "layer": self.features.layer,
                "sae": self.features.path, **self.comparison.summary()}


def steering_demo(scene: Scene, policy: Policy, out_dir: str | Path, *, task: str,
                  seed: int = 0, layer: str = "", alpha: float = 3.0,
                  feature: int | None = None, sae_steps: int = 300, n_masks: int = 50,
                  every: int = 5, policy_name: str = "", say: Say | None = None
                  ) -> SteeringDemo:
    say = say or (lambda _m: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    layers = list(policy.layers())
    resid = [n for n in layers if n.endswith(".resid")]
    layer = layer or (resid[len(resid) // 2] if resid else "tokens.visual")
    say(f"recording the unmodified rollout of {task} (seed {seed})")
    first = out / "capture.h5"
    rollout(scene, policy, task, seed, record_to=first, policy_name=policy_name,
            overwrite=True)  # the demo's own work folder
    with Episode(first) as ep:
        cams = list(getattr(policy, "cameras", None) or ep.cameras)
        size = getattr(policy, "image_size", None)
        frames = [episode_observation(ep, t, cams, size) for t in range(ep.n_steps)]
    say(f"training an SAE on {layer} over {len(frames)} frames")
    samples = capture_frames(policy, frames, layer)
    fs = train_features(samples, policy.visual_token_layout(), visual_positions(policy, layer),
                        steps=sae_steps, task=task)
    fs.path = str(save_sae(fs.sae, out / "sae"))
    first.unlink()
    feature = lively_feature(fs) if feature is None else int(feature)
    say(f"A/B with feature {feature} steered at alpha {alpha:+g}")
    steer = Steer(sae=fs.path, feature=feature, alpha=float(alpha), layer=layer)
    comp = compare(scene, policy, task, seed, None, [steer.to_dict()], out,
                   policy_name=policy_name, overwrite=True)
    cfg = ISSConfig(n_masks=n_masks)
    for path in (comp.baseline.path, comp.intervened.path):
        say(f"ISS every {every} steps for {Path(path).name}")
        with Episode(path) as ep:
            result = episode_iss(policy, ep, cfg, every=every, check=0)
        store(str(path), result)
    return SteeringDemo(comp, fs, feature, float(alpha))
