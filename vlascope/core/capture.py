"""Activation capture at named hook points: read during a rollout's forward passes, stored
per step in the episode file (``/activations/<layer>``), read back for SAEs and probes.

Memory stays bounded: a rollout keeps only the last step's activations (the episode writer
streams them to disk), and ``load_activations`` subsamples to a fixed number of vectors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PluginError, UnknownNameError, VLAScopeError
from .hook_ops import Capture

POOLINGS = ("tokens", "mean")


class ActivationCapture:
    """Record the activations of ``layers`` of ``policy`` at every forward pass (batch row 0
    in a rollout): per token (tokens, d) or the mean over tokens (d,)."""

    def __init__(self, policy: Any, layers: Sequence[str], pooling: str = "tokens"):
        if pooling not in POOLINGS:
            raise UnknownNameError("pooling", pooling, POOLINGS)
        if not layers:
            raise VLAScopeError("capture: no layers given")
        if not hasattr(policy, "layers") or not hasattr(policy, "hook"):
            raise PluginError(f"{type(policy).__name__} exposes no hook points to capture")
        known = list(policy.layers())
        for name in layers:
            if name not in known:
                raise UnknownNameError("hook point", name, known)
        self.policy, self.layers, self.pooling = policy, list(layers), pooling
        self._ops = {name: Capture(rows=1, pool=pooling) for name in self.layers}

    @property
    def last(self) -> dict[str, np.ndarray]:
        """Each layer's activation at its latest forward pass (batch row 0)."""
        return {name: op.values[-1][0] for name, op in self._ops.items() if op.values}

    @contextmanager
    def hooks(self) -> Iterator[None]:
        """Register read-only hooks; register them after any edits so they see the result."""
        with ExitStack() as stack:
            for name, op in self._ops.items():
                del op.values[:-1]  # only the latest firing is kept
                stack.enter_context(self.policy.hook(name, op))
            yield

    def metadata(self) -> dict[str, Any]:
        return {"layers": list(self.layers), "pooling": self.pooling}


@dataclass
class ActivationSet:
    """Vectors of one layer from several episodes, with where each came from."""

    x: np.ndarray  # (N, d) float32
    episode: np.ndarray  # (N,) index into ``paths``
    step: np.ndarray  # (N,)
    token: np.ndarray  # (N,) token position, -1 when pooled
    paths: list[str]
    layer: str
    pooling: str


def step_means(values: np.ndarray, episode: np.ndarray,
               step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the rows of each (episode, step), e.g. per-token vectors or SAE codes to one
    row per frame; returns (means in (episode, step) order, index of each group's first
    row) so the caller can carry the rows' other columns along."""
    values = np.asarray(values)
    key = np.asarray(episode, np.int64) * (int(np.max(step, initial=0)) + 1) + np.asarray(step)
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    sums = np.zeros((len(first), values.shape[1]))
    np.add.at(sums, inv.reshape(-1), values)
    counts = np.bincount(inv.reshape(-1), minlength=len(first))[:, None]
    return (sums / counts).astype(np.float32), first


def load_activations(paths: Sequence[str | Path], layer: str, *, max_vectors: int | None = None,
                     seed: int = 0, positions: Sequence[int] | None = None) -> ActivationSet:
    """Stack a layer's recorded activations over episodes, one row per token (or per step
    when pooled). ``max_vectors`` draws a seeded uniform subsample before reading, so memory
    holds the sample plus one episode, however many episodes are given."""
    from .episode import Episode

    if not paths:
        raise VLAScopeError("no episodes given")
    rows, pooling = [], None  # pass 1: shapes only
    for path in paths:
        with Episode(path) as ep:
            if layer not in ep.activation_names:
                raise VLAScopeError(f"{path} has no activations of '{layer}' (recorded: "
                                    f"{', '.join(ep.activation_names) or 'none'})")
            p = ep.metadata.get("capture", {}).get("pooling", "tokens")
            if pooling is not None and p != pooling:
                raise VLAScopeError(f"{path}: '{p}' pooling, the other episodes '{pooling}'")
            pooling = p
            shape = ep.activation_shape(layer)
        if len(shape) == 3:
            tok = np.arange(shape[1]) if positions is None else np.asarray(positions, int)
            if len(tok) and not (-shape[1] <= tok.min() and tok.max() < shape[1]):
                raise VLAScopeError(f"positions outside 0..{shape[1] - 1} at '{layer}'")
            rows.append(shape[0] * len(tok))
        else:
            rows.append(shape[0])
    total = int(sum(rows))
    keep = None
    if max_vectors is not None and total > max_vectors:
        keep = np.sort(np.random.default_rng(seed).choice(total, max_vectors, replace=False))
    offsets = np.concatenate([[0], np.cumsum(rows)])
    chunks, eps, steps, toks = [], [], [], []
    for i, path in enumerate(paths):  # pass 2: read each episode, keep the drawn rows
        lo, hi = offsets[i], offsets[i + 1]
        local = None if keep is None else keep[(keep >= lo) & (keep < hi)] - lo
        if local is not None and not len(local):
            continue
        with Episode(path) as ep:
            a = ep.activations(layer).astype(np.float32)
        t = np.arange(len(a))
        if a.ndim == 3:  # (T, tokens, d)
            tok = np.arange(a.shape[1]) if positions is None else np.asarray(positions, int)
            x = a[:, tok].reshape(-1, a.shape[-1])
            step, token = np.repeat(t, len(tok)), np.tile(tok, len(t))
        else:
            x, step, token = a, t, np.full(len(t), -1)
        if local is not None:
            x, step, token = x[local], step[local], token[local]
        chunks.append(x)
        steps.append(step)
        toks.append(token)
        eps.append(np.full(len(x), i))
    return ActivationSet(np.concatenate(chunks), np.concatenate(eps), np.concatenate(steps),
                         np.concatenate(toks), [str(p) for p in paths], layer, pooling)
