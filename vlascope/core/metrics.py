"""NMR@k (Nuisance Mass Ratio) from saliency maps and region labels, k sweeps, per-view
breakdown, and correlation of NMR with success (Pearson, Spearman, bootstrap CIs).

NMR@k: take the top k% of saliency (pixels, joint over all cameras), and measure how much of
it lies outside action-critical and support regions:
- ``normalization="count"``: fraction of the top-k pixels outside (the paper's |H ∩ Ω| / |H|),
- ``normalization="mass"``: fraction of the top-k saliency mass outside.
``strict=True`` counts only pixels labelled nuisance (unlabeled pixels are ignored), for
hand-painted maps where not everything is labelled.

Which pixels are the top k% follows the ISS/NMR toolkit by default (``counting="toolkit"``):
k = ceil(k% x pixels) and ``np.argpartition``'s pick among tied values (an order numpy does
not specify: it can differ between CPUs when many pixels tie at the threshold), after the
maps are min-max scaled per step (``scaling``: "joint" across views as the toolkit's
default, "per_view", or "none"). ``counting="round"`` is our earlier rule: k = round(k% x
pixels), ties taken in camera-then-pixel order (deterministic everywhere).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import VLAScopeError
from .regions import ACTION_CRITICAL, NUISANCE, SUPPORT

NORMALIZATIONS = ("count", "mass")
COUNTINGS = ("toolkit", "round")
SCALINGS = ("joint", "per_view", "none")


def k_pixels(k: float | str) -> int:
    """How many pixels a k given as ``"<N>px"`` (the toolkit's k_pixels) names; 0 for a k
    in percent."""
    if isinstance(k, str) and k.endswith("px"):
        try:
            n = int(k[:-2])
        except ValueError:
            n = 0
        if n < 1:
            raise VLAScopeError(f"k in pixels must be a whole number >= 1, got '{k}'")
        return n
    return 0


def parse_k(text: str) -> float | str:
    """A k as a user types it: a percentage ("10", "2.5") or a pixel count ("50px")."""
    text = text.strip()
    if text.endswith("px"):
        k_pixels(text)
        return text
    try:
        k = float(text)
    except ValueError:
        raise VLAScopeError(f"k must be a percentage or '<N>px', got '{text}'") from None
    check_k(k)
    return k


def check_k(k: float | str) -> None:
    if not k_pixels(k) and not 0 < float(k) <= 100:
        raise VLAScopeError(f"k must be in (0, 100] percent or '<N>px', got {k}")


def _check(saliency: Mapping[str, np.ndarray], regions: Mapping[str, np.ndarray],
           k: float | str) -> list[str]:
    check_k(k)
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


def top_k_count(n_pixels: int, k: float | str, counting: str = "toolkit") -> int:
    """How many pixels the top k are: ``"<N>px"`` N of them (the toolkit's k_pixels), k% by
    the toolkit's ceil or by round."""
    if counting not in COUNTINGS:
        raise VLAScopeError(f"unknown top-k counting '{counting}' {COUNTINGS}")
    if n := k_pixels(k):
        return min(n_pixels, n)
    k = float(k)
    if counting == "toolkit":
        return min(n_pixels, max(1, int(np.ceil(n_pixels * k / 100.0))))
    return min(n_pixels, max(1, int(round(n_pixels * k / 100.0))))


def _min_max(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi - lo < 1e-8:
        return np.zeros_like(arr, dtype=np.float32)
    return (arr - lo) / (hi - lo)


def scale_maps(saliency: Mapping[str, np.ndarray], scaling: str = "joint"
               ) -> dict[str, np.ndarray]:
    """One step's maps min-max scaled in float32 as the toolkit does before its top-k:
    jointly across views, per view, or not at all."""
    maps = {c: np.asarray(m).astype(np.float32) for c, m in saliency.items()}
    bad = [c for c, m in maps.items() if not np.all(np.isfinite(m))]
    if bad:
        raise VLAScopeError(f"saliency map of camera(s) {bad} has non-finite values")
    if scaling == "none":
        return maps
    if scaling == "per_view":
        return {c: _min_max(m, float(m.min()), float(m.max())) for c, m in maps.items()}
    if scaling != "joint":
        raise VLAScopeError(f"unknown map scaling '{scaling}' {SCALINGS}")
    lo = min(float(m.min()) for m in maps.values())
    hi = max(float(m.max()) for m in maps.values())
    return {c: _min_max(m, lo, hi) for c, m in maps.items()}


def top_k_mask(saliency: Mapping[str, np.ndarray], k: float | str, counting: str = "toolkit",
               scaling: str = "joint") -> dict[str, np.ndarray]:
    """Per camera, the pixels in the joint top k% of saliency (module docstring: counting
    and ties). Linear time (a partition, not a sort), so NMR keeps up with a live view."""
    cams = list(saliency)
    scaled = scale_maps(saliency, scaling)
    flat = np.concatenate([scaled[c].ravel() for c in cams])
    n_top = top_k_count(flat.size, k, counting)
    chosen = np.zeros(flat.size, bool)
    if n_top >= flat.size:
        chosen[:] = True
    elif counting == "toolkit":
        chosen[np.argpartition(flat, -n_top)[-n_top:]] = True
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


def nmr_at_k(saliency: Mapping[str, np.ndarray], regions: Mapping[str, np.ndarray],
             k: float | str,
             normalization: str = "count", strict: bool = False,
             per_view: bool = False, top: Mapping[str, np.ndarray] | None = None,
             counting: str = "toolkit", scaling: str = "joint") -> float | dict[str, float]:
    """NMR@k of one frame (joint over cameras), or per camera with ``per_view=True``
    (each camera's share of the joint top-k that is nuisance, over its own top-k pixels:
    NaN where the camera has none, as in the toolkit). ``top``: ``top_k_mask(saliency, k,
    counting, scaling)`` when the caller has it already."""
    cams = _check(saliency, regions, k)
    if normalization not in NORMALIZATIONS:
        raise VLAScopeError(f"unknown normalization '{normalization}' {NORMALIZATIONS}")
    top = top_k_mask(saliency, k, counting, scaling) if top is None else top

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
    from scipy import stats

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


def fit_labels(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A label map resized to a saliency map's size, nearest neighbour with OpenCV as the
    toolkit resizes its masks."""
    if labels.shape == tuple(shape):
        return labels
    import cv2

    return cv2.resize(np.asarray(labels, np.uint8), (shape[1], shape[0]),
                      interpolation=cv2.INTER_NEAREST)


def mask_step(n_masks: int, t: int, n_steps: int) -> int:
    """The toolkit's frame of a T_m-frame mask sequence for step t of n_steps."""
    if n_masks == n_steps:
        return t
    if n_steps <= 1:
        return 0
    return int(round(t * (n_masks - 1) / float(n_steps - 1)))


@dataclass
class NMRSeries:
    """Per-step NMR@k of one episode: joint and per camera (NaN where a camera holds none
    of the step's top-k). Coverage, the toolkit's other column, is 1 - NMR."""

    k: float | str  # percent, or "<N>px"
    scores: np.ndarray  # (T,)
    per_view: dict[str, np.ndarray]  # camera -> (T,)


def episode_nmr_series(ep, method: str, ks: Sequence[float | str] = (10,),
                       normalization: str = "count", strict: bool = False,
                       regions: Mapping[str, np.ndarray] | None = None,
                       counting: str = "toolkit", scaling: str = "joint",
                       per_view: bool = True) -> dict[float, NMRSeries]:
    """Per step NMR@k of a recorded episode from its stored saliency maps and its region maps
    (or ``regions``: camera -> (H, W), or (T_m, H, W) taken at the toolkit's step for each
    of the T steps, e.g. toolkit masks), resized to the maps' size as the toolkit does.
    ``per_view=False`` leaves the per-camera series empty (they cost as much again)."""
    from .errors import EpisodeFormatError

    if method not in ep.saliency_methods():
        raise EpisodeFormatError(f"{ep.path}: no saliency '{method}' stored (have: "
                                 f"{', '.join(ep.saliency_methods()) or 'none'}); run "
                                 "`vlascope iss` first")
    if regions is None and not ep.has_regions():
        raise EpisodeFormatError(f"{ep.path}: episode has no region maps (a dataset has no "
                                 "simulator ground truth: paint them in the Regions dock, "
                                 "or pass the masks with --masks)")
    cams = ep.saliency_cameras(method)
    if regions is not None:
        missing = [c for c in cams if c not in regions]
        if missing:
            raise EpisodeFormatError(f"{ep.path}: the masks lack camera(s) {missing}")

    def labels(t: int, c: str) -> np.ndarray:
        if regions is None:
            return ep.regions(t, c)
        m = regions[c]
        return m[mask_step(len(m), t, ep.n_steps)] if m.ndim == 3 else m

    views = cams if per_view else []
    out = {k: NMRSeries(k, np.empty(ep.n_steps), {c: np.empty(ep.n_steps) for c in views})
           for k in ks}
    for t in range(ep.n_steps):
        sal = {c: ep.saliency(method, c, t) for c in cams}
        reg = {c: fit_labels(labels(t, c), sal[c].shape) for c in cams}
        for k in ks:
            top = top_k_mask(sal, k, counting, scaling)
            opts = {"normalization": normalization, "strict": strict, "top": top}
            out[k].scores[t] = nmr_at_k(sal, reg, k, **opts)
            if per_view:
                for c, v in nmr_at_k(sal, reg, k, per_view=True, **opts).items():
                    out[k].per_view[c][t] = v
    return out


def episode_nmr(ep, method: str, ks: Sequence[float] = (10,), normalization: str = "count",
                strict: bool = False, regions: Mapping[str, np.ndarray] | None = None,
                counting: str = "toolkit", scaling: str = "joint") -> dict[float, np.ndarray]:
    """Per step NMR@k (joint over cameras) for each k: ``episode_nmr_series``'s scores."""
    series = episode_nmr_series(ep, method, ks, normalization, strict, regions, counting,
                                scaling, per_view=False)
    return {k: s.scores for k, s in series.items()}
