"""A policy run open loop on recorded frames: the action chunk it would predict at every
step, stored in the episode (``/open_loop/<name>``) beside the recorded actions.

On a dataset of demonstrations this is the question users ask first: would the policy do
what the demonstrator did, frame by frame? The timeline draws both; ``compare`` says how far
apart they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from .capture import ActivationCapture
from .episode import Episode, episode_observation, update_episode
from .errors import CancelledError, EpisodeFormatError, VLAScopeError
from .policy import check_action_chunks, common_noise, policy_info

BATCH = 8


def open_loop_name(policy_name: str) -> str:
    """The dataset name of a policy's predictions (one path component)."""
    return re.sub(r"[^\w.-]+", "-", policy_name).strip("-") or "policy"


def predict_chunks(policy: Any, ep: Episode, *, batch: int = BATCH,
                   capture: ActivationCapture | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None,
                   ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(T, H, A) the chunk ``policy`` predicts from each step's recorded observation (frames
    resized to the policy's image size, the step's state and instruction). A sampling policy
    uses one fixed noise draw throughout (``common_noise``), so the predictions are a function
    of the frames alone: two steps differ by what the policy saw, and a rerun gives the same
    chunks. With ``capture``, also each step's activations at its layers (one frame per
    forward pass then, as a rollout records them)."""
    cams = list(getattr(policy, "cameras", None) or ep.cameras)
    missing = [c for c in cams if c not in ep.cameras]
    if missing:
        raise EpisodeFormatError(f"{ep.path}: the policy reads camera(s) {missing}, the "
                                 f"episode has {ep.cameras}")
    size = getattr(policy, "image_size", None)
    action_dim = int(getattr(policy, "action_dim", ep.actions().shape[1]))
    if capture is not None:
        batch = 1  # a capture reads batch row 0
    chunks: list[np.ndarray] = []
    captured: dict[str, list[np.ndarray]] = {n: [] for n in capture.layers} if capture else {}
    for start in range(0, ep.n_steps, batch):
        if should_cancel is not None and should_cancel():
            raise CancelledError(f"open-loop prediction cancelled at step {start}")
        steps = range(start, min(start + batch, ep.n_steps))
        obs = [episode_observation(ep, t, cams, size) for t in steps]
        with common_noise(policy), capture.hooks() if capture else nullcontext():
            chunks.append(check_action_chunks(policy.batch_infer(obs), len(obs), action_dim))
        for name, value in (capture.last if capture else {}).items():
            captured[name].append(value)
        if progress is not None:
            progress(steps[-1] + 1, ep.n_steps)
    return (np.concatenate(chunks).astype(np.float32),
            {name: np.stack(v) for name, v in captured.items()})


def compare(recorded: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """How far the predicted actions (each chunk's first) are from the recorded ones."""
    first = predicted[:, 0] if predicted.ndim == 3 else predicted
    if recorded.shape != first.shape:
        raise VLAScopeError(f"the policy's actions have {first.shape[1:]} values, the "
                            f"recorded ones {recorded.shape[1:]}: not comparable")
    diff = first.astype(np.float64) - recorded
    return {"mse": float(np.mean(diff ** 2)), "mae": float(np.mean(np.abs(diff))),
            "mse_per_dim": [float(v) for v in np.mean(diff ** 2, axis=0)]}


def store_open_loop(path: str | Path, policy: Any, policy_name: str, chunks: np.ndarray,
                    activations: dict[str, np.ndarray] | None = None,
                    capture: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store the predictions (replacing the same policy's earlier ones) with who made them
    and, where the shapes allow, how far they are from the recorded actions; captured
    activations go where a rollout's go (``/activations/<layer>``, read by ``sae train``)."""
    name = open_loop_name(policy_name)
    with Episode(path) as ep:
        recorded = ep.actions()
    summary: dict[str, Any] = {"policy": {**policy_info(policy, policy_name),
                                          "name": policy_name},
                               "horizon": int(chunks.shape[1])}
    try:
        summary.update(compare(recorded, chunks))
    except VLAScopeError as e:
        summary["not_compared"] = str(e)
    arrays = {f"open_loop/{name}": chunks}
    metadata: dict[str, Any] = {f"open_loop.{name}": summary}
    if activations:
        arrays.update({f"activations/{layer}": v for layer, v in activations.items()})
        metadata["capture"] = capture
        summary["captured"] = sorted(activations)
    update_episode(path, arrays, metadata)
    return {"name": name, **summary}


def run_open_loop(path: str | Path, policy: Any, policy_name: str, *,
                  layers: Sequence[str] = (), pooling: str = "tokens",
                  **kw: Any) -> dict[str, Any]:
    """Predict on every recorded frame of the episode at ``path`` (capturing ``layers``,
    if any) and store the result."""
    capture = ActivationCapture(policy, layers, pooling) if layers else None
    with Episode(path) as ep:
        chunks, activations = predict_chunks(policy, ep, capture=capture, **kw)
    return store_open_loop(path, policy, policy_name, chunks, activations,
                           capture.metadata() if capture else None)


def read_open_loop(path: str | Path, name: str) -> np.ndarray:
    """(T, A) the stored predictions' first actions, as the timeline draws them."""
    with Episode(path) as ep:
        return ep.open_loop(name)[:, 0]
