"""Measures of what an intervention did: which object was handled, how far a rollout
followed another one (displacement), how much the actions changed (zero-effect rate), and
the motion phase of each step (a probe target). Scene-agnostic: plain arrays in and out."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .errors import VLAScopeError

MOVED = 0.02  # metres an object must move to count as handled
PHASES = ("reach", "grasp", "carry", "release")


def handled_object(start: Mapping[str, np.ndarray], end: Mapping[str, np.ndarray],
                   moved: float = MOVED) -> str | None:
    """The object that moved most between ``start`` and ``end`` (None if none moved)."""
    if not start:
        return None
    dist = {k: float(np.linalg.norm(np.asarray(end[k]) - np.asarray(p)))
            for k, p in start.items()}
    best = max(dist, key=dist.get)
    return best if dist[best] > moved else None


def displacement(injected: np.ndarray, source: np.ndarray, target: np.ndarray) -> float:
    """How far the injected rollout follows the source's trajectory rather than the target's:
    sum_t d(injected, target) / sum_t (d(injected, target) + d(injected, source)) over the
    aligned steps (1 = on the source's path, 0 = on the target's, 0.5 = neither). A ratio of
    sums, so the steps where all three paths still coincide (the shared start) carry no
    weight instead of pulling the score to 0.5. Trajectories are (T, dims) positions;
    shorter ones hold their last position. NaN when source and target never differ."""
    arrays = [np.asarray(a, dtype=np.float64) for a in (injected, source, target)]
    if any(a.ndim != 2 or len(a) == 0 for a in arrays):
        raise VLAScopeError("displacement needs three non-empty (T, dims) trajectories")
    if len({a.shape[1] for a in arrays}) != 1:
        raise VLAScopeError("displacement: trajectories differ in dimension")
    n = max(len(a) for a in arrays)
    inj, src, tgt = (np.concatenate([a, np.repeat(a[-1:], n - len(a), 0)]) for a in arrays)
    d_t = np.linalg.norm(inj - tgt, axis=1).sum()
    d_s = np.linalg.norm(inj - src, axis=1).sum()
    if d_t + d_s < 1e-9:
        return float("nan")
    return float(d_t / (d_t + d_s))


def action_change(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the largest absolute difference between two action arrays (chunks)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise VLAScopeError(f"actions of shapes {a.shape} and {b.shape} cannot be compared")
    return np.abs(a - b).reshape(len(a), -1).max(axis=1)


def action_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine similarity of two action sequences over their common steps: 1 where both
    actions are zero, 0 where only one is (one moved, the other did not)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = min(len(a), len(b))
    if n == 0:
        return float("nan")
    a, b = a[:n].reshape(n, -1), b[:n].reshape(n, -1)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    zero_a, zero_b = na < 1e-9, nb < 1e-9
    cos = (a * b).sum(1) / np.maximum(na * nb, 1e-18)
    cos = np.where(zero_a | zero_b, (zero_a & zero_b).astype(np.float64), cos)
    return float(cos.mean())


def zero_effect_rate(changes: np.ndarray, tol: float = 1e-3) -> float:
    """Fraction of ablations whose largest action change stays within ``tol``."""
    changes = np.asarray(changes, np.float64)
    if changes.size == 0:
        raise VLAScopeError("no ablations to rate")
    return float((changes <= tol).mean())


def motion_phases(states: np.ndarray, actions: np.ndarray, gripper: int = -1,
                  closing: float = 1e-3) -> np.ndarray:
    """Label each step reach / grasp / carry / release from the gripper command (last
    action dimension, > 0 = close) and the finger gap (last state dimension): reach until
    the first close command, grasp while the fingers are still closing, carry while they
    hold, release once the command opens again."""
    states, actions = np.asarray(states), np.asarray(actions)
    if len(states) != len(actions):
        raise VLAScopeError("states and actions differ in length")
    close = actions[:, gripper] > 0
    gap = states[:, gripper]
    shrinking = np.append(np.diff(gap) < -closing, False)
    out = np.empty(len(states), dtype=object)
    seen_close = False
    for t in range(len(states)):
        if close[t]:
            seen_close = True
            out[t] = "grasp" if shrinking[t] or (t > 0 and not close[t - 1]) else "carry"
        else:
            out[t] = "release" if seen_close else "reach"
    return out.astype(str)
