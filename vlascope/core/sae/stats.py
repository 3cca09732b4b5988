"""Statistics of SAE features over recorded rollouts: how often each feature fires, on which
samples it fires hardest, which task / object / motion phase it goes with, and an automatic
short label, so the atlas can show "pick_red · carry" instead of "feature 1734".

Also the Action Atlas way of finding concept features: rank features by Cohen's d between
the samples of one concept and all the others.

Everything streams over row blocks of the code matrix (N, F), so a code matrix larger than
memory (an ``np.memmap`` or an h5py dataset: anything that slices ``codes[a:b]``) works.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..errors import UnknownNameError, VLAScopeError

#: The metadata variables features are related to (SampleInfo fields, FeatureStats prefixes).
VARIABLES = ("task", "object", "phase")
#: Point-biserial r a category needs before it goes into a feature's label.
LABEL_MIN_CORR = 0.3
#: Density from which a feature without a category is called "dense" rather than "mixed".
DENSE_DENSITY = 0.5
#: Upper bound on elements of one float64 row block (128 MiB), whatever ``chunk`` says.
_BLOCK_ELEMENTS = 1 << 24
_FORMAT = "vlascope.sae_feature_stats"
_VERSION = 1


def _as_str(values: Any, n: int | None = None) -> np.ndarray:
    if values is None:
        return np.full(n or 0, "", dtype="<U1")
    return np.asarray(values).astype(str).reshape(-1)


@dataclass
class SampleInfo:
    """Metadata of each activation row, so features can be related to what the robot did.

    One entry per row of the code matrix. ``object`` and ``phase`` may be ``None`` when the
    recording does not know them (they become empty strings and are never used in labels).
    """

    episode: np.ndarray  # (N,) int episode index
    step: np.ndarray  # (N,) int step in the episode
    token: np.ndarray  # (N,) int token position, -1 when pooled over tokens
    task: np.ndarray  # (N,) str task name
    object: np.ndarray | None = None  # (N,) str target object ("red", "blue", a cube name)
    phase: np.ndarray | None = None  # (N,) str motion phase ("reach", "grasp", "carry", ...)

    def __post_init__(self) -> None:
        self.episode = np.asarray(self.episode, np.int64).reshape(-1)
        n = len(self.episode)
        self.step = np.asarray(self.step, np.int64).reshape(-1)
        self.token = np.asarray(self.token, np.int64).reshape(-1)
        self.task = _as_str(self.task)
        self.object = _as_str(self.object, n)
        self.phase = _as_str(self.phase, n)
        lengths = {f.name: len(getattr(self, f.name)) for f in fields(self)}
        if len(set(lengths.values())) != 1:
            raise VLAScopeError(f"sample info columns differ in length: {lengths}")

    def __len__(self) -> int:
        return len(self.episode)


@dataclass
class FeatureStats:
    """Per-feature statistics over N samples (see :func:`feature_stats`).

    ``*_corr`` is the point-biserial correlation (Pearson r between the activation and the
    0/1 indicator of one category), maximised over the categories of the variable, and
    ``*_best`` is that category: the one the feature prefers. The maximum is >= 0; a feature
    that is *silenced* by one category is deliberately not labelled with it. 0 when the
    variable has a single category or the feature is constant.
    """

    density: np.ndarray  # (F,) fraction of samples where the feature is > 0
    mean_active: np.ndarray  # (F,) mean value over the samples where it is > 0 (0 if dead)
    top_samples: np.ndarray  # (F, n_top) rows of the strongest activations, -1 padding
    top_values: np.ndarray  # (F, n_top) their values, 0 padding
    task_corr: np.ndarray
    task_best: np.ndarray
    object_corr: np.ndarray
    object_best: np.ndarray
    phase_corr: np.ndarray
    phase_best: np.ndarray
    labels: list[str]
    n_samples: int = 0
    #: per variable: the category names (K,) and the mean activation per category (K, F)
    group_names: dict[str, np.ndarray] = field(default_factory=dict)
    group_means: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return len(self.density)

    def profile(self) -> np.ndarray:
        """(F, P) what each feature responds to, for the statistics atlas: its density and
        its mean activation per task, object and phase, each feature's row scaled to unit
        length so features that prefer the same categories sit together whatever their
        magnitude."""
        cols = [self.density[:, None]] + [np.asarray(self.group_means[v]).T
                                          for v in VARIABLES if v in self.group_means]
        x = np.nan_to_num(np.concatenate(cols, axis=1).astype(np.float64))
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norm > 0, norm, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of arrays and lists (the inverse of :meth:`from_dict`)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["labels"] = list(self.labels)
        out["group_names"] = {k: list(map(str, v)) for k, v in self.group_names.items()}
        out["group_means"] = dict(self.group_means)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureStats:
        return cls(
            density=np.asarray(d["density"], np.float64),
            mean_active=np.asarray(d["mean_active"], np.float64),
            top_samples=np.asarray(d["top_samples"], np.int64),
            top_values=np.asarray(d["top_values"], np.float64),
            **{f"{v}_corr": np.asarray(d[f"{v}_corr"], np.float64) for v in VARIABLES},
            **{f"{v}_best": _as_str(d[f"{v}_best"]) for v in VARIABLES},
            labels=[str(s) for s in d["labels"]],
            n_samples=int(d.get("n_samples", 0)),
            group_names={k: _as_str(v) for k, v in d.get("group_names", {}).items()},
            group_means={k: np.asarray(v, np.float64)
                         for k, v in d.get("group_means", {}).items()},
        )

    def save(self, path: str | Path) -> Path:
        """One ``.npz`` (arrays plus a JSON header with the labels), written atomically."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            name: np.asarray(getattr(self, name))
            for name in ("density", "mean_active", "top_samples", "top_values",
                         *(f"{v}_{s}" for v in VARIABLES for s in ("corr", "best")))}
        for var, names in self.group_names.items():
            arrays[f"group_names__{var}"] = np.asarray(names).astype(str)
            arrays[f"group_means__{var}"] = np.asarray(self.group_means[var])
        meta = {"format": _FORMAT, "version": _VERSION, "n_samples": int(self.n_samples),
                "labels": list(self.labels), "groups": list(self.group_names)}
        arrays["meta_json"] = np.asarray(json.dumps(meta))
        save_npz_atomic(path, compressed=True, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        path = Path(path)
        if not path.is_file():
            raise VLAScopeError(f"{path}: no such feature-statistics file")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta_json"]))
                if meta.get("format") != _FORMAT:
                    raise VLAScopeError(f"{path}: not a feature-statistics file")
                if meta.get("version", 0) > _VERSION:
                    raise VLAScopeError(f"{path}: written by a newer VLAScope (format version "
                                        f"{meta['version']})")
                d: dict[str, Any] = {k: z[k] for k in z.files if "__" not in k}
                d["group_names"] = {g: z[f"group_names__{g}"] for g in meta["groups"]}
                d["group_means"] = {g: z[f"group_means__{g}"] for g in meta["groups"]}
        except VLAScopeError:
            raise
        except Exception as e:  # truncated zip, missing key, bad JSON
            raise VLAScopeError(f"{path}: unreadable feature-statistics file ({e})") from e
        d["labels"], d["n_samples"] = meta["labels"], meta["n_samples"]
        return cls.from_dict(d)


def save_npz_atomic(path: Path, compressed: bool = False, **arrays: Any) -> None:
    """``np.savez`` to ``path``, atomically (a file object: numpy adds no ".npz")."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)


def _check_codes(codes: Any) -> tuple[int, int]:
    shape = tuple(getattr(codes, "shape", ()))
    if len(shape) != 2:
        raise VLAScopeError(f"codes must be a 2-D (samples, features) matrix, got shape {shape}")
    n, f = shape
    if n == 0 or f == 0:
        raise VLAScopeError(f"codes are empty (shape {shape})")
    return int(n), int(f)


def _blocks(n: int, f: int, chunk: int):
    if chunk < 1:
        raise VLAScopeError(f"chunk must be >= 1, got {chunk}")
    rows = max(1, min(chunk, _BLOCK_ELEMENTS // f))
    for a in range(0, n, rows):
        yield a, min(n, a + rows)


class _TopK:
    """Running top-n rows per feature; ties go to the lower row, so blocks don't matter."""

    def __init__(self, f: int, n_top: int):
        self.n = n_top
        self.idx = np.full((f, n_top), -1, np.int64)
        self.val = np.full((f, n_top), -np.inf)

    def update(self, block: np.ndarray, offset: int) -> None:
        c, f = block.shape
        full = self.idx[:, -1] >= 0
        # A candidate must be active and beat the feature's current worst (ties go to the
        # earlier row already held).
        mask = block > np.where(full, np.maximum(self.val[:, -1], 0.0), 0.0)
        if c > self.n and mask.sum() > 4 * self.n * f:
            # Many candidates (dense codes, first blocks): keep only rows at or above each
            # feature's n-th best in this block. A partition is slower than the sort of a
            # few candidates, so sparse blocks skip it.
            nth = -np.partition(-block, self.n - 1, axis=0)[self.n - 1]
            mask &= block >= nth
        rows, cols = np.nonzero(mask)
        if not len(rows):
            return
        kf, ks = np.nonzero(self.idx >= 0)
        feat = np.concatenate([kf, cols])
        val = np.concatenate([self.val[kf, ks], block[rows, cols]])
        idx = np.concatenate([self.idx[kf, ks], rows + offset])
        order = np.lexsort((idx, -val, feat))
        feat, val, idx = feat[order], val[order], idx[order]
        rank = np.arange(len(feat)) - np.searchsorted(feat, feat, side="left")
        keep = rank < self.n
        self.idx.fill(-1)
        self.val.fill(-np.inf)
        self.idx[feat[keep], rank[keep]] = idx[keep]
        self.val[feat[keep], rank[keep]] = val[keep]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        return self.idx.copy(), np.where(self.idx >= 0, self.val, 0.0)


def feature_stats(codes: Any, info: SampleInfo, n_top: int = 16, chunk: int = 65536,
                  min_corr: float = LABEL_MIN_CORR) -> FeatureStats:
    """Density, mean active value, top samples, task/object/phase association and a label
    for every feature, in one pass over row blocks of at most ``chunk`` rows (fewer when the
    feature count is large, to bound memory at ~128 MiB).

    ``codes``: (N, F) non-negative SAE codes: an array, ``np.memmap`` or h5py dataset.
    ``min_corr``: the point-biserial r a category needs to appear in a label.
    """
    n, f = _check_codes(codes)
    if len(info) != n:
        raise VLAScopeError(f"sample info has {len(info)} rows but codes have {n}")
    if n_top < 1:
        raise VLAScopeError(f"n_top must be >= 1, got {n_top}")

    names: dict[str, np.ndarray] = {}
    inverse: list[np.ndarray] = []
    offsets = [0]
    for var in VARIABLES:
        names[var], inv = np.unique(getattr(info, var), return_inverse=True)
        inverse.append(inv.reshape(-1) + offsets[-1])
        offsets.append(offsets[-1] + len(names[var]))
    cat = np.stack(inverse, axis=1)  # (N, 3) column of each category in the one-hot matrix
    k_total = offsets[-1]

    total = np.zeros(f)
    total_sq = np.zeros(f)
    active = np.zeros(f)
    active_sum = np.zeros(f)
    group_sum = np.zeros((k_total, f))
    top = _TopK(f, n_top)
    for a, b in _blocks(n, f, chunk):
        block = np.asarray(codes[a:b], dtype=np.float64)
        if block.shape != (b - a, f):
            raise VLAScopeError(f"codes[{a}:{b}] has shape {block.shape}, expected "
                                f"{(b - a, f)}")
        pos = block > 0
        total += block.sum(axis=0)
        total_sq += np.einsum("ij,ij->j", block, block)
        active += pos.sum(axis=0)
        active_sum += np.where(pos, block, 0.0).sum(axis=0)
        onehot = np.zeros((b - a, k_total))
        np.put_along_axis(onehot, cat[a:b], 1.0, axis=1)
        group_sum += onehot.T @ block
        top.update(block, a)

    counts = np.bincount(cat.ravel(), minlength=k_total).astype(np.float64)
    mean = total / n
    var = np.maximum(total_sq / n - mean**2, 0.0)
    sd = np.sqrt(var)
    sd[var <= 1e-12 * np.maximum(total_sq / n, 1e-300)] = 0.0  # constant up to rounding

    out: dict[str, Any] = {}
    group_names, group_means = {}, {}
    for i, var_name in enumerate(VARIABLES):
        lo, hi = offsets[i], offsets[i + 1]
        nk = counts[lo:hi, None]  # (K, 1)
        sk = group_sum[lo:hi]  # (K, F)
        with np.errstate(divide="ignore", invalid="ignore"):
            m1 = sk / nk
            m0 = (total - sk) / (n - nk)
            p = nk / n
            r = (m1 - m0) / sd * np.sqrt(p * (1 - p))
        r = np.where(np.isfinite(r) & (nk < n) & (sd > 0), r, 0.0)
        best = np.argmax(r, axis=0)
        out[f"{var_name}_corr"] = np.clip(r[best, np.arange(f)], 0.0, 1.0)
        out[f"{var_name}_best"] = names[var_name][best]
        group_names[var_name] = names[var_name]
        group_means[var_name] = m1

    density = active / n
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_active = np.where(active > 0, active_sum / active, 0.0)
    top_samples, top_values = top.result()
    stats = FeatureStats(density=density, mean_active=mean_active, top_samples=top_samples,
                         top_values=top_values, labels=[], n_samples=n,
                         group_names=group_names, group_means=group_means, **out)
    stats.labels = feature_labels(stats, min_corr)
    return stats


def feature_labels(stats: FeatureStats, min_corr: float = LABEL_MIN_CORR) -> list[str]:
    """Short labels: "dead", the associated categories ("pick_red · carry"; an object already
    named by the task is not repeated), else "dense" or "mixed"."""
    labels = []
    for j in range(stats.n_features):
        if stats.density[j] == 0:
            labels.append("dead")
            continue
        parts: list[str] = []
        for var in VARIABLES:
            best = str(getattr(stats, f"{var}_best")[j])
            if getattr(stats, f"{var}_corr")[j] < min_corr or not best:
                continue
            if var == "object" and any(best in p for p in parts):
                continue  # "pick_red · red" says nothing more than "pick_red"
            parts.append(best)
        if parts:
            labels.append(" · ".join(parts))
        else:
            labels.append("dense" if stats.density[j] >= DENSE_DENSITY else "mixed")
    return labels


class _Moments:
    """Count, mean and sum of squared deviations per feature, merged block by block (Chan et
    al.), which is exact where sum-of-squares would cancel."""

    def __init__(self, f: int):
        self.n = 0
        self.mean = np.zeros(f)
        self.m2 = np.zeros(f)

    def update(self, x: np.ndarray) -> None:
        c = x.shape[0]
        if not c:
            return
        mean = x.mean(axis=0)
        m2 = ((x - mean) ** 2).sum(axis=0)
        n = self.n + c
        delta = mean - self.mean
        self.mean = self.mean + delta * (c / n)
        self.m2 = self.m2 + m2 + delta**2 * (self.n * c / n)
        self.n = n


def _d(ma: _Moments, mb: _Moments) -> np.ndarray:
    pooled = np.sqrt((ma.m2 + mb.m2) / (ma.n + mb.n - 2))
    diff = ma.mean - mb.mean
    with np.errstate(divide="ignore", invalid="ignore"):
        d = diff / pooled
    return np.where(pooled > 0, d, 0.0)


def _group_moments(codes: Any, masks: list[np.ndarray], chunk: int) -> list[_Moments]:
    n, f = _check_codes(codes)
    moments = [_Moments(f) for _ in masks]
    for a, b in _blocks(n, f, chunk):
        if not any(m[a:b].any() for m in masks):
            continue
        block = np.asarray(codes[a:b], dtype=np.float64)
        for mom, m in zip(moments, masks, strict=True):
            mom.update(block[m[a:b]])
    return moments


def _groups(codes: Any, groups: Any) -> np.ndarray:
    n, _ = _check_codes(codes)
    g = _as_str(groups)
    if len(g) != n:
        raise VLAScopeError(f"{len(g)} group labels for {n} rows of codes")
    return g


def cohens_d(codes: Any, groups: Any, a: str, b: str, chunk: int = 65536) -> np.ndarray:
    """(F,) Cohen's d of every feature between the samples of group ``a`` and of ``b``
    (mean_a - mean_b over the pooled standard deviation), positive where ``a`` fires more.
    0 where the pooled std is 0 (both groups constant: there is no spread to scale by)."""
    g = _groups(codes, groups)
    known = sorted(set(g.tolist()))
    for name in (a, b):
        if name not in known:
            raise UnknownNameError("group", name, known)
    if a == b:
        raise VLAScopeError(f"compare two different groups, got '{a}' twice")
    ma, mb = _group_moments(codes, [g == a, g == b], chunk)
    if ma.n + mb.n < 3:
        raise VLAScopeError(f"groups '{a}' and '{b}' have {ma.n + mb.n} samples together; "
                            "Cohen's d needs at least 3")
    return _d(ma, mb)


def concept_features(codes: Any, groups: Any, concept: str, top: int = 10,
                     min_d: float = 0.8, chunk: int = 65536,
                     within: Any = None) -> list[tuple[int, float]]:
    """Features that single out ``concept``: Cohen's d of the concept's samples against all
    other samples, kept where d >= ``min_d`` (0.8 is Cohen's "large"), strongest first, at
    most ``top`` of them. This is how the Action Atlas picks concept features.

    ``within`` (one label per sample, e.g. the task) splits the concept into sub-groups and
    scores a feature by its smallest d over them: a feature for "the blue cube" must single
    out every task that names the blue cube, not fire for one instruction only (which, on
    data with few distinct instructions, gives the largest one-vs-rest d)."""
    g = _groups(codes, groups)
    known = sorted(set(g.tolist()))
    if concept not in known:
        raise UnknownNameError("group", concept, known)
    if len(known) < 2:
        raise VLAScopeError(f"every sample is '{concept}': there is nothing to contrast with")
    inside = g == concept
    if within is None:
        masks = [inside]
    else:
        w = _groups(codes, within)
        masks = [inside & (w == s) for s in sorted(set(w[inside].tolist()))]
    *parts, rest = _group_moments(codes, [*masks, ~inside], chunk)
    if sum(m.n for m in parts) + rest.n < 3:
        raise VLAScopeError("Cohen's d needs at least 3 samples")
    d = np.min([_d(m, rest) for m in parts], axis=0)
    order = np.argsort(-d, kind="stable")
    return [(int(j), float(d[j])) for j in order[:top] if d[j] >= min_d]
