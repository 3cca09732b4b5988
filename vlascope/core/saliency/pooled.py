"""ISS for every step of an episode at a fixed budget of forward passes per step.

Every step is explained with few masks (``budget - 1`` and its base pass, seeds of its own
so neighbouring steps' errors are independent), then each map's shape is pooled over nearby
steps with a Gaussian kernel in time; its level (the map's mean, the mean divergence) stays
the step's own. The bandwidth is picked per episode by leave-one-out cross-validation: each
step's map predicted from the other steps' maps, and the bandwidth whose predictions
correlate best with the steps' own maps kept (choose_bandwidth). The choice follows the
episode: long pooling where saliency holds still and noise dominates, short where it
changes (a grasp, a hesitation). A bandwidth of 0 is the per-frame estimator itself.

Measured against the toolkit's keyframes + linear interpolation and the alternatives we
tried (docs/benchmarks.md, "Episode ISS"): benchmarks/episode_iss.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import VLAScopeError

# candidate bandwidths in steps; inf pools the whole episode's shape
BANDWIDTHS = (0.0, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 64.0, math.inf)
_FEATURE_SIDE = 8  # maps are average-pooled to about this many cells a side for the choice


def pooling_weights(steps: Sequence[int], bandwidth: float,
                    leave_one_out: bool = False) -> np.ndarray:
    """(n, n) row-normalised Gaussian weights between the given steps."""
    t = np.asarray(steps, np.float64)
    if bandwidth <= 0:
        w = np.eye(len(t))
    elif math.isinf(bandwidth):
        w = np.ones((len(t), len(t)))
    else:
        w = np.exp(-0.5 * ((t[:, None] - t[None]) / bandwidth) ** 2)
    if leave_one_out:
        np.fill_diagonal(w, 0.0)
    total = w.sum(1, keepdims=True)
    return np.divide(w, total, out=np.zeros_like(w), where=total > 0)


def _features(maps: np.ndarray) -> np.ndarray:
    """(n, H, W) -> (n, h w) block means, so the choice costs little at any image size."""
    n, h, w = maps.shape
    fy, fx = max(1, h // _FEATURE_SIDE), max(1, w // _FEATURE_SIDE)
    h2, w2 = h // fy * fy, w // fx * fx
    return maps[:, :h2, :w2].reshape(n, h2 // fy, fy, w2 // fx, fx).mean(axis=(2, 4)).reshape(n, -1)


def choose_bandwidth(shapes: np.ndarray, steps: Sequence[int],
                     candidates: Sequence[float] = BANDWIDTHS) -> float:
    """The bandwidth whose leave-one-out prediction of each step's map shape from the other
    steps' correlates best with that step's own (noisy) map, on average; 0 with fewer than
    three steps. The step's own errors are independent of the others', so this tracks the
    prediction's correlation with the true map: the figure users read (a map is shown
    min-max scaled). A squared-error criterion, tried first, pooled far too widely where
    saliency flips within a few steps: it is dominated by the noise it removes."""
    if len(steps) < 3:
        return 0.0
    own = _unit_rows(shapes)
    best, best_score = 0.0, -math.inf
    for h in candidates:
        if h <= 0:
            continue  # leaving the step out of a zero-width kernel predicts nothing
        predicted = _unit_rows(pooling_weights(steps, h, True) @ shapes)
        score = float(np.mean(np.sum(predicted * own, axis=1)))
        if score > best_score:
            best, best_score = h, score
    return best


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit length (their dot products are correlations)."""
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


class PooledMaps:
    """Per-step maps as they arrive (in any order), and their pooled versions. The CLI
    fills it from a whole episode; the inspector's live mode adds each step as the rollout
    runs and shows the pooled map, which is refined as later steps arrive."""

    def __init__(self, bandwidth: float | None = None):
        self.fixed = bandwidth  # None: chosen by cross-validation
        self.raw: dict[int, dict[str, np.ndarray]] = {}
        self._level: dict[int, float] = {}  # one per step over all cameras: they stay comparable
        self._features: dict[int, np.ndarray] = {}
        self._chosen: float | None = None  # stale once a step is added

    def add(self, t: int, maps: Mapping[str, np.ndarray]) -> None:
        if self.raw and set(maps) != set(next(iter(self.raw.values()))):
            raise VLAScopeError(f"step {t} has maps for cameras {sorted(maps)}, earlier steps "
                                f"for {sorted(next(iter(self.raw.values())))}")
        t = int(t)
        self.raw[t] = {c: np.asarray(m, np.float32) for c, m in sorted(maps.items())}
        self._level[t] = float(np.mean([m.mean() for m in self.raw[t].values()]))
        self._features[t] = np.concatenate([_features(m[None].astype(np.float64))[0]
                                            for m in self.raw[t].values()]) - self._level[t]
        self._chosen = None

    @property
    def steps(self) -> list[int]:
        return sorted(self.raw)

    @property
    def bandwidth(self) -> float:
        """The pooling bandwidth in steps: the fixed one, or the cross-validated choice."""
        if self.fixed is not None:
            return float(self.fixed)
        if self._chosen is None:
            steps = self.steps
            feats = np.stack([self._features[t] for t in steps]) if steps else np.empty((0, 0))
            self._chosen = choose_bandwidth(feats, steps)
        return self._chosen

    def map_at(self, t: int) -> dict[str, np.ndarray]:
        """Step ``t``'s pooled maps: the shape pooled over the steps so far, its own level."""
        if t not in self.raw:
            raise VLAScopeError(f"step {t} has not been explained")
        steps = self.steps
        h = self.bandwidth
        if h <= 0:
            return dict(self.raw[t])
        d = np.asarray(steps, np.float64) - t
        w = np.ones(len(steps)) if math.isinf(h) else np.exp(-0.5 * (d / h) ** 2)
        w /= w.sum()
        out = {}
        for c in self.raw[t]:
            shape = sum(wi * (self.raw[s][c] - self._level[s]) for wi, s in zip(w, steps,
                                                                                strict=True))
            out[c] = (shape + self._level[t]).astype(np.float32)
        return out

    def pooled(self) -> dict[int, dict[str, np.ndarray]]:
        """Every step's pooled maps (one matrix product per camera)."""
        steps = self.steps
        if not steps:
            return {}
        w = pooling_weights(steps, self.bandwidth)
        level = np.array([self._level[t] for t in steps])
        out: dict[int, dict[str, np.ndarray]] = {t: {} for t in steps}
        for c in self.raw[steps[0]]:
            stacked = np.stack([self.raw[t][c] for t in steps]).astype(np.float64)
            n, h, wd = stacked.shape
            shapes = stacked.reshape(n, -1) - level[:, None]
            pooled = (w @ shapes + level[:, None]).reshape(n, h, wd)
            for i, t in enumerate(steps):
                out[t][c] = pooled[i].astype(np.float32)
        return out
