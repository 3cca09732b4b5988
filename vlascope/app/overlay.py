"""Colour-mapping of saliency maps for display: one lookup table shared by every view, so a
map looks the same in the live viewer, the screenshots and exported videos."""

from __future__ import annotations

import numpy as np


def normalise(saliency: np.ndarray) -> np.ndarray:
    """Scale a map to [0, 1] for display (robust to a constant or negative map)."""
    s = np.asarray(saliency, np.float32)
    lo, hi = float(np.min(s)), float(np.percentile(s, 99.5))
    if hi <= lo:
        return np.zeros_like(s)
    return np.clip((s - lo) / (hi - lo), 0.0, 1.0)


def lookup_table(name: str = "inferno", n: int = 256) -> np.ndarray:
    """(n, 4) uint8 RGBA table; alpha ramps up so low saliency leaves the frame visible."""
    from matplotlib import colormaps

    rgba = (colormaps[name](np.linspace(0.0, 1.0, n)) * 255).astype(np.uint8)
    rgba[:, 3] = (np.linspace(0.0, 1.0, n) * 255).astype(np.uint8)
    return rgba


def blend(frame: np.ndarray, saliency: np.ndarray, opacity: float = 0.6,
          table: np.ndarray | None = None) -> np.ndarray:
    """A frame (H, W, 3) uint8 with a map (H, W) colour-mapped over it, as the views draw
    it: each pixel's colour weighted by the table's alpha times ``opacity``."""
    lut = lookup_table() if table is None else table
    idx = (normalise(saliency) * (len(lut) - 1)).astype(np.int64)
    rgba = lut[idx].astype(np.float32)
    a = rgba[..., 3:4] / 255.0 * float(opacity)
    out = frame.astype(np.float32) * (1 - a) + rgba[..., :3] * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
