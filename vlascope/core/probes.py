"""Linear probes: how linearly decodable a property (task, object, phase, ...) is from the
activations of each layer, measured on held-out samples against the majority-class rate.

Frames of one episode are near-duplicates, so a random frame split leaks: give ``groups``
(episode ids) and whole episodes go to either train or test.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import VLAScopeError


@dataclass
class ProbeResult:
    """One probe: ``accuracy`` on held-out samples, ``chance`` = the share of the most
    frequent class among those same held-out samples (what a constant guess scores)."""

    layer: str
    target: str
    accuracy: float
    chance: float
    n_train: int
    n_test: int
    classes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _split(y: np.ndarray, groups: np.ndarray | None, test_fraction: float,
           seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import (
        GroupShuffleSplit,
        ShuffleSplit,
        StratifiedShuffleSplit,
    )

    n = len(y)
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise VLAScopeError("a group split needs at least 2 groups (episodes), got "
                                f"{n_groups}")
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
        return next(splitter.split(np.zeros(n), y, groups))
    _, counts = np.unique(y, return_counts=True)
    n_test = int(np.ceil(test_fraction * n))
    if counts.min() >= 2 and n_test >= len(counts) and n - n_test >= len(counts):
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=test_fraction,
                                          random_state=seed)
    else:
        splitter = ShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
    return next(splitter.split(np.zeros(n), y))


def _check(x: Any, y: Any, groups: Any, test_fraction: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim > 2:  # (N, tokens, d) and the like: one flat vector per sample
        x = x.reshape(len(x), -1)
    y = np.asarray(y).astype(str).reshape(-1)
    if len(x) == 0 or x.shape[1] == 0:
        raise VLAScopeError(f"no activations to probe (shape {x.shape})")
    if len(x) != len(y):
        raise VLAScopeError(f"{len(x)} activation rows but {len(y)} labels")
    if not np.isfinite(x).all():
        raise VLAScopeError("activations contain NaN or infinite values")
    classes = np.unique(y)
    if len(classes) < 2:
        raise VLAScopeError(f"a probe needs at least 2 classes, got {classes.tolist()}")
    if not 0 < test_fraction < 1:
        raise VLAScopeError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if groups is not None:
        groups = np.asarray(groups).reshape(-1)
        if len(groups) != len(y):
            raise VLAScopeError(f"{len(groups)} group ids for {len(y)} samples")
    return x, y, groups


def _probe(x: Any, y: Any, groups: Any, test_fraction: float, seed: int) -> dict[str, Any]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y, groups = _check(x, y, groups, test_fraction)
    train, test = _split(y, groups, test_fraction, seed)
    if len(test) == 0 or len(train) == 0:
        raise VLAScopeError(f"{len(y)} samples are too few to hold {test_fraction:.0%} out")
    if len(np.unique(y[train])) < 2:
        raise VLAScopeError("the training split holds a single class; record more episodes "
                            "of the other classes")
    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(max_iter=2000)
    with warnings.catch_warnings():  # separable data converges slowly; the score still holds
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(x[train]), y[train])
    accuracy = float(clf.score(scaler.transform(x[test]), y[test]))
    _, counts = np.unique(y[test], return_counts=True)
    return {"accuracy": accuracy, "chance": float(counts.max() / len(test)),
            "n_train": int(len(train)), "n_test": int(len(test)),
            "classes": np.unique(y).tolist()}


def linear_probe(x: np.ndarray, y: np.ndarray, *, groups: np.ndarray | None = None,
                 test_fraction: float = 0.25, seed: int = 0) -> tuple[float, float]:
    """(held-out accuracy, chance) of a standardised multinomial logistic regression that
    predicts ``y`` from ``x`` (N, D). With ``groups`` the split keeps each group (episode)
    wholly in train or in test; without, it is stratified by class where possible."""
    r = _probe(x, y, groups, test_fraction, seed)
    return r["accuracy"], r["chance"]


def probe_layers(acts: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray],
                 groups: np.ndarray | None = None, seed: int = 0, test_fraction: float = 0.25,
                 progress: Callable[[int, int], None] | None = None) -> list[ProbeResult]:
    """A probe for every (layer, target) pair, layers in order, so a table or plot shows
    where in the network each property becomes linearly readable. The split depends only
    on the labels, groups and seed, so every layer is scored on the same held-out samples.
    ``progress(done, total)`` is called after each probe."""
    if not acts or not targets:
        raise VLAScopeError("probe_layers needs at least one layer and one target")
    total = len(acts) * len(targets)
    results: list[ProbeResult] = []
    for layer, x in acts.items():
        for target, y in targets.items():
            try:
                r = _probe(x, y, groups, test_fraction, seed)
            except VLAScopeError as e:
                raise VLAScopeError(f"layer '{layer}', target '{target}': {e}") from e
            results.append(ProbeResult(layer=layer, target=target, **r))
            if progress is not None:
                progress(len(results), total)
    return results
