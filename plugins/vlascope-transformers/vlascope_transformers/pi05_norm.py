"""pi0.5's statistics: LeRobot trains pi0.5 with quantile normalisation (the 1st and 99th
percentiles mapped to -1 and 1) where pi0 uses mean and standard deviation; the state must
land in [-1, 1] because it is cut into bins and written into the prompt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from vlascope.core.errors import PluginError

from .common import stats

EPS = 1e-8


@dataclass
class Normaliser:
    """Maps a feature to the model's range and back: by quantiles (``low``/``high`` are
    q01/q99) or by mean/std; with neither, values pass unchanged."""

    kind: str  # "quantiles", "mean_std" or "identity"
    low: torch.Tensor | None = None  # q01 or mean
    high: torch.Tensor | None = None  # q99 or std
    dim: int = 0

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "quantiles":
            span = self.high - self.low
            return 2.0 * (x - self.low) / torch.where(span == 0, EPS, span) - 1.0
        if self.kind == "mean_std":
            return (x - self.low) / (self.high + EPS)
        return x

    def unnormalise(self, x: torch.Tensor) -> torch.Tensor:
        low, high = (None, None) if self.kind == "identity" else (self.low.to(x),
                                                                   self.high.to(x))
        if self.kind == "quantiles":
            span = high - low
            return (x + 1.0) / 2.0 * torch.where(span == 0, EPS, span) + low
        if self.kind == "mean_std":
            return x * (high + EPS) + low
        return x


def from_processor(proc: dict[str, Any], feature: str, family: str,
                   dim: int | None = None) -> Normaliser:
    """The statistics ``PI05Processor`` saved for ``feature`` ("state" or "actions"):
    quantiles first (what LeRobot's pi0.5 uses), else mean/std, as the processor does."""
    for kind, (a, b) in (("quantiles", ("q01", "q99")), ("mean_std", ("mean", "std"))):
        low, high = proc.get(f"{feature}_{a}"), proc.get(f"{feature}_{b}")
        if low is not None and high is not None:
            n = dim or len(low)
            return Normaliser(kind, stats(low, n, f"{feature}_{a}", family),
                              stats(high, n, f"{feature}_{b}", family), n)
    if feature == "state":
        raise PluginError(f"{family}: processor_config.json has no state statistics "
                          "(state_q01/state_q99 or state_mean/state_std); pi0.5 writes the "
                          "normalised state into its prompt and cannot run without them")
    return Normaliser("identity", dim=dim or 0)


def discretise(x: torch.Tensor, bins: int) -> torch.Tensor:
    """Bin index of each value in [-1, 1) cut into ``bins`` equal bins (openpi's
    ``np.digitize(x, linspace(-1, 1, bins + 1)[:-1]) - 1``: -1 below the range, the last
    bin above it)."""
    edges = torch.linspace(-1, 1, bins + 1)[:-1]
    return torch.bucketize(x.float(), edges, right=True) - 1
