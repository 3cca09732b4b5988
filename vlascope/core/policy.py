"""The policy contract: one required call, shaped like the ISS toolkit's, plus optional
capabilities that the inspector enables when a policy has them.

Required::

    def batch_infer(self, observations: Sequence[Observation]) -> np.ndarray
        # (B, horizon, action_dim) float action chunks

Optional attributes / methods (looked up with ``getattr``, never required):

- ``reset()``: clear any per-episode state before a rollout.
- ``policy_id: str`` and ``weights_hash: str``: recorded with every episode.
- ``cameras: tuple[str, ...] | None``: cameras the policy reads (None = all, () = none,
  which lets the runner skip rendering).
- ``image_size: tuple[int, int]``: (height, width) the policy expects.
- ``common_noise()``: a context manager under which a sampling policy uses one fixed noise
  draw for every call and row (see ``common_noise`` below; analyses that compare forward
  passes enter it).
- ``n_action_steps: int``: how many actions of each chunk to execute before re-planning.
  Activation interventions act on the forward passes, so with more than one step per
  chunk a step window takes effect at the first re-plan inside it.

Introspection (what the mechanistic tools and the saliency baselines use):

- ``layers() -> dict[str, module]`` and ``hook(name, fn)``: named hook points; ``fn(act)``
  may return a replacement activation.
- ``token_groups(layer) -> dict[str, list[int]]``: token positions of each kind
  ("language", "visual", ...) at a hook point, for interventions on some tokens only.
- ``visual_token_layout()``, ``attention_maps``: see ``policies/reference/policy.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .errors import ObservationError


@dataclass
class Observation:
    """What a policy sees at one step."""

    images: dict[str, np.ndarray]  # camera -> (H, W, 3) uint8
    state: np.ndarray  # proprioception, float32
    instruction: str
    # Scene-specific side information (e.g. privileged object poses for a scripted expert).
    extras: dict[str, Any] = field(default_factory=dict)

    def check_images(self, size: tuple[int, int] | None = None) -> None:
        """Raise ObservationError unless every image is HxWx3 uint8 (of ``size`` if given)."""
        for cam, img in self.images.items():
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 \
                    or img.shape[2] != 3:
                raise ObservationError(
                    f"camera '{cam}': expected an HxWx3 uint8 image, got "
                    f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}")
            if size is not None and img.shape[:2] != tuple(size):
                raise ObservationError(
                    f"camera '{cam}': image is {img.shape[0]}x{img.shape[1]}, "
                    f"the policy expects {size[0]}x{size[1]}")


@runtime_checkable
class Policy(Protocol):
    """Anything with ``batch_infer`` is a policy."""

    def batch_infer(self, observations: Sequence[Observation]) -> np.ndarray: ...


@contextmanager
def common_noise(policy: Any) -> Iterator[None]:
    """Inside this block a sampling policy (a flow-matching head) uses one fixed noise draw
    for every call and every row, so two forward passes differ only by what the caller
    changed: a perturbation's effect is not buried under sampling noise, and the episode's
    own noise stream is left where it was. Deterministic policies need nothing; a policy
    offers it as the ``common_noise()`` capability."""
    pin = getattr(policy, "common_noise", None)
    if pin is None:
        yield
        return
    with pin():
        yield


def check_action_chunks(actions: Any, batch: int, action_dim: int,
                        policy: Any = None) -> np.ndarray:
    """Validate a policy's output so a bad plugin fails with a message, not deep in the
    runner; given the ``policy``, the message names its plugin."""
    who = getattr(policy, "vlascope_plugin", None) or "policy"  # plugins.LABEL_ATTR
    try:
        arr = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError):
        raise ObservationError(f"{who} returned a {type(actions).__name__}, expected action "
                               f"chunks of shape ({batch}, horizon, {action_dim})") from None
    if arr.ndim == 2:  # a policy that returns one action per observation
        arr = arr[:, None, :]
    if arr.ndim != 3 or arr.shape[0] != batch or arr.shape[2] != action_dim:
        raise ObservationError(
            f"{who} returned actions of shape {np.shape(actions)}, expected "
            f"({batch}, horizon, {action_dim})")
    if not np.all(np.isfinite(arr)):
        raise ObservationError(f"{who} returned non-finite actions")
    return arr


def policy_info(policy: Any, fallback_id: str = "unknown") -> dict[str, Any]:
    """What produced an episode: recorded in its metadata so the run can be repeated."""
    return {
        "id": str(getattr(policy, "policy_id", fallback_id)),
        "weights_hash": str(getattr(policy, "weights_hash", "") or ""),
        "class": f"{type(policy).__module__}.{type(policy).__qualname__}",
    }


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hash of a weights file, for provenance."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class HookPointInfo:
    """One named hook point, for pickers: its stack ("tokens", "vlm", "expert", ...), the
    kinds of tokens it holds, and its name."""

    name: str
    stack: str
    tokens: tuple[str, ...] = ()


def hook_points(policy: Any) -> list[HookPointInfo]:
    """The policy's hook points in its own order (empty when it exposes none)."""
    layers = getattr(policy, "layers", None)
    if layers is None:
        return []
    groups = getattr(policy, "token_groups", None)
    out = []
    for name in layers():
        stack = name.split(".")[0]
        try:
            kinds = tuple(k for k, v in (groups(name) if groups else {}).items() if v)
        except Exception:  # noqa: BLE001 - a layout known only after a forward pass
            kinds = ()
        out.append(HookPointInfo(name, stack, kinds))
    return out
