"""The display render: what the viewer shows is rendered at the view's resolution, beside the
policy's small input, so a person sees a crisp scene while the policy keeps its own pixels.
Maps computed on the policy's image are upsampled smoothly onto it."""

from __future__ import annotations

import cv2
import numpy as np

_STEP = 16  # render sizes move in steps, so resizing a window does not re-create renderers


def display_size(policy_size: tuple[int, int], view: tuple[int, int],
                 limit: int = 640) -> tuple[int, int] | None:
    """The (H, W) to render for a view of ``view`` (H, W) device pixels: the policy image's
    aspect, scaled to fill the view, in steps of 16 px, at most ``limit`` on a side. None
    when the policy's own image is as large (a display render would add nothing)."""
    ph, pw = (int(v) for v in policy_size)
    vh, vw = (max(1, int(v)) for v in view)
    scale = min(vh / ph, vw / pw, limit / max(ph, pw))
    if scale <= 1.0:
        return None
    h = max(_STEP, int(ph * scale) // _STEP * _STEP)
    w = max(_STEP, int(pw * scale) // _STEP * _STEP)
    if h <= ph and w <= pw:
        return None
    return h, w


def upsample(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A (h, w) map resized to ``shape`` with bilinear interpolation (smooth edges instead of
    blocks); returned as is when the shape already matches."""
    values = np.asarray(values)
    if values.shape[:2] == tuple(shape):
        return values
    out = cv2.resize(values.astype(np.float32, copy=False), (int(shape[1]), int(shape[0])),
                     interpolation=cv2.INTER_LINEAR)
    return out
