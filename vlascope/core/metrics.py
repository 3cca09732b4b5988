"""NMR@k (Nuisance Mass Ratio) from saliency maps and region labels, k sweeps, per-view
breakdown, and correlation of NMR with success (Pearson, Spearman, bootstrap CIs).

NMR@k: take the top k% of saliency (pixels, joint over all cameras), and measure how much of
it lies outside action-critical and support regions:
- ``normalization="count"``: fraction of the top-k pixels outside (the paper's |H ∩ Ω| / |H|),
- ``normalization="mass"``: fraction of the top-k saliency mass outside.
``strict=True`` counts only pixels labelled nuisance (unlabeled pixels are ignored), for
hand-painted maps where not everything is labelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .errors import VLAScopeError
from .regions import ACTION_CRITICAL, NUISANCE, SUPPORT

NORMALIZATIONS = ("count", "mass")


def _check(saliency: Mapping[str, np.ndarray], regions: Mapping[str, np.ndarray],
           k: float) -> list[str]:
    if not 0 < k <= 100:
        raise VLAScopeError(f"k must be in (0, 100], got {k}")
    cams = list(saliency)
    if not cams:
        raise VLAScopeError("no saliency maps given")
    for c in cams:
        if c not in regions:
            raise VLAScopeError(f"no region map for camera '{c}'")
        if np.shape(saliency[c]) != np.shape(regions[c]):
            raise VLAScopeError(f"camera '{c}': saliency {np.shape(saliency[c])} and regions "
                                f"{np.shape(regions[c])} differ in size")
    return cams


def top_k_mask(saliency: Mapping[str, np.ndarray], k: float) -> dict[str, np.ndarray]:
    """Per camera, the pixels in the joint top k% of saliency (ties broken by order).

    Linear time (a partition, not a sort), so NMR keeps up with a live view."""
    cams = list(saliency)
    # float32 maps stay float32 (the same values, half the memory traffic)
    dtype = np.result_type(*(np.asarray(saliency[c]).dtype for c in cams), np.float32)
    flat = np.concatenate([np.asarray(saliency[c], dtype).ravel() for c in cams])
    n_top = max(1, int(round(flat.size * k / 100.0)))
    if n_top >= flat.size:
        chosen = np.ones(flat.size, bool)
    else:
        threshold = np.partition(flat, flat.size - n_top)[flat.size - n_top]
        chosen = flat > threshold
        ties = np.flatnonzero(flat == threshold)[:n_top - int(chosen.sum())]
        chosen[ties] = True
    out, offset = {}, 0
    for c in cams:
        size = np.size(saliency[c])
        out[c] = chosen[offset:offset + size].reshape(np.shape(saliency[c]))
        offset += size
    return out


def nmr_at_k(saliency: Mapping[str, np.ndarray], regions: Mapping[str, np.ndarray], k: float,
             normalization: str = "count", strict: bool = False,
             per_view: bool = False, top: Mapping[str, np.ndarray] | None = None
             ) -> float | dict[str, float]:
    """NMR@k of one frame (joint over cameras), or per camera with ``per_view=True``
    (each camera's share of the joint top-k that is nuisance, over its own top-k pixels).
    ``top``: ``top_k_mask(saliency, k)`` when the caller has it already."""
    cams = _check(saliency, regions, k)
    if normalization not in NORMALIZATIONS:
        raise VLAScopeError(f"unknown normalization '{normalization}' {NORMALIZATIONS}")
    top = top_k_mask(saliency, k) if top is None else top

    def ratio(cs: Sequence[str]) -> float:
        num = den = 0.0
        for c in cs:
            lab = np.asarray(regions[c])
            sel = top[c]
            if strict:
                bad = lab == NUISANCE
                sel = sel & (lab != 0)
            else:
                bad = ~np.isin(lab, (ACTION_CRITICAL, SUPPORT))
            w = np.asarray(saliency[c], np.float64) if normalization == "mass" else None
            if w is None:
                num += float((sel & bad).sum())
                den += float(sel.sum())
            else:
                num += float(w[sel & bad].sum())
                den += float(w[sel].sum())
        return num / den if den > 0 else float("nan")

    if per_view:
        return {c: ratio([c]) for c in cams}
    return ratio(cams)


def nmr_sweep(saliency: Mapping[str, np.ndarray], regions: Mapping[str, np.ndarray],
              ks: Sequence[float] = (1, 5, 10, 20, 50), **kwargs) -> dict[float, float]:
    return {k: nmr_at_k(saliency, regions, k, **kwargs) for k in ks}


@dataclass
class Correlation:
    n: int
    pearson: float
    pearson_ci: tuple[float, float]
    pearson_p: float
    spearman: float
    spearman_ci: tuple[float, float]
    spearman_p: float


def correlate(x: Sequence[float], y: Sequence[float], n_boot: int = 2000,
              seed: int = 0, level: float = 0.95) -> Correlation:
    """Pearson and Spearman correlation with bootstrap percentile confidence intervals."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3:
        raise VLAScopeError(f"need at least 3 paired values to correlate, got {len(x)}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise VLAScopeError("cannot correlate a constant series")
    rng = np.random.default_rng(seed)
    boots_p, boots_s = [], []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) == 0 or np.ptp(y[i]) == 0:
            continue
        boots_p.append(stats.pearsonr(x[i], y[i])[0])
        boots_s.append(stats.spearmanr(x[i], y[i])[0])
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    pr, sr = stats.pearsonr(x, y), stats.spearmanr(x, y)
    return Correlation(len(x), float(pr[0]), tuple(np.percentile(boots_p, [lo, hi])),
                       float(pr[1]), float(sr[0]), tuple(np.percentile(boots_s, [lo, hi])),
                       float(sr[1]))


def _fit_labels(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour resize of a label map to a saliency map's size."""
    if labels.shape == tuple(shape):
        return labels
    rows = (np.arange(shape[0]) * labels.shape[0] / shape[0]).astype(int)
    cols = (np.arange(shape[1]) * labels.shape[1] / shape[1]).astype(int)
    return labels[rows][:, cols]


def episode_nmr(ep, method: str, ks: Sequence[float] = (10,), normalization: str = "count",
                strict: bool = False, regions: Mapping[str, np.ndarray] | None = None
                ) -> dict[float, np.ndarray]:
    """Per step NMR@k of a recorded episode from its stored saliency maps and its region maps
    (or ``regions``: camera -> (H, W) for every step or (T, H, W), e.g. a toolkit mask)."""
    from .errors import EpisodeFormatError

    if method not in ep.saliency_methods():
        raise EpisodeFormatError(f"{ep.path}: no saliency '{method}' stored (have: "
                                 f"{', '.join(ep.saliency_methods()) or 'none'}); run "
                                 "`vlascope iss` first")
    if regions is None and not ep.has_regions():
        raise EpisodeFormatError(f"{ep.path}: episode has no region maps")
    cams = ep.saliency_cameras(method)
    if regions is not None:
        missing = [c for c in cams if c not in regions]
        bad = [c for c in cams if c in regions and regions[c].ndim == 3
               and len(regions[c]) != ep.n_steps]
        if missing or bad:
            raise EpisodeFormatError(f"{ep.path}: masks lack camera(s) {missing} or do not "
                                     f"have {ep.n_steps} steps {bad}")

    def labels(t: int, c: str) -> np.ndarray:
        if regions is None:
            return ep.regions(t, c)
        return regions[c][t] if regions[c].ndim == 3 else regions[c]

    out = {k: np.empty(ep.n_steps) for k in ks}
    for t in range(ep.n_steps):
        sal = {c: ep.saliency(method, c, t) for c in cams}
        reg = {c: _fit_labels(labels(t, c), sal[c].shape) for c in cams}
        for k in ks:
            out[k][t] = nmr_at_k(sal, reg, k, normalization=normalization, strict=strict)
    return out
